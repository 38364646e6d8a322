package runner

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftiot/weft/internal/testbin"
	"github.com/weftiot/weft/internal/testlog"
)

// SIGUSR1 to a real `weft-agent run`: with WEFT_PROFILE_DIR it writes a
// heap and a goroutine profile (gzipped pprof) and the memory figures; without
// it the signal is logged and the agent keeps running (an unhandled SIGUSR1
// would end it without draining the pipeline).
func TestProfileSignalRealProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the weft-agent binary")
	}
	bin := testbin.Path(t, "weft-agent")
	sim := startSim(t, 1)
	for _, withDir := range []bool{true, false} {
		dir := t.TempDir()
		profDir := filepath.Join(dir, "profiles")
		path := filepath.Join(dir, "agent.yaml")
		// The broker address is closed: collection runs without it.
		if err := os.WriteFile(path, []byte(agentConfig(filepath.Join(dir, "data"), "tcp://127.0.0.1:1", sim.Addr(), 1, "")), 0o644); err != nil {
			t.Fatal(err)
		}
		if withDir {
			t.Setenv(ProfileDirEnv, profDir)
		} else {
			t.Setenv(ProfileDirEnv, "")
		}
		log := &testlog.Buffer{}
		p := startProcess(t, bin, path, log)
		ready := map[bool]string{true: "SIGUSR1 writes", false: "SIGUSR1 is logged and ignored"}[withDir]
		waitUntil(t, "SIGUSR1 handled", 20*time.Second, func() bool { return strings.Contains(log.String(), ready) })
		if err := p.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		if withDir {
			waitUntil(t, "profiles written", 10*time.Second, func() bool { return strings.Contains(log.String(), "profiles written") })
			for _, pattern := range []string{"heap-*.pprof", "goroutine-*.pprof", "memstats-*.txt"} {
				files, _ := filepath.Glob(filepath.Join(profDir, pattern))
				if len(files) != 1 {
					t.Fatalf("%s: %d files in %s; want 1\n%s", pattern, len(files), profDir, log.String())
				}
				b, err := os.ReadFile(files[0])
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case strings.HasSuffix(pattern, ".pprof") && !bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
					t.Errorf("%s is not a gzipped pprof profile", files[0])
				case strings.HasSuffix(pattern, ".txt") && !strings.Contains(string(b), "HeapAlloc "):
					t.Errorf("%s: no HeapAlloc line:\n%s", files[0], b)
				}
			}
		} else {
			waitUntil(t, "SIGUSR1 logged", 10*time.Second, func() bool { return strings.Contains(log.String(), "SIGUSR1 ignored") })
			if _, err := os.Stat(profDir); !os.IsNotExist(err) {
				t.Errorf("profiles directory made without %s: %v", ProfileDirEnv, err)
			}
		}
		if err := p.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("agent gone after SIGUSR1 (with dir %v): %v\n%s", withDir, err, log.String())
		}
		if err := p.Wait(); err != nil {
			t.Errorf("weft-agent run after SIGUSR1 and SIGTERM (with dir %v): %v; want exit status 0\n%s", withDir, err, log.String())
		}
	}
}

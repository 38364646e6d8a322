package profiling

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteProfiles(t *testing.T) {
	dir := t.TempDir() + "/made"
	paths, err := Write(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 3 {
		t.Fatalf("files %v; want heap, goroutine, memstats", paths)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			t.Errorf("%s: %d bytes, %v", p, len(b), err)
		}
		if strings.Contains(p, "memstats") && !strings.Contains(string(b), "HeapAlloc ") {
			t.Errorf("%s has no HeapAlloc: %q", p, b)
		}
	}
}

func TestStartCPU(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	p := filepath.Join(t.TempDir(), "cpu.pprof")
	stop := StartCPU(p, log)
	// Some work for the profiler to see.
	x := 0
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
		x++
	}
	stop()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// A pprof profile is gzip-compressed protobuf.
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("%s: %d bytes, not a gzip'd profile (x=%d)", p, len(b), x)
	}

	// A second profile cannot start while one runs; that is logged and the
	// first one goes on.
	stop = StartCPU(p, log)
	stop2 := StartCPU(filepath.Join(t.TempDir(), "second.pprof"), log)
	stop2()
	stop()

	// No path: nothing happens.
	StartCPU("", log)()
	// A path that cannot be created is logged, not fatal.
	StartCPU(filepath.Join(t.TempDir(), "missing", "dir", "cpu.pprof"), log)()
}

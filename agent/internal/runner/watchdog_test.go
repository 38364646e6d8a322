package runner

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftiot/weft/internal/testbin"
	"github.com/weftiot/weft/internal/testlog"
	"github.com/weftiot/weft/internal/testservers"
)

// The real `weft-agent run` under a systemd-like supervisor: a unixgram
// socket in $NOTIFY_SOCKET and WatchdogSec=1s in $WATCHDOG_USEC. READY=1
// comes once the spool is open, WATCHDOG=1 at least every half second with
// a status line that follows the devices and the broker, STOPPING=1 on
// SIGTERM.
func TestSystemdNotifyRealProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the weft-agent binary")
	}
	bin := testbin.Path(t, "weft-agent")
	sim := startSim(t, 2)
	broker := testservers.Mosquitto(t)

	// A short directory: a unix socket path is limited to 108 bytes.
	sockDir, err := os.MkdirTemp("", "sdnotify")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	path := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(path, []byte(agentConfig(dataDir, broker.URL, sim.Addr(), 2, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	log := &testlog.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", log.String())
		}
	})
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "1000000")
	p := startProcess(t, bin, path, log)
	started := time.Now()

	next := func(within time.Duration) string {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(within))
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification within %v (%v since start): %v", within, time.Since(started).Round(time.Millisecond), err)
		}
		return string(buf[:n])
	}

	if msg := next(20 * time.Second); msg != "READY=1" {
		t.Fatalf("first notification %q; want READY=1", msg)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "spool.db")); err != nil {
		t.Errorf("READY=1 before the spool was opened: %v", err)
	}

	// Pings every WatchdogSec/2 = 500ms, each followed by the status
	// line; wait for the line that says both devices and the broker work.
	var pings int
	var last time.Time
	var healthy string
	for healthy == "" || pings < 4 {
		if pings > 40 {
			t.Fatalf("after %d pings the status never said devices 2/2 ok and broker connected", pings)
		}
		msg := next(2 * time.Second)
		switch {
		case msg == "WATCHDOG=1":
			if !last.IsZero() {
				if gap := time.Since(last); gap > 900*time.Millisecond {
					t.Errorf("WATCHDOG=1 %v after the previous one; want every 500ms (WatchdogSec=1s)", gap.Round(time.Millisecond))
				}
			}
			last = time.Now()
			pings++
		case strings.HasPrefix(msg, "STATUS="):
			if pings == 0 {
				t.Errorf("%q before any WATCHDOG=1", msg)
			}
			if strings.Contains(msg, "devices 2/2 ok") && strings.Contains(msg, "broker connected") {
				healthy = msg
			}
		default:
			t.Fatalf("unexpected notification %q while running", msg)
		}
	}
	t.Logf("%d pings; status %q", pings, healthy)

	if err := p.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for {
		msg := next(10 * time.Second)
		if msg == "STOPPING=1" {
			break
		}
		if msg != "WATCHDOG=1" && !strings.HasPrefix(msg, "STATUS=") {
			t.Fatalf("unexpected notification %q while stopping", msg)
		}
	}
	if err := p.Wait(); err != nil {
		t.Errorf("weft-agent run after SIGTERM: %v; want exit status 0", err)
	}
}

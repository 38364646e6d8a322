package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// listen opens a unixgram socket like systemd's notify socket and returns
// a function reading the next datagram.
func listen(t *testing.T, name string) func() string {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return func() string {
		t.Helper()
		buf := make([]byte, 4096)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
}

func TestNotifyPathSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	next := listen(t, path)
	t.Setenv("NOTIFY_SOCKET", path)
	for _, c := range []struct {
		call func() error
		want string
	}{
		{Ready, "READY=1"}, {Watchdog, "WATCHDOG=1"}, {func() error { return Status("3 devices, spool 12 KiB") }, "STATUS=3 devices, spool 12 KiB"},
		{Stopping, "STOPPING=1"},
	} {
		if err := c.call(); err != nil {
			t.Fatalf("%s: %v", c.want, err)
		}
		if got := next(); got != c.want {
			t.Errorf("systemd got %q, want %q", got, c.want)
		}
	}
}

func TestNotifyAbstractSocket(t *testing.T) {
	name := "weft-sdnotify-test-" + strconv.Itoa(os.Getpid())
	next := listen(t, "@"+name)
	t.Setenv("NOTIFY_SOCKET", "@"+name)
	if err := Ready(); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != "READY=1" {
		t.Errorf("systemd got %q", got)
	}
}

func TestNotifyOutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := Ready(); err != nil {
		t.Errorf("Ready without NOTIFY_SOCKET: %v; want nil", err)
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody-listens"))
	if err := Watchdog(); err == nil {
		t.Error("Watchdog to a socket nobody listens on: nil error")
	}
	t.Setenv("NOTIFY_SOCKET", "relative")
	if err := Ready(); err == nil {
		t.Error("NOTIFY_SOCKET=relative: nil error")
	}
}

func TestWatchdogInterval(t *testing.T) {
	me := strconv.Itoa(os.Getpid())
	for _, c := range []struct {
		usec, pid string
		want      time.Duration
	}{
		{"", "", 0}, {"30000000", "", 30 * time.Second}, {"30000000", me, 30 * time.Second},
		{"30000000", "1", 0}, {"junk", "", 0}, {"-5", "", 0},
	} {
		t.Setenv("WATCHDOG_USEC", c.usec)
		t.Setenv("WATCHDOG_PID", c.pid)
		if got := WatchdogInterval(); got != c.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v, want %v", c.usec, c.pid, got, c.want)
		}
	}
}

// Package testservers starts real servers for tests: Mosquitto and InfluxDB
// 1.8. Each call starts a private server on free 127.0.0.1 ports with its
// files in t.TempDir(), waits until it answers its own protocol, and stops it
// when the test ends. Stop and Start restart it on the same port with the
// same data, for tests of outages. docs/testing.md says how `make test`
// provides the binaries.
package testservers

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// startTimeout is how long a server may take to answer after it is started.
const startTimeout = 30 * time.Second

// stopGrace is how long a server may take to exit after SIGTERM before it is killed.
const stopGrace = 10 * time.Second

// proc is one run of a server binary, its output appended to a log file.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // why it exited; read after exited is closed
}

func startProc(bin string, args []string, logPath string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "---- testservers: %s %v at %s ----\n", filepath.Base(bin), args, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// If the test binary dies (a -timeout panic, a kill), the server goes
	// with it instead of holding its port for the next run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	return p, nil
}

// stop sends SIGTERM, and SIGKILL after stopGrace, and waits for the exit.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopGrace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// kill ends the process at once, like a power cut, and waits for the exit.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// waitReady polls ready until it succeeds, the process exits or startTimeout
// passes.
func (p *proc) waitReady(ready func() error) error {
	deadline := time.Now().Add(startTimeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited before it was ready: %v", p.err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", startTimeout, err)
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago. The
// server may still lose it to someone else before it binds: callers retry
// with another port when the log says so.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// logSize is the current length of a log, so that a later look can read only
// what one start wrote.
func logSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// bindConflict reports whether a server log, from byte offset from on, shows
// that the server lost its port.
func bindConflict(logPath string, from int64) bool {
	b, _ := os.ReadFile(logPath)
	if from > int64(len(b)) {
		from = 0
	}
	return bytes.Contains(b[from:], []byte("ddress already in use"))
}

// logTail returns the end of a log file, for failure messages.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	// The start (config, version, listeners) and the end (what happened
	// last) matter; the middle is often polling noise.
	const head, tail = 3 << 10, 8 << 10
	if len(b) > head+tail {
		return string(b[:head]) + "\n… (" + fmt.Sprint(len(b)-head-tail) + " bytes left out) …\n" + string(b[len(b)-tail:])
	}
	return string(b)
}

// findBinary returns the path of a server binary: $env, else name on PATH,
// else fallback. It fails the test, never skips it, when there is none.
func findBinary(t testing.TB, env, name, fallback string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		if isExecutable(p) {
			return p
		}
		t.Fatalf("testservers: %s=%s is not an executable file; run `make deps` or fix %s", env, p, env)
	}
	if name != "" {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if isExecutable(fallback) {
		return fallback
	}
	t.Fatalf("testservers: %s not found (tried $%s, PATH and %s); run `make deps` to install it", name, env, fallback)
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// retryStart runs start with fresh ports until it succeeds or fails for a
// reason other than a port conflict.
func retryStart(logPath string, start func(fresh bool) error) error {
	var err error
	for attempt := range 5 {
		from := logSize(logPath)
		if err = start(attempt > 0); err == nil || !bindConflict(logPath, from) {
			return err
		}
	}
	return errors.Join(err, errors.New("gave up after 5 port conflicts"))
}

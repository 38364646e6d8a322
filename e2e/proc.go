package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is one of the binaries under test (weft-sim, weft-agent,
// weft-gateway), restartable, with its output appended to one log file.
type Process struct {
	Name    string
	Bin     string
	Args    []string
	LogPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	starts  int
	cpuDone time.Duration // CPU of the runs that ended
	logFrom int64         // log size when the current run started
}

// Start runs the binary; it fails if it is already running.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s: already running (pid %d)", p.Name, p.cmd.Process.Pid)
	}
	f, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	st, _ := f.Stat()
	p.logFrom = st.Size()
	fmt.Fprintf(f, "---- e2e: start %d of %s %s at %s ----\n", p.starts+1, p.Name, strings.Join(p.Args, " "), time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Stdout, cmd.Stderr = f, f
	// If the test binary dies, the process goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("%s: start %s: %w", p.Name, p.Bin, err)
	}
	p.starts++
	exited := make(chan struct{})
	p.cmd, p.exited = cmd, exited
	go func() {
		_ = cmd.Wait()
		f.Close()
		p.mu.Lock()
		if st := cmd.ProcessState; st != nil {
			p.cpuDone += st.UserTime() + st.SystemTime()
		}
		if p.cmd == cmd {
			p.cmd = nil
		}
		p.mu.Unlock()
		close(exited)
	}()
	return nil
}

// Running reports whether the process runs.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// Pid is the running process's id, 0 when it is not running.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Kill sends SIGKILL and waits for the exit.
func (p *Process) Kill() { p.signal(syscall.SIGKILL, 0) }

// Stop sends SIGTERM, SIGKILL after grace, and waits for the exit.
func (p *Process) Stop(grace time.Duration) { p.signal(syscall.SIGTERM, grace) }

func (p *Process) signal(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	if sig == syscall.SIGKILL {
		<-exited
		return
	}
	select {
	case <-exited:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// CPU is the user+system time of every run so far, the current one
// included (read from /proc).
func (p *Process) CPU() time.Duration {
	p.mu.Lock()
	done, pid := p.cpuDone, 0
	if p.cmd != nil {
		pid = p.cmd.Process.Pid
	}
	p.mu.Unlock()
	if pid != 0 {
		done += procCPU(pid)
	}
	return done
}

// RSS is the running process's resident set size in bytes (VmRSS), 0 when
// it is not running.
func (p *Process) RSS() int64 {
	pid := p.Pid()
	if pid == 0 {
		return 0
	}
	return procRSS(pid)
}

// Log returns the output of the current (or last) run.
func (p *Process) Log() string {
	p.mu.Lock()
	from := p.logFrom
	p.mu.Unlock()
	b, _ := os.ReadFile(p.LogPath)
	if int64(len(b)) < from {
		return ""
	}
	return string(b[from:])
}

// WaitLog waits until the current run's output matches re and returns the
// last match's first group (or the whole match without groups).
func (p *Process) WaitLog(re *regexp.Regexp, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		m := re.FindAllStringSubmatch(p.Log(), -1)
		if len(m) > 0 {
			last := m[len(m)-1]
			if len(last) > 1 {
				return last[1], nil
			}
			return last[0], nil
		}
		if !p.Running() {
			return "", fmt.Errorf("%s exited before logging %q; log %s:\n%s", p.Name, re, p.LogPath, tail(p.Log(), 3000))
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s did not log %q within %s; log %s:\n%s", p.Name, re, timeout, p.LogPath, tail(p.Log(), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// procCPU reads utime+stime of pid from /proc/PID/stat.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields after the
	// closing parenthesis are fixed.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks
}

// procRSS reads VmRSS of pid from /proc/PID/status, in bytes.
func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

package runner

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftiot/weft/agent/internal/spool"
	"github.com/weftiot/weft/config"
	"github.com/weftiot/weft/internal/testbin"
	"github.com/weftiot/weft/internal/testlog"
	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
)

// TestMain removes the binaries testbin built, if $WEFT_BIN lacked them.
func TestMain(m *testing.M) { testbin.Main(m) }

func startProcess(t *testing.T, bin, cfg string, log *testlog.Buffer) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "run", "--config", cfg, "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

// SIGKILL of a real `weft-agent run` during a burst: every batch that was
// in the spool at the kill reaches the broker after the restart, the will
// marks the agent offline, and no sequence number is reused.
func TestKill9DuringBurstLosesNothingSpooled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the weft-agent binary")
	}
	bin := testbin.Path(t, "weft-agent")
	sim := startSim(t, 4)
	broker := testservers.Mosquitto(t)
	rcv := listen(t, broker.URL, "kill-listener")
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	path := filepath.Join(dir, "agent.yaml")
	os.WriteFile(path, []byte(agentConfig(dataDir, broker.URL, sim.Addr(), 4, "")), 0o644)
	log := &testlog.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", log.String())
		}
	})

	online := func(after int64) func() bool {
		return func() bool {
			st := rcv.lastStatus()
			return st.State == wire.Online && st.Started > after
		}
	}
	var lastStart int64
	for round := 1; round <= 3; round++ {
		p := startProcess(t, bin, path, log)
		waitUntil(t, "agent online", 20*time.Second, online(lastStart))
		lastStart = rcv.lastStatus().Started
		before := rcv.distinctSeqs()
		waitUntil(t, "batches flowing", 20*time.Second, func() bool { return rcv.distinctSeqs() >= before+10 })
		switch round {
		case 1: // kill with a backlog not yet resent
			broker.Stop()
			time.Sleep(time.Second)
			p.Process.Signal(syscall.SIGKILL)
			broker.Start()
		case 2: // kill while the backlog drains
			broker.Stop()
			time.Sleep(time.Second)
			broker.Start()
			before = rcv.distinctSeqs()
			waitUntil(t, "the backlog draining", 20*time.Second, func() bool { return rcv.distinctSeqs() >= before+3 })
			p.Process.Signal(syscall.SIGKILL)
		case 3: // kill in the steady flow
			p.Process.Signal(syscall.SIGKILL)
		}
		p.Wait()
		waitUntil(t, "the will marks the agent offline", 10*time.Second, func() bool { return rcv.lastStatus().State == wire.Offline })

		sp, err := spool.Open(filepath.Join(dataDir, "spool.db"), spool.Options{})
		if err != nil {
			t.Fatalf("round %d: spool after kill: %v", round, err)
		}
		left, err := sp.Peek(0, 1<<20)
		sp.Close()
		if err != nil {
			t.Fatal(err)
		}
		missing := 0
		for _, e := range left {
			if !rcv.has(e.Seq) {
				missing++
			}
		}
		t.Logf("round %d: killed with %d batches unacknowledged in the spool, %d of them not yet at the broker", round, len(left), missing)
		if round == 1 && missing == 0 {
			t.Error("round 1 killed the agent with its outage backlog, yet nothing was missing at the broker")
		}

		p = startProcess(t, bin, path, log)
		waitUntil(t, "agent online again", 20*time.Second, online(lastStart))
		lastStart = rcv.lastStatus().Started
		waitUntil(t, "every spooled batch delivered after restart", 20*time.Second, func() bool {
			for _, e := range left {
				if !rcv.has(e.Seq) {
					return false
				}
			}
			return true
		})
		p.Process.Signal(syscall.SIGTERM)
		if err := p.Wait(); err != nil {
			t.Fatalf("round %d: weft-agent after SIGTERM: %v", round, err)
		}
		waitUntil(t, "offline after SIGTERM", 10*time.Second, func() bool { return rcv.lastStatus().State == wire.Offline })
	}
	// After a clean stop the spool holds only what the flush deadline left.
	sp, err := spool.Open(filepath.Join(dataDir, "spool.db"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	left, _ := sp.Peek(0, 1<<20)
	sp.Close()
	for _, e := range left {
		if rcv.has(e.Seq) {
			t.Errorf("seq %d delivered but still in the spool after a clean stop", e.Seq)
		}
	}
	rcv.mu.Lock()
	var prev uint64
	for _, b := range rcv.first {
		if b.Seq <= prev {
			t.Errorf("seq %d first delivered after %d: a sequence number went back or was reused", b.Seq, prev)
		}
		prev = b.Seq
	}
	rcv.mu.Unlock()
}

func (r *collector) distinctSeqs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.first)
}

func (r *collector) has(seq uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[seq] > 0
}

// SIGHUP to a real `weft-agent run`: a file with problems is refused and
// the agent runs on with its config; a good file is applied and the
// retained status shows its hash.
func TestSIGHUPRealProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the weft-agent binary")
	}
	bin := testbin.Path(t, "weft-agent")
	sim := startSim(t, 2)
	broker := testservers.Mosquitto(t)
	rcv := listen(t, broker.URL, "hup-listener")
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	orig := agentConfig(filepath.Join(dir, "data"), broker.URL, sim.Addr(), 1, "")
	os.WriteFile(path, []byte(orig), 0o644)
	log := &testlog.Buffer{}
	p := startProcess(t, bin, path, log)
	waitUntil(t, "online", 20*time.Second, func() bool { return rcv.lastStatus().State == wire.Online })

	os.WriteFile(path, []byte("agent: {id: a1\n"), 0o644)
	p.Process.Signal(syscall.SIGHUP)
	waitUntil(t, "the refusal logged", 10*time.Second, func() bool { return strings.Contains(log.String(), "config reload refused") })
	before := rcv.distinctSeqs()
	waitUntil(t, "data still flowing", 10*time.Second, func() bool { return rcv.distinctSeqs() > before+3 })

	good := agentConfig(filepath.Join(dir, "data"), broker.URL, sim.Addr(), 2, "")
	os.WriteFile(path, []byte(good), 0o644)
	p.Process.Signal(syscall.SIGHUP)
	waitUntil(t, "status with the new hash", 10*time.Second, func() bool {
		st := rcv.lastStatus()
		return st.ConfigHash == config.Hash([]byte(good)) && len(st.Devices) == 2
	})
	p.Process.Signal(syscall.SIGTERM)
	if err := p.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v\n%s", err, log.String())
	}
}

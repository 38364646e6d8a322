package runner

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftiot/weft/config"
	"github.com/weftiot/weft/internal/testbin"
	"github.com/weftiot/weft/internal/testlog"
	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
)

// trialSetup is an agent config file beside a running Mosquitto and
// simulator, and a listener on the agent's topics.
type trialSetup struct {
	dir, path, orig, dead string
	broker                *testservers.Broker
	rcv                   *collector
	log                   *testlog.Buffer
}

func newTrialSetup(t *testing.T, listenerID string) *trialSetup {
	t.Helper()
	sim := startSim(t, 1)
	broker := testservers.Mosquitto(t)
	s := &trialSetup{dir: t.TempDir(), broker: broker, log: &testlog.Buffer{}}
	s.rcv = listen(t, broker.URL, listenerID)
	s.path = filepath.Join(s.dir, "agent.yaml")
	data := filepath.Join(s.dir, "data")
	s.orig = agentConfig(data, broker.URL, sim.Addr(), 1, "")
	s.dead = agentConfig(data, "tcp://127.0.0.1:1", sim.Addr(), 1, "")
	if err := os.WriteFile(s.path, []byte(s.orig), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", s.log.String())
		}
	})
	return s
}

func (s *trialSetup) options(window time.Duration) Options {
	o := testOptions(s.path)
	o.Logger = slog.New(slog.NewTextHandler(s.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o.RollbackAfter = window
	return o
}

func readTrial(t *testing.T, path string) *trial {
	t.Helper()
	b, err := os.ReadFile(trialPath(path))
	if err != nil {
		t.Fatalf("trial file: %v", err)
	}
	tr, err := decodeTrial(b)
	if err != nil {
		t.Fatalf("trial file %s: %v", b, err)
	}
	return tr
}

func noTrialFile(path string) bool {
	_, err := os.Stat(trialPath(path))
	return errors.Is(err, os.ErrNotExist)
}

// A config that changes the broker is recorded as on trial before it is
// written, and the record outlives a stop during the trial.
func TestTrialPersisted(t *testing.T) {
	s := newTrialSetup(t, "trial-persist")
	a, stop := startAgent(t, s.options(time.Minute))
	waitUntil(t, "connected", 10*time.Second, func() bool { return a.forwarder().Connected() })

	before := time.Now()
	s.rcv.command(t, wire.Command{ID: "tp", Name: wire.CmdConfig, Config: s.dead})
	waitUntil(t, "ok reply", 10*time.Second, func() bool { return s.rcv.reply("tp", 1) != nil })
	tr := readTrial(t, s.path)
	want := trial{V: trialVersion, Hash: config.Hash([]byte(s.dead)), RollbackAfter: "1m0s",
		Prev: s.path + ".prev", PrevHash: config.Hash([]byte(s.orig)), Command: "tp", Started: tr.Started}
	if *tr != want {
		t.Errorf("trial %+v, want %+v", *tr, want)
	}
	if tr.Started.Before(before.Add(-time.Second)) || tr.Started.After(time.Now()) {
		t.Errorf("trial started at %v, the command was sent at %v", tr.Started, before)
	}
	if b, _ := os.ReadFile(tr.Prev); string(b) != s.orig {
		t.Error("the previous config is not where the trial says")
	}
	stop()
	if noTrialFile(s.path) {
		t.Fatal("the trial file is gone after a stop during the trial: the next start would run the config for good")
	}
	if b, _ := os.ReadFile(s.path); string(b) != s.dead {
		t.Error("the config on trial is not in the file after the stop")
	}
}

// A stop during the trial, then a start: the trial goes on for a whole
// window from this start (though it began a day ago), then the previous
// config comes back, reaches the broker, and the original command is
// answered.
func TestTrialResumedRollsBack(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts the agent around a rollback window")
	}
	s := newTrialSetup(t, "trial-resume")
	a, stop := startAgent(t, s.options(time.Minute))
	waitUntil(t, "connected", 10*time.Second, func() bool { return a.forwarder().Connected() })
	s.rcv.command(t, wire.Command{ID: "tr", Name: wire.CmdConfig, Config: s.dead})
	waitUntil(t, "ok reply", 10*time.Second, func() bool { return s.rcv.reply("tr", 1) != nil })
	stop()

	// The box was off for a day, and the window is now 2s.
	tr := readTrial(t, s.path)
	tr.Started = tr.Started.Add(-24 * time.Hour)
	const window = 2 * time.Second
	tr.RollbackAfter = window.String()
	if err := writeTrial(s.path, *tr); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	a, _ = startAgent(t, s.options(time.Hour)) // the recorded window rules, not this one
	if _, h := a.Config(); h != config.Hash([]byte(s.dead)) {
		t.Fatalf("restarted with %s, want the config on trial", h)
	}
	waitUntil(t, "the rollback", 20*time.Second, func() bool {
		_, h := a.Config()
		return h == config.Hash([]byte(s.orig))
	})
	if d := time.Since(start); d < window {
		t.Errorf("rolled back %v after the restart: the config on trial did not get its %v", d, window)
	}
	waitUntil(t, "connected with the previous config", 10*time.Second, func() bool { return a.forwarder().Connected() })
	waitUntil(t, "the rollback reply to the original command", 10*time.Second, func() bool { return s.rcv.reply("tr", 2) != nil })
	r := s.rcv.reply("tr", 2)[1]
	if r.OK || !strings.Contains(r.Error, "rolled back") || !strings.Contains(r.Error, "restart") || r.ConfigHash != config.Hash([]byte(s.orig)) {
		t.Errorf("rollback reply %+v", r)
	}
	if b, _ := os.ReadFile(s.path); string(b) != s.orig {
		t.Error("the file was not restored")
	}
	if !noTrialFile(s.path) {
		t.Error("the trial file is still there after the rollback")
	}
	if h := a.Health(); !strings.Contains(h.Forwarder.LastError, "rolled back") || a.rollbacks.Load() != 1 {
		t.Errorf("health does not tell of the rollback (%d counted): %+v", a.rollbacks.Load(), h.Forwarder)
	}
	waitUntil(t, "status with the previous hash", 10*time.Second, func() bool {
		st := s.rcv.lastStatus()
		return st.State == wire.Online && st.ConfigHash == config.Hash([]byte(s.orig))
	})
}

// A trial carried over a restart whose config reaches the broker passes:
// the trial file is removed and no rollback comes after the window.
func TestTrialResumedPasses(t *testing.T) {
	s := newTrialSetup(t, "trial-pass")
	// On trial: the running broker with another keepalive. Before it: a
	// dead broker (were it restored, the agent would lose the broker).
	onTrial := strings.Replace(s.orig, "keepalive: 2s", "keepalive: 3s", 1)
	os.WriteFile(s.path, []byte(onTrial), 0o644)
	os.WriteFile(s.path+".prev", []byte(s.dead), 0o644)
	const window = 1500 * time.Millisecond
	writeTrial(s.path, trial{Hash: config.Hash([]byte(onTrial)), Started: time.Now().Add(-time.Minute), RollbackAfter: window.String(),
		Prev: s.path + ".prev", PrevHash: config.Hash([]byte(s.dead)), Command: "tpass"})

	a, _ := startAgent(t, s.options(window))
	waitUntil(t, "the trial file removed", 10*time.Second, func() bool { return noTrialFile(s.path) })
	if !a.forwarder().Connected() {
		t.Error("trial passed while not connected")
	}
	time.Sleep(window + time.Second)
	if _, h := a.Config(); h != config.Hash([]byte(onTrial)) || a.rollbacks.Load() != 0 {
		t.Errorf("running %s after %d rollbacks: the passed trial was rolled back", h, a.rollbacks.Load())
	}
	if !strings.Contains(s.log.String(), "passed") {
		t.Error("the passed trial is not logged")
	}
}

// A config file edited by hand since its trial began is not the config on
// trial: the trial is dropped (logged) and the file runs, with no rollback.
func TestTrialDroppedAfterHandEdit(t *testing.T) {
	s := newTrialSetup(t, "trial-edit")
	// The file now runs the broker; the trial was of a dead one.
	os.WriteFile(s.path+".prev", []byte(s.dead), 0o644)
	const window = time.Second
	writeTrial(s.path, trial{Hash: config.Hash([]byte("something else")), Started: time.Now(), RollbackAfter: window.String(),
		Prev: s.path + ".prev", PrevHash: config.Hash([]byte(s.dead))})

	a, _ := startAgent(t, s.options(window))
	if !noTrialFile(s.path) {
		t.Error("the trial file of another config is still there after the start")
	}
	if !strings.Contains(s.log.String(), "config file changed since its trial started") {
		t.Error("the dropped trial is not logged")
	}
	time.Sleep(window + time.Second)
	if _, h := a.Config(); h != config.Hash([]byte(s.orig)) || a.rollbacks.Load() != 0 {
		t.Errorf("running %s after %d rollbacks, want the hand-edited file", h, a.rollbacks.Load())
	}
	if b, _ := os.ReadFile(s.path); string(b) != s.orig {
		t.Error("the hand-edited file was replaced")
	}
}

// A damaged trial file, or one whose previous config is gone or changed,
// is a logged error and removed; the agent runs its file.
func TestTrialDamagedFile(t *testing.T) {
	s := newTrialSetup(t, "trial-damaged")
	hash := config.Hash([]byte(s.orig))
	good := trial{V: trialVersion, Hash: hash, Started: time.Now(), RollbackAfter: "1s", Prev: s.path + ".prev", PrevHash: config.Hash([]byte(s.dead))}
	enc := func(t trial) string { b, _ := json.Marshal(t); return string(b) }
	with := func(f func(*trial)) string { c := good; f(&c); return enc(c) }
	cases := []struct{ name, content, logged string }{
		{"garbage", "\x00\xff not json", "damaged"},
		{"truncated", enc(good)[:20], "damaged"},
		{"empty", "", "damaged"},
		{"version", with(func(t *trial) { t.V = 7 }), "v: 7"},
		{"no hash", with(func(t *trial) { t.Hash = "" }), "hash: missing"},
		{"bad window", with(func(t *trial) { t.RollbackAfter = "-3s" }), "rollback_after"},
		{"bad command id", with(func(t *trial) { t.Command = "a/b" }), "command"},
		{"prev gone", with(func(t *trial) { t.Prev = filepath.Join(s.dir, "missing") }), "previous config is gone"},
		{"prev changed", with(func(t *trial) { t.PrevHash = "0000" }), "previous config file changed"},
	}
	os.WriteFile(s.path+".prev", []byte(s.dead), 0o644)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s.log = &testlog.Buffer{}
			if err := os.WriteFile(trialPath(s.path), []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			a, stop := startAgent(t, s.options(time.Second))
			if !noTrialFile(s.path) {
				t.Error("the trial file is still there")
			}
			logged := s.log.String()
			if !strings.Contains(logged, "level=ERROR") || !strings.Contains(logged, c.logged) || !strings.Contains(logged, trialPath(s.path)) {
				t.Errorf("log does not say what (%q) and where:\n%s", c.logged, logged)
			}
			if _, h := a.Config(); h != hash {
				t.Errorf("running %s, want the file", h)
			}
			stop()
			if a.rollbacks.Load() != 0 {
				t.Error("rolled back")
			}
		})
	}
}

// Whatever is in a trial file, decodeTrial returns a checked record or an
// error, and never panics.
func FuzzDecodeTrial(f *testing.F) {
	b, _ := json.Marshal(trial{V: trialVersion, Hash: "ab", Started: time.Unix(1, 0), RollbackAfter: "2m", Prev: "/x.prev", PrevHash: "cd", Command: "c1"})
	f.Add(b)
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":1,"rollback_after":"9999999999999h"}`))
	f.Add([]byte("null"))
	f.Fuzz(func(t *testing.T, in []byte) {
		tr, err := decodeTrial(in)
		if err != nil {
			return
		}
		if tr.Hash == "" || tr.Prev == "" || tr.PrevHash == "" || tr.window() <= 0 || tr.Started.IsZero() {
			t.Fatalf("accepted %+v from %q", *tr, in)
		}
	})
}

// The audit's case, on a real `weft-agent run`: a config whose broker is
// unreachable is pushed over MQTT, the agent is SIGKILLed within
// rollback_after, and restarted: it carries the trial on, rolls back to
// the old config, reaches the broker with it, and answers the command.
func TestTrialSurvivesKill9RealProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the weft-agent binary")
	}
	bin := testbin.Path(t, "weft-agent")
	s := newTrialSetup(t, "trial-kill")
	const window = 3 * time.Second
	withWindow := func(c string) string {
		return strings.Replace(c, "  health_interval: 500ms\n", "  health_interval: 500ms\n  rollback_after: "+window.String()+"\n", 1)
	}
	orig, dead := withWindow(s.orig), withWindow(s.dead)
	os.WriteFile(s.path, []byte(orig), 0o644)
	origHash, deadHash := config.Hash([]byte(orig)), config.Hash([]byte(dead))

	p := startProcess(t, bin, s.path, s.log)
	waitUntil(t, "online", 20*time.Second, func() bool {
		st := s.rcv.lastStatus()
		return st.State == wire.Online && st.ConfigHash == origHash
	})
	s.rcv.command(t, wire.Command{ID: "k9", Name: wire.CmdConfig, Config: dead})
	waitUntil(t, "ok reply", 10*time.Second, func() bool { return s.rcv.reply("k9", 1) != nil })
	if r := s.rcv.reply("k9", 1)[0]; !r.OK || r.ConfigHash != deadHash {
		t.Fatalf("reply %+v, want ok with %s", r, deadHash)
	}
	waitUntil(t, "the will marks the agent offline", 10*time.Second, func() bool { return s.rcv.lastStatus().State == wire.Offline })
	killed := time.Now()
	p.Process.Signal(syscall.SIGKILL)
	p.Wait()
	if d := time.Since(killed); d >= window {
		t.Fatalf("killed %v after the push: not within the window", d)
	}
	if b, _ := os.ReadFile(s.path); string(b) != dead {
		t.Fatal("the config on trial is not in the file at the kill")
	}

	restarted := time.Now()
	p = startProcess(t, bin, s.path, s.log)
	waitUntil(t, "online again with the old config", 30*time.Second, func() bool {
		st := s.rcv.lastStatus()
		return st.State == wire.Online && st.ConfigHash == origHash && st.Started >= restarted.Add(-time.Second).UnixMilli()
	})
	if d := time.Since(restarted); d < window {
		t.Errorf("back on the old config %v after the restart, before the %v window", d, window)
	}
	waitUntil(t, "the rollback reply", 10*time.Second, func() bool { return s.rcv.reply("k9", 2) != nil })
	if r := s.rcv.reply("k9", 2)[1]; r.OK || !strings.Contains(r.Error, "rolled back") || r.ConfigHash != origHash {
		t.Errorf("rollback reply %+v", r)
	}
	if b, _ := os.ReadFile(s.path); string(b) != orig {
		t.Error("the file was not restored")
	}
	if !noTrialFile(s.path) {
		t.Error("the trial file is still there after the rollback")
	}
	before := s.rcv.distinctSeqs()
	waitUntil(t, "data flowing again", 10*time.Second, func() bool { return s.rcv.distinctSeqs() > before+3 })
	p.Process.Signal(syscall.SIGTERM)
	if err := p.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v", err)
	}
}

// SIGHUP during a trial: the same file loaded again stays on trial (and is
// rolled back); another file ends the trial, and runs.
func TestTrialSIGHUPDuringTrial(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out two rollback windows")
	}
	s := newTrialSetup(t, "trial-hup")
	reload := make(chan struct{})
	const window = 2 * time.Second
	opts := s.options(window)
	opts.Reload = reload
	a, _ := startAgent(t, opts)
	waitUntil(t, "connected", 10*time.Second, func() bool { return a.forwarder().Connected() })

	s.rcv.command(t, wire.Command{ID: "h1", Name: wire.CmdConfig, Config: s.dead})
	waitUntil(t, "ok reply", 10*time.Second, func() bool { return s.rcv.reply("h1", 1) != nil })
	reload <- struct{}{}
	waitUntil(t, "the rollback despite the reload", 10*time.Second, func() bool {
		_, h := a.Config()
		return h == config.Hash([]byte(s.orig))
	})
	if !noTrialFile(s.path) {
		t.Error("trial file left after the rollback")
	}
	waitUntil(t, "the rollback reply", 10*time.Second, func() bool { return s.rcv.reply("h1", 2) != nil })

	s.rcv.command(t, wire.Command{ID: "h2", Name: wire.CmdConfig, Config: s.dead})
	waitUntil(t, "ok reply", 10*time.Second, func() bool { return s.rcv.reply("h2", 1) != nil })
	edited := strings.Replace(s.dead, "keepalive: 2s", "keepalive: 4s", 1)
	os.WriteFile(s.path, []byte(edited), 0o644)
	reload <- struct{}{}
	waitUntil(t, "the trial file removed", 5*time.Second, func() bool { return noTrialFile(s.path) })
	time.Sleep(window + time.Second)
	if _, h := a.Config(); h != config.Hash([]byte(edited)) || a.rollbacks.Load() != 1 {
		t.Errorf("running %s after %d rollbacks, want the file loaded by SIGHUP and only the first rollback", h, a.rollbacks.Load())
	}
}

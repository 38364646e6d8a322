package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/weftiot/weft/agent/internal/collect"
	"github.com/weftiot/weft/config"
	"github.com/weftiot/weft/internal/testservers"
	modbussim "github.com/weftiot/weft/sim/modbus"
	opcuasim "github.com/weftiot/weft/sim/opcua"
	"github.com/weftiot/weft/wire"
)

// testSite is this test process's site: a broker port freed by a stopped
// Mosquitto can be taken by another package's broker meanwhile, and its
// messages must not be mistaken for ours.
var testSite = fmt.Sprintf("site-%d", os.Getpid())

// startSim starts the Modbus simulator with the counter profile: units
// 1..devices, registers 0..3 a uint64 tick counter.
func startSim(t *testing.T, devices int) *modbussim.Server {
	t.Helper()
	s, err := modbussim.Start(modbussim.Options{TCP: "127.0.0.1:0", Profile: "counter", Devices: devices, Registers: 20, Tick: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// agentConfig is a config with one counter device per unit of the sim.
func agentConfig(dataDir, broker, simAddr string, devices int, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `agent:
  id: a1
  site: %s
  data_dir: %s
  health_interval: 500ms
mqtt:
  broker: %s
  keepalive: 2s
batch:
  max_samples: 50
  flush_interval: 100ms
%s
devices:
`, testSite, dataDir, broker, extra)
	for u := 1; u <= devices; u++ {
		fmt.Fprintf(&b, `  - id: dev%d
    interval: 100ms
    modbus: {target: "tcp://%s", unit: %d, timeout: 500ms}
    points:
      - {name: ticks, table: holding, address: 0, type: uint64}
      - {name: reg4, table: holding, address: 4, type: uint16, scale: 0.5, offset: 1}
`, u, simAddr, u)
	}
	return b.String()
}

// collector is a paho client with a persistent session recording data,
// status and replies.
type collector struct {
	t       *testing.T
	mu      sync.Mutex
	first   []wire.Batch
	seen    map[uint64]int
	status  []wire.Status
	health  []wire.Health
	replies map[string][]wire.Reply
	c       mqtt.Client
}

func listen(t *testing.T, brokerURL, id string) *collector {
	t.Helper()
	r := &collector{t: t, seen: map[uint64]int{}, replies: map[string][]wire.Reply{}}
	topics := wire.Topics{Prefix: "weft/v1"}
	subs := map[string]byte{
		topics.Data(testSite, "a1"): 1, topics.Status(testSite, "a1"): 1,
		topics.Health(testSite, "a1"): 0, topics.Reply(testSite, "a1", "+"): 1,
	}
	o := mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID(id).SetCleanSession(false).
		SetAutoReconnect(true).SetMaxReconnectInterval(200 * time.Millisecond).
		SetDefaultPublishHandler(r.handle)
	r.c = mqtt.NewClient(o)
	if tok := r.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("listener connect: %v", tok.Error())
	}
	// Subscribed once, in the persistent session: the broker keeps the
	// subscriptions (and queues messages) across its restarts.
	if tok := r.c.SubscribeMultiple(subs, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("listener subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { r.c.Disconnect(100) })
	return r
}

func (r *collector) handle(_ mqtt.Client, m mqtt.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, _, kind, rest, err := wire.ParseTopic("weft/v1", m.Topic())
	if err != nil {
		r.t.Errorf("topic %q: %v", m.Topic(), err)
		return
	}
	switch kind {
	case wire.KindData:
		var b wire.Batch
		if err := wire.DecodeBatch(m.Payload(), &b); err != nil {
			r.t.Errorf("data: %v", err)
			return
		}
		if r.seen[b.Seq] == 0 {
			r.first = append(r.first, b)
		}
		r.seen[b.Seq]++
	case wire.KindStatus:
		var s wire.Status
		if err := wire.DecodeStatus(m.Payload(), &s); err != nil {
			r.t.Errorf("status: %v", err)
		}
		r.status = append(r.status, s)
	case wire.KindHealth:
		var h wire.Health
		if err := wire.DecodeHealth(m.Payload(), &h); err != nil {
			r.t.Errorf("health: %v", err)
		}
		r.health = append(r.health, h)
	case wire.KindReply:
		var rp wire.Reply
		if err := wire.DecodeReply(m.Payload(), &rp); err != nil {
			r.t.Errorf("reply: %v", err)
		}
		r.replies[rest] = append(r.replies[rest], rp)
	}
}

func (r *collector) lastStatus() wire.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.status) == 0 {
		return wire.Status{}
	}
	return r.status[len(r.status)-1]
}

func (r *collector) reply(id string, n int) []wire.Reply {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.replies[id]) < n {
		return nil
	}
	return append([]wire.Reply(nil), r.replies[id]...)
}

func (r *collector) command(t *testing.T, cmd wire.Command) {
	t.Helper()
	cmd.V = wire.Version
	cmd.TS = time.Now().UnixMilli()
	b, _ := json.Marshal(cmd)
	topic := wire.Topics{Prefix: "weft/v1"}.Cmd(testSite, "a1", cmd.Name)
	if tok := r.c.Publish(topic, 1, false, b); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish command: %v", tok.Error())
	}
}

func (r *collector) publishRaw(t *testing.T, topic string, payload []byte) {
	t.Helper()
	if tok := r.c.Publish(topic, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
}

// check verifies what arrived: first deliveries in strictly increasing seq,
// every seq from the first to the last present, and each device's ticks
// never going back. It returns the samples per device.
func (r *collector) check(t *testing.T) map[string][]wire.Sample {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	per := map[string][]wire.Sample{}
	var prev uint64
	for _, b := range r.first {
		if b.Agent != "a1" || b.Site != testSite {
			t.Errorf("batch %d from %s/%s", b.Seq, b.Site, b.Agent)
		}
		if b.Seq <= prev {
			t.Errorf("first delivery of seq %d after %d", b.Seq, prev)
		}
		prev = b.Seq
		for _, s := range b.Samples {
			if s.Point == "ticks" {
				per[s.Device] = append(per[s.Device], s)
			}
		}
	}
	if len(r.first) > 0 {
		lo, hi := r.first[0].Seq, prev
		for s := lo; s <= hi; s++ {
			if r.seen[s] == 0 {
				t.Errorf("seq %d missing (have %d..%d)", s, lo, hi)
			}
		}
	}
	for dev, ss := range per {
		for i := 1; i < len(ss); i++ {
			if ss[i].Value.Uint() < ss[i-1].Value.Uint() || ss[i].TS < ss[i-1].TS {
				t.Errorf("%s: sample %d (ticks %d at %d) after (ticks %d at %d): order lost",
					dev, i, ss[i].Value.Uint(), ss[i].TS, ss[i-1].Value.Uint(), ss[i-1].TS)
				for j := max(0, i-3); j < min(len(ss), i+3); j++ {
					t.Logf("  %s[%d]: %+v", dev, j, ss[j])
				}
				break
			}
		}
	}
	return per
}

func testOptions(path string) Options {
	return Options{
		ConfigPath:       path,
		Logger:           testLogger(),
		Collect:          collect.Options{BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond},
		BrokerBackoffMin: 50 * time.Millisecond,
		BrokerBackoffMax: 300 * time.Millisecond,
	}
}

// startAgent runs the agent of cfgText and returns it once running.
func startAgent(t *testing.T, opts Options) (*Agent, func()) {
	t.Helper()
	started := make(chan *Agent, 1)
	opts.Started = func(a *Agent) { started <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, opts) }()
	var a *Agent
	select {
	case a = <-started:
	case err := <-done:
		t.Fatalf("agent did not start: %v", err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("agent did not stop within 30s")
		}
	}
	t.Cleanup(stop)
	return a, stop
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The full path: simulator → agent → Mosquitto → subscriber. The agent
// starts while the broker is down, collects from its first second, and
// delivers everything once the broker is up.
func TestEndToEndStartsWhileBrokerDown(t *testing.T) {
	const devices = 3
	sim := startSim(t, devices)
	broker := testservers.Mosquitto(t)
	rcv := listen(t, broker.URL, "e2e-listener") // its persistent session outlives the outage
	broker.Stop()

	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	os.WriteFile(path, []byte(agentConfig(filepath.Join(dir, "data"), broker.URL, sim.Addr(), devices, "")), 0o644)
	agentStart := time.Now()
	a, stop := startAgent(t, testOptions(path))

	waitUntil(t, "batches in the spool while the broker is down", 10*time.Second, func() bool {
		return a.Health().Spool.Batches >= 5
	})
	time.Sleep(time.Second)
	if h := a.Health(); h.Forwarder.Connected || h.Spool.Samples == 0 {
		t.Fatalf("broker down: health %+v", h)
	}
	brokerUp := time.Now()
	broker.Start()
	waitUntil(t, "backlog delivered", 20*time.Second, func() bool {
		h := a.Health()
		return h.Forwarder.Connected && h.Spool.Batches == 0 && h.Forwarder.PublishedBatch > 5
	})
	waitUntil(t, "a health message (every 500ms)", 10*time.Second, func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return len(rcv.health) > 0
	})
	h := a.Health()
	stop()
	// Batches the broker queued for the listener's session while it was
	// reconnecting arrive through its inflight window, after live QoS 0
	// health messages: wait for every batch acknowledged so far.
	waitUntil(t, "every acknowledged batch at the listener", 10*time.Second, func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		var top uint64
		for seq := range rcv.seen {
			top = max(top, seq)
		}
		// A batch acknowledged twice (resent after a lost PUBACK) counts
		// twice in PublishedBatch: the highest sequence also tells.
		return uint64(len(rcv.seen)) >= h.Forwarder.PublishedBatch || top >= h.Spool.LastSeq-uint64(h.Spool.Batches)
	})

	per := rcv.check(t)
	if len(per) != devices {
		t.Fatalf("samples from %d devices, want %d", len(per), devices)
	}
	for dev, ss := range per {
		if first := time.UnixMilli(ss[0].TS); first.After(agentStart.Add(1500*time.Millisecond)) || !first.Before(brokerUp) {
			t.Errorf("%s: first sample read at %v; the agent started at %v and the broker at %v: not collected from the start",
				dev, first.Format("15:04:05.000"), agentStart.Format("15:04:05.000"), brokerUp.Format("15:04:05.000"))
		}
		if len(ss) < 10 {
			t.Errorf("%s: only %d samples", dev, len(ss))
		}
	}
	for _, d := range h.Devices {
		if d.State != wire.DeviceOK || d.Reads == 0 || d.Requests == 0 || d.Samples == 0 {
			t.Errorf("device health %+v", d)
		}
	}
	// Scale and offset: reg4 of unit u holds u*1000+4, reported as x*0.5+1.
	rcv.mu.Lock()
	for _, b := range rcv.first {
		for _, s := range b.Samples {
			if s.Point == "reg4" {
				var u int
				fmt.Sscanf(s.Device, "dev%d", &u)
				if f, _ := s.Value.Float(); f != float64(u*1000+4)*0.5+1 {
					t.Errorf("%s reg4 = %v, want %v", s.Device, f, float64(u*1000+4)*0.5+1)
				}
			}
		}
	}
	rcv.mu.Unlock()
	waitUntil(t, "offline status after stop", 5*time.Second, func() bool { return rcv.lastStatus().State == wire.Offline })
}

// Remote commands: an invalid config is answered with every problem and
// changes nothing; a valid one is saved (the old one kept as .prev),
// applied, and the status shows its hash; unknown and malformed commands
// get an error reply.
func TestRemoteCommands(t *testing.T) {
	sim := startSim(t, 2)
	broker := testservers.Mosquitto(t)
	rcv := listen(t, broker.URL, "cmd-listener")
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	orig := agentConfig(filepath.Join(dir, "data"), broker.URL, sim.Addr(), 1, "")
	os.WriteFile(path, []byte(orig), 0o644)
	a, _ := startAgent(t, testOptions(path))
	waitUntil(t, "connected", 10*time.Second, func() bool { return a.forwarder().Connected() })
	_, oldHash := a.Config()

	// Invalid: two problems.
	bad := strings.Replace(orig, "interval: 100ms", "interval: fast", 1)
	bad = strings.Replace(bad, "type: uint16", "type: uint17", 1)
	rcv.command(t, wire.Command{ID: "c1", Name: wire.CmdConfig, Config: bad})
	waitUntil(t, "reply c1", 10*time.Second, func() bool { return rcv.reply("c1", 1) != nil })
	r := rcv.reply("c1", 1)[0]
	if r.OK || len(r.Errors) != 2 {
		t.Errorf("reply to an invalid config: %+v, want 2 errors", r)
	}
	for _, e := range r.Errors {
		if !strings.Contains(e, "agent.yaml:") {
			t.Errorf("error %q does not say where", e)
		}
	}
	if _, h := a.Config(); h != oldHash {
		t.Errorf("hash changed to %s after an invalid config", h)
	}

	// Valid: a second device.
	good := agentConfig(filepath.Join(dir, "data"), broker.URL, sim.Addr(), 2, "")
	rcv.command(t, wire.Command{ID: "c2", Name: wire.CmdConfig, Config: good})
	waitUntil(t, "reply c2", 10*time.Second, func() bool { return rcv.reply("c2", 1) != nil })
	r = rcv.reply("c2", 1)[0]
	if !r.OK || r.ConfigHash != config.Hash([]byte(good)) {
		t.Fatalf("reply to a valid config: %+v, want ok with hash %s", r, config.Hash([]byte(good)))
	}
	if b, _ := os.ReadFile(path); string(b) != good {
		t.Error("the new config was not written to the file")
	}
	if b, _ := os.ReadFile(path + ".prev"); string(b) != orig {
		t.Error("the previous config was not kept as .prev")
	}
	rcv.command(t, wire.Command{ID: "c3", Name: wire.CmdStatus})
	waitUntil(t, "reply c3", 10*time.Second, func() bool { return rcv.reply("c3", 1) != nil })
	r = rcv.reply("c3", 1)[0]
	if !r.OK || r.Health == nil || r.Health.ConfigHash != config.Hash([]byte(good)) || len(r.Health.Devices) != 2 {
		t.Errorf("status reply %+v: want the new hash and 2 devices", r)
	}
	waitUntil(t, "status with the new hash", 5*time.Second, func() bool {
		st := rcv.lastStatus()
		return st.ConfigHash == config.Hash([]byte(good)) && len(st.Devices) == 2
	})

	// Unknown and malformed commands.
	rcv.command(t, wire.Command{ID: "c4", Name: "reboot"})
	topics := wire.Topics{Prefix: "weft/v1"}
	rcv.publishRaw(t, topics.Cmd(testSite, "a1", "status"), []byte(`{"v":1,"id":"c5","name":"status"`))
	rcv.publishRaw(t, topics.Cmd(testSite, "a1", "status"), []byte(`{"v":9,"id":"c6","name":"status"}`))
	rcv.publishRaw(t, topics.Cmd(testSite, "a1", "status"), []byte("\x00\xff garbage"))
	waitUntil(t, "replies c4, c6", 10*time.Second, func() bool { return rcv.reply("c4", 1) != nil && rcv.reply("c6", 1) != nil })
	for _, id := range []string{"c4", "c6"} {
		if r := rcv.reply(id, 1)[0]; r.OK || r.Error == "" {
			t.Errorf("reply %s: %+v, want an error", id, r)
		}
	}
	waitUntil(t, "4 command errors counted", 5*time.Second, func() bool { return a.cmdErrors.Load() >= 5 })
	if !a.forwarder().Connected() {
		t.Error("the agent lost the broker over garbage commands")
	}
}

// A config whose broker settings cannot connect is rolled back after
// RollbackAfter, and the platform is told.
func TestRemoteConfigRollback(t *testing.T) {
	sim := startSim(t, 1)
	broker := testservers.Mosquitto(t)
	rcv := listen(t, broker.URL, "rb-listener")
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	orig := agentConfig(filepath.Join(dir, "data"), broker.URL, sim.Addr(), 1, "")
	os.WriteFile(path, []byte(orig), 0o644)
	opts := testOptions(path)
	opts.RollbackAfter = 1500 * time.Millisecond
	a, _ := startAgent(t, opts)
	waitUntil(t, "connected", 10*time.Second, func() bool { return a.forwarder().Connected() })

	deadBroker := agentConfig(filepath.Join(dir, "data"), "tcp://127.0.0.1:1", sim.Addr(), 1, "")
	rcv.command(t, wire.Command{ID: "rb", Name: wire.CmdConfig, Config: deadBroker})
	waitUntil(t, "ok reply, then the rollback reply", 20*time.Second, func() bool { return rcv.reply("rb", 2) != nil })
	rs := rcv.reply("rb", 2)
	if !rs[0].OK || rs[0].ConfigHash != config.Hash([]byte(deadBroker)) {
		t.Errorf("first reply %+v, want ok with the new hash", rs[0])
	}
	if rs[1].OK || !strings.Contains(rs[1].Error, "rolled back") || rs[1].ConfigHash != config.Hash([]byte(orig)) {
		t.Errorf("second reply %+v, want the rollback to %s", rs[1], config.Hash([]byte(orig)))
	}
	if b, _ := os.ReadFile(path); string(b) != orig {
		t.Error("the file was not restored")
	}
	if _, h := a.Config(); h != config.Hash([]byte(orig)) {
		t.Errorf("running hash %s after rollback", h)
	}
	if h := a.Health(); !strings.Contains(h.Forwarder.LastError, "rolled back") && a.rollbacks.Load() != 1 {
		t.Errorf("health does not tell of the rollback: %+v", h.Forwarder)
	}
}

// SIGHUP (Options.Reload) with a bad file keeps the running config; with a
// good one it applies it.
func TestReloadKeepsOldConfigOnBadFile(t *testing.T) {
	sim := startSim(t, 2)
	broker := testservers.Mosquitto(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	orig := agentConfig(filepath.Join(dir, "data"), broker.URL, sim.Addr(), 1, "")
	os.WriteFile(path, []byte(orig), 0o644)
	reload := make(chan struct{})
	opts := testOptions(path)
	opts.Reload = reload
	a, _ := startAgent(t, opts)
	_, h0 := a.Config()

	os.WriteFile(path, []byte("agent: {id: a1\n"), 0o644)
	reload <- struct{}{}
	time.Sleep(300 * time.Millisecond)
	if _, h := a.Config(); h != h0 {
		t.Fatalf("a bad file replaced the running config")
	}
	waitUntil(t, "polling goes on", 5*time.Second, func() bool { return a.Health().Devices[0].Reads > 5 })

	good := agentConfig(filepath.Join(dir, "data"), broker.URL, sim.Addr(), 2, "")
	os.WriteFile(path, []byte(good), 0o644)
	reload <- struct{}{}
	waitUntil(t, "new config", 5*time.Second, func() bool { _, h := a.Config(); return h == config.Hash([]byte(good)) })
	waitUntil(t, "2 devices polled", 5*time.Second, func() bool {
		d := a.Health().Devices
		return len(d) == 2 && d[1].Reads > 0
	})
}

// OPC UA through the whole path: a subscribed and a polled point of the
// OPC UA simulator arrive at the broker.
func TestEndToEndOPCUA(t *testing.T) {
	sim, err := opcuasim.Start(opcuasim.Options{Addr: "127.0.0.1:0", Profile: "all", UpdateInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Stop)
	broker := testservers.Mosquitto(t)
	rcv := listen(t, broker.URL, "opcua-listener")
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	cfg := fmt.Sprintf(`agent: {id: a1, site: %s, data_dir: %s}
mqtt: {broker: %q}
batch: {max_samples: 50, flush_interval: 100ms}
devices:
  - id: opc1
    interval: 200ms
    opcua: {endpoint: %q, timeout: 3s}
    points:
      - {name: counter, node: "ns=1;s=Types.Counter"}
      - {name: double, node: "ns=1;s=Types.Double", mode: poll, scale: 2}
`, testSite, filepath.Join(dir, "data"), broker.URL, sim.Endpoint())
	os.WriteFile(path, []byte(cfg), 0o644)
	a, stop := startAgent(t, testOptions(path))
	waitUntil(t, "subscribed and polled samples at the broker", 20*time.Second, func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		got := map[string]int{}
		for _, b := range rcv.first {
			for _, s := range b.Samples {
				if s.Quality == wire.Good {
					got[s.Point]++
				}
			}
		}
		return got["counter"] >= 3 && got["double"] >= 3
	})
	h := a.Health()
	stop()
	if len(h.Devices) != 1 || h.Devices[0].State != wire.DeviceOK || h.Devices[0].Protocol != "opcua" {
		t.Errorf("device health %+v", h.Devices)
	}
}

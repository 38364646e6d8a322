package runner

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftiot/weft/internal/testservers"
	modbussim "github.com/weftiot/weft/sim/modbus"
	"github.com/weftiot/weft/wire"
)

// Issue 6: health every agent.health_interval on the health topic, with
// the figures the issue lists. The message at connect time alone (which
// every connection sends) would not show the period: over 2 s at 300ms
// there must be about six more.
func TestHealthEveryInterval(t *testing.T) {
	sim := startSim(t, 1)
	broker := testservers.Mosquitto(t)
	rcv := listen(t, broker.URL, "health-listener")
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	cfg := agentConfig(filepath.Join(dir, "data"), broker.URL, sim.Addr(), 1, "")
	fast := strings.Replace(cfg, "health_interval: 500ms", "health_interval: 300ms", 1)
	if fast == cfg {
		t.Fatalf("the test config has no health_interval to change:\n%s", cfg)
	}
	os.WriteFile(path, []byte(fast), 0o644)
	a, _ := startAgent(t, testOptions(path))
	count := func() int {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return len(rcv.health)
	}
	waitUntil(t, "the health of the connection", 10*time.Second, func() bool { return count() > 0 })
	n0 := count()
	time.Sleep(2 * time.Second)
	if n := count() - n0; n < 4 || n > 8 {
		t.Errorf("%d health messages in 2 s with health_interval 300ms, want about 6", n)
	}

	rcv.mu.Lock()
	h := rcv.health[len(rcv.health)-1]
	rcv.mu.Unlock()
	_, hash := a.Config()
	if h.Agent != "a1" || h.ConfigHash != hash || h.Version == "" || h.UptimeS < 1 || h.Spool.LastSeq == 0 ||
		!h.Forwarder.Connected || h.Forwarder.PublishedBatch == 0 || h.Forwarder.PublishedSamp == 0 {
		t.Errorf("health %+v: want identity, hash, version, uptime, spool and broker figures", h)
	}
	if len(h.Devices) != 1 {
		t.Fatalf("health devices %+v, want 1", h.Devices)
	}
	// The publish rate is the counters' difference between two messages
	// over their time apart (to within the millisecond of ts), and about
	// what one device of two points polled every 100ms makes.
	rcv.mu.Lock()
	hs := append([]wire.Health(nil), rcv.health[n0:]...)
	rcv.mu.Unlock()
	for i := 1; i < len(hs); i++ {
		prev, cur := hs[i-1], hs[i]
		dt := float64(cur.TS-prev.TS) / 1000
		want := float64(cur.Forwarder.PublishedSamp-prev.Forwarder.PublishedSamp) / dt
		if got := cur.Forwarder.SamplesPerS; got < 5 || got > 100 || math.Abs(got-want) > 0.02*want+0.5 {
			t.Errorf("health %d: samples_per_s %.2f, want %.2f (%d samples in %.3fs) and between 5 and 100", i, got, want, cur.Forwarder.PublishedSamp-prev.Forwarder.PublishedSamp, dt)
		}
		wantB := float64(cur.Forwarder.PublishedBatch-prev.Forwarder.PublishedBatch) / dt
		if got := cur.Forwarder.BatchesPerS; got <= 0 || math.Abs(got-wantB) > 0.02*wantB+0.5 {
			t.Errorf("health %d: batches_per_s %.2f, want %.2f", i, got, wantB)
		}
	}
	if d := h.Devices[0]; d.State != wire.DeviceOK || d.Reads == 0 || d.Requests == 0 || d.LatencyMs <= 0 || d.LastOK == 0 || d.Samples == 0 {
		t.Errorf("device health %+v: want state, reads, requests, latency, last ok and samples", d)
	}
}

// Issue 6: errors by kind. Against the simulator, a point on a register the
// device does not have is answered with exception 2, and requests the
// device leaves unanswered time out; each shows under its kind in the
// health message the gateway receives.
func TestHealthErrorsByKind(t *testing.T) {
	sim := startSim(t, 1)
	broker := testservers.Mosquitto(t)
	rcv := listen(t, broker.URL, "kinds-listener")
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	cfg := agentConfig(filepath.Join(dir, "data"), broker.URL, sim.Addr(), 1, "")
	missing := strings.Replace(cfg, "timeout: 500ms}", "timeout: 200ms, max_gap: 0}", 1) +
		"      - {name: missing, table: holding, address: 1000, type: uint16}\n"
	if !strings.Contains(missing, "max_gap: 0") {
		t.Fatalf("the test config has no modbus timeout to change:\n%s", cfg)
	}
	os.WriteFile(path, []byte(missing), 0o644)
	startAgent(t, testOptions(path))
	last := func() (wire.DeviceHealth, bool) {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		if len(rcv.health) == 0 || len(rcv.health[len(rcv.health)-1].Devices) == 0 {
			return wire.DeviceHealth{}, false
		}
		return rcv.health[len(rcv.health)-1].Devices[0], true
	}
	waitUntil(t, "an exception in the health message", 10*time.Second, func() bool {
		d, ok := last()
		return ok && d.ErrorsByKind[wire.ErrorException] > 0
	})
	if d, _ := last(); d.ErrorsByKind[wire.ErrorTimeout] != 0 || d.ErrorsByKind[wire.ErrorIO] != 0 {
		t.Errorf("errors by kind %v before any fault: want only exceptions", d.ErrorsByKind)
	}

	sim.SetFault(modbussim.Fault{DropNext: 3})
	waitUntil(t, "timeouts in the health message", 15*time.Second, func() bool {
		d, ok := last()
		return ok && d.ErrorsByKind[wire.ErrorTimeout] >= 3
	})
	d, _ := last()
	if d.ErrorsByKind[wire.ErrorTimeout] != 3 {
		t.Errorf("errors by kind %v: want 3 timeouts, one per request the simulator left unanswered", d.ErrorsByKind)
	}
	for k, n := range d.ErrorsByKind {
		if n == 0 {
			t.Errorf("kind %q sent with 0: zero kinds are left out", k)
		}
	}
}

// The publish rate runs from the agent's start until the first health
// message is published, then from one published message to the next; a
// counter that went back (a new forwarder after a config change) counts
// from zero, and a message older than the last one published is ignored.
func TestPublishRate(t *testing.T) {
	start := time.UnixMilli(1_000_000)
	var r publishRate
	fh := func(b, s uint64) wire.ForwardHealth { return wire.ForwardHealth{PublishedBatch: b, PublishedSamp: s} }
	check := func(what string, now time.Time, f wire.ForwardHealth, wantB, wantS float64) {
		t.Helper()
		if b, s := r.since(start, now, f); math.Abs(b-wantB) > 1e-9 || math.Abs(s-wantS) > 1e-9 {
			t.Errorf("%s: %v batches/s, %v samples/s; want %v, %v", what, b, s, wantB, wantS)
		}
	}
	check("from start", start.Add(4*time.Second), fh(2, 100), 0.5, 25)
	check("at start", start, fh(0, 0), 0, 0)
	r.published(wire.Health{TS: start.Add(4 * time.Second).UnixMilli(), Forwarder: fh(2, 100)})
	check("from the message", start.Add(6*time.Second), fh(6, 300), 2, 100)
	r.published(wire.Health{TS: start.Add(10 * time.Second).UnixMilli(), Forwarder: fh(10, 500)})
	r.published(wire.Health{TS: start.Add(8 * time.Second).UnixMilli(), Forwarder: fh(8, 400)}) // older: ignored
	check("counters reset", start.Add(12*time.Second), fh(1, 40), 0.5, 20)
	check("no publish", start.Add(20*time.Second), fh(10, 500), 0, 0)
}

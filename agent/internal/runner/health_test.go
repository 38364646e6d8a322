package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftiot/weft/internal/testservers"
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
	if d := h.Devices[0]; d.State != wire.DeviceOK || d.Reads == 0 || d.Requests == 0 || d.LatencyMs <= 0 || d.LastOK == 0 || d.Samples == 0 {
		t.Errorf("device health %+v: want state, reads, requests, latency, last ok and samples", d)
	}
}

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

// Issue 6: `rebirth` republishes the retained status; `status` publishes
// status and health now. Health is set to come only every hour here, so a
// health message after the command can only be the command's.
func TestRebirthAndStatusPublishNow(t *testing.T) {
	sim := startSim(t, 1)
	broker := testservers.Mosquitto(t)
	rcv := listen(t, broker.URL, "rebirth-listener")
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	cfg := agentConfig(filepath.Join(dir, "data"), broker.URL, sim.Addr(), 1, "")
	hourly := strings.Replace(cfg, "health_interval: 500ms", "health_interval: 1h", 1)
	if hourly == cfg {
		t.Fatalf("the test config has no health_interval to change:\n%s", cfg)
	}
	os.WriteFile(path, []byte(hourly), 0o644)
	a, _ := startAgent(t, testOptions(path))
	counts := func() (status, health int) {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return len(rcv.status), len(rcv.health)
	}
	waitUntil(t, "online status and the health of the connection", 10*time.Second, func() bool {
		s, h := counts()
		return s > 0 && h > 0 && a.forwarder().Connected()
	})
	s0, h0 := counts()

	rcv.command(t, wire.Command{ID: "rb1", Name: CmdRebirth})
	waitUntil(t, "reply rb1", 10*time.Second, func() bool { return rcv.reply("rb1", 1) != nil })
	if r := rcv.reply("rb1", 1)[0]; !r.OK {
		t.Errorf("rebirth reply %+v, want ok", r)
	}
	waitUntil(t, "the status republished", 5*time.Second, func() bool { s, _ := counts(); return s > s0 })
	if st := rcv.lastStatus(); st.State != wire.Online || len(st.Devices) != 1 || len(st.Points) != 1 {
		t.Errorf("republished status %+v: want online with the device and its points", st)
	}

	s1, _ := counts()
	rcv.command(t, wire.Command{ID: "st1", Name: wire.CmdStatus})
	waitUntil(t, "reply st1", 10*time.Second, func() bool { return rcv.reply("st1", 1) != nil })
	waitUntil(t, "status and health published now", 5*time.Second, func() bool {
		s, h := counts()
		return s > s1 && h > h0
	})
}

package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Issue 6's report by exception, from the config file to the pipeline
// (the filter itself: pipeline.TestFilterReportByException). reg4 of the
// simulator never changes; with a deadband and a 250ms heartbeat, polled
// every 100ms, it is reported every third poll (the heartbeat), while the
// counter next to it, without a deadband, is reported every poll.
func TestDeadbandAndHeartbeatFromTheConfig(t *testing.T) {
	sim := startSim(t, 1)
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	cfg := agentConfig(filepath.Join(dir, "data"), "tcp://127.0.0.1:1", sim.Addr(), 1, "")
	rbe := strings.Replace(cfg, "scale: 0.5, offset: 1}", "scale: 0.5, offset: 1, deadband: 1, heartbeat: 250ms}", 1)
	if rbe == cfg {
		t.Fatalf("the test config has no reg4 point to change:\n%s", cfg)
	}
	os.WriteFile(path, []byte(rbe), 0o644)
	a, stop := startAgent(t, testOptions(path))
	waitUntil(t, "30 polls", 10*time.Second, func() bool { return a.Health().Devices[0].Reads >= 30 })
	stop()
	polls := float64(a.Health().Devices[0].Reads)
	p := a.pipeline()
	// ticks: every poll; reg4: its first poll, then one in three.
	if f := float64(p.suppressed) / polls; f < 0.5 || f > 0.8 {
		t.Errorf("%d of reg4's %.0f readings suppressed (%.2f), want about two in three: deadband or heartbeat not taken from the config", p.suppressed, polls, f)
	}
	if reported := float64(p.samples) - polls; reported < polls/5 || reported > polls/2 {
		t.Errorf("reg4 reported %.0f times in %.0f polls, want about one in three", reported, polls)
	}
}

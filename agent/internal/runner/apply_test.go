package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftiot/weft/agent/internal/spool"
	"github.com/weftiot/weft/config"
)

// Issue 6: a new config is applied "without losing buffered data", and at
// a stop the pipeline is flushed into the spool. With a batch that never
// closes by itself (flush_interval 1h, max_samples 100000) and no broker,
// every sample the agent has read sits in the pipeline's open batch: a
// reload must put the old pipeline's samples into the spool before the
// new one starts, and the stop must put the new one's there too.
func TestApplyAndStopKeepBufferedSamples(t *testing.T) {
	sim := startSim(t, 2)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	path := filepath.Join(dir, "agent.yaml")
	const deadBroker = "tcp://127.0.0.1:1"
	open := func(devices int) string {
		c := agentConfig(dataDir, deadBroker, sim.Addr(), devices, "")
		r := strings.Replace(c, "  max_samples: 50\n  flush_interval: 100ms\n", "  max_samples: 100000\n  flush_interval: 1h\n", 1)
		if r == c {
			t.Fatalf("the test config has no batch section to change:\n%s", c)
		}
		return r
	}
	os.WriteFile(path, []byte(open(1)), 0o644)
	reload := make(chan struct{})
	opts := testOptions(path)
	opts.Reload = reload
	a, stop := startAgent(t, opts)

	waitUntil(t, "polls into the open batch", 10*time.Second, func() bool { return a.pipeline().samples >= 20 })
	if st := a.Health().Spool; st.Batches != 0 {
		t.Fatalf("spool has %d batches before any flush: the batch is not held open, the test proves nothing", st.Batches)
	}

	next := open(2)
	os.WriteFile(path, []byte(next), 0o644)
	reload <- struct{}{}
	waitUntil(t, "the new config", 10*time.Second, func() bool { _, h := a.Config(); return h == config.Hash([]byte(next)) })
	a.mu.Lock()
	old := a.pipeBase
	a.mu.Unlock()
	sp := a.Health().Spool
	if old.samples == 0 || uint64(sp.Samples) != old.samples || old.lost != 0 {
		t.Errorf("after the reload the spool holds %d samples; the replaced pipeline had taken %d (lost %d): want them all in the spool",
			sp.Samples, old.samples, old.lost)
	}
	waitUntil(t, "the new pipeline collecting", 10*time.Second, func() bool { return a.pipeline().samples >= old.samples+20 })

	stop()
	total := a.pipeline()
	s, err := spool.Open(filepath.Join(dataDir, "spool.db"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	s.Close()
	if uint64(st.Samples) != total.samples || total.lost != 0 {
		t.Errorf("after the stop the spool holds %d samples; the pipelines took %d (lost %d): want every one in the spool",
			st.Samples, total.samples, total.lost)
	}
	t.Logf("spool after the reload: %d samples (the old pipeline's); after the stop: %d of %d", sp.Samples, st.Samples, total.samples)
}

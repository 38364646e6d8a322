package runner

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/weftiot/weft/internal/sdnotify"
	"github.com/weftiot/weft/internal/version"
	"github.com/weftiot/weft/wire"
)

// pipeStats accumulates the counters of replaced pipelines, so that the
// agent's totals never go back when a config is applied.
type pipeStats struct {
	samples, batches, appended, lost, appendErrors, suppressed uint64
}

func (p *pipeStats) add(o pipeStats) {
	p.samples += o.samples
	p.batches += o.batches
	p.appended += o.appended
	p.lost += o.lost
	p.appendErrors += o.appendErrors
	p.suppressed += o.suppressed
}

// pipeline returns the agent's pipeline totals since start.
func (a *Agent) pipeline() pipeStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.coll.batcher.Stats()
	p := a.pipeBase
	p.add(pipeStats{samples: st.Samples, batches: st.Batches, appended: st.Appended, lost: st.Lost, appendErrors: st.AppendErrors, suppressed: a.coll.suppressed()})
	return p
}

// Health is the agent's health message as of now.
func (a *Agent) Health() wire.Health {
	a.mu.Lock()
	cfg, hash, coll, fwd, rolled := a.cfg, a.hash, a.coll, a.fwd, a.rolled
	a.mu.Unlock()
	st := a.sp.Stats()
	p := a.pipeline()
	fh := fwd.Health()
	if rolled != "" && fh.LastError == "" {
		fh.LastError = rolled
	}
	now := time.Now()
	fh.BatchesPerS, fh.SamplesPerS = a.rate.since(a.started, now, fh)
	return wire.Health{
		V:          wire.Version,
		Agent:      cfg.Agent.ID,
		Site:       cfg.Agent.Site,
		TS:         now.UnixMilli(),
		Version:    version.Version,
		ConfigHash: hash,
		UptimeS:    int64(now.Sub(a.started).Seconds()),
		Spool: wire.SpoolHealth{
			Batches:        st.Batches,
			Bytes:          st.Bytes,
			Samples:        st.Samples,
			OldestAgeMs:    st.OldestAge.Milliseconds(),
			DroppedOldest:  st.DroppedOldest,
			DroppedNewest:  st.DroppedNewest,
			DroppedExpired: st.DroppedExpired,
			DroppedCorrupt: st.DroppedCorrupt,
			LostSamples:    p.lost,
			LastSeq:        st.LastSeq,
		},
		Forwarder: fh,
		Devices:   coll.health(),
	}
}

// publishRate turns the forwarder's cumulative publish counters into the
// rate health reports: over the time since the last health message was
// published, or since the agent started before the first one.
type publishRate struct {
	mu               sync.Mutex
	at               time.Time // the last published health message; zero before it
	batches, samples uint64    // the counters it carried
}

// since returns batches/s and samples/s from the last published health
// message (or from started) to now. A counter lower than the one last
// published was reset (a new forwarder after a config change): it is taken
// as counted from zero, as Prometheus's rate() does.
func (r *publishRate) since(started, now time.Time, fh wire.ForwardHealth) (batches, samples float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	from := r.at
	if from.IsZero() {
		from = started
	}
	dt := now.Sub(from).Seconds()
	if dt <= 0 {
		return 0, 0
	}
	delta := func(cur, prev uint64) float64 {
		if cur < prev {
			return float64(cur)
		}
		return float64(cur - prev)
	}
	return delta(fh.PublishedBatch, r.batches) / dt, delta(fh.PublishedSamp, r.samples) / dt
}

// published makes the health message h the start of the next interval,
// unless a later one was published meanwhile (the connect-time message and
// the periodic one may be sent at the same moment).
func (r *publishRate) published(h wire.Health) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at := time.UnixMilli(h.TS)
	if at.Before(r.at) {
		return
	}
	r.at = at
	r.batches, r.samples = h.Forwarder.PublishedBatch, h.Forwarder.PublishedSamp
}

// healthLoop publishes health every agent.health_interval and, when systemd
// asks for a watchdog (WatchdogSec=), pings it at half that interval: the
// pings come from this loop, after it has built a health message, so that
// they prove the agent still works rather than that a timer still fires.
func (a *Agent) healthLoop(ctx context.Context) {
	var ping <-chan time.Time
	if wd := sdnotify.WatchdogInterval(); wd > 0 {
		t := time.NewTicker(wd / 2)
		defer t.Stop()
		ping = t.C
	}
	every := a.healthInterval()
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ping:
			a.watchdog()
		case <-a.healthSet: // a new config may have a new interval
			every = a.healthInterval()
			t.Reset(every)
		case <-t.C:
			a.publishHealth()
			t.Reset(every)
		}
	}
}

// healthInterval is agent.health_interval (default 10s).
func (a *Agent) healthInterval() time.Duration {
	a.mu.Lock()
	every := a.cfg.Agent.HealthInterval
	a.mu.Unlock()
	if every <= 0 {
		every = 10 * time.Second
	}
	return every
}

// publishHealth sends the health message now, if the broker is reachable.
func (a *Agent) publishHealth() {
	h := a.Health()
	b, err := json.Marshal(h)
	if err != nil {
		a.log.Error("health: encoding", "err", err)
		return
	}
	a.mu.Lock()
	topic := wire.Topics{Prefix: a.cfg.MQTT.TopicPrefix}.Health(a.cfg.Agent.Site, a.cfg.Agent.ID)
	a.mu.Unlock()
	if err := a.forwarder().Publish(topic, 0, false, b, 5*time.Second); err != nil {
		a.log.Debug("health not published", "err", err)
		return
	}
	a.rate.published(h)
}

package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/weftiot/weft/gateway/internal/registry"
)

// histPoint is one sample of an agent's figures for the agent page's charts.
type histPoint struct {
	T           int64 `json:"t"`       // ms since the epoch
	Backlog     int64 `json:"backlog"` // samples in the agent's spool
	OldestAgeMs int64 `json:"oldest_age_ms"`
	// PublishRate is samples/s the agent reports it published since the
	// previous point (from its health counters); -1 when unknown (first
	// point, an agent restart, no new health).
	PublishRate float64 `json:"publish_rate"`
	// ReceiveRate is samples/s this gateway received from the agent.
	ReceiveRate float64 `json:"receive_rate"`
	Online      bool    `json:"online"`
}

// agentHist is a ring of one agent's points, oldest first when read.
type agentHist struct {
	pts       []histPoint
	next      int
	full      bool
	published uint64 // the agent's published-samples counter at the last point
	health    int64  // its last_health at the last point
	lastT     int64
}

// history keeps the last hour of every agent's backlog and publish rate,
// sampled from the registry: the registry keeps only the newest figures.
type history struct {
	every time.Duration
	keep  int

	mu     sync.Mutex
	agents map[string]*agentHist
}

func newHistory(every, span time.Duration) *history {
	return &history{every: every, keep: max(2, int(span/every)), agents: map[string]*agentHist{}}
}

// run samples reg at once and then every h.every until ctx is done.
func (h *history) run(ctx context.Context, reg *registry.Registry) {
	t := time.NewTicker(h.every)
	defer t.Stop()
	for {
		h.sample(reg.Agents(), time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sample records one point for each agent.
func (h *history) sample(agents []registry.Agent, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ms := now.UnixMilli()
	seen := make(map[string]bool, len(agents))
	for _, a := range agents {
		key := a.Site + "/" + a.ID
		seen[key] = true
		ah := h.agents[key]
		if ah == nil {
			ah = &agentHist{pts: make([]histPoint, h.keep), published: a.Link.PublishedSamples, health: a.LastHealth}
			h.agents[key] = ah
		}
		p := histPoint{T: ms, Backlog: a.Backlog.Samples, OldestAgeMs: a.Backlog.OldestAgeMs,
			ReceiveRate: a.Received.SamplesPerSec, Online: a.State == registry.StateOnline, PublishRate: -1}
		switch {
		case a.LastHealth != ah.health && a.Link.PublishedSamples >= ah.published && ah.health != 0:
			// The counter covers the time between the two health messages;
			// they come at the agent's health_interval.
			if dt := float64(a.LastHealth-ah.health) / 1000; dt > 0 {
				p.PublishRate = float64(a.Link.PublishedSamples-ah.published) / dt
			}
		case a.LastHealth == ah.health && ah.lastT != 0 && p.Online:
			// No new health since the last point: repeat the last rate.
			if prev := ah.last(); prev != nil {
				p.PublishRate = prev.PublishRate
			}
		}
		ah.published, ah.health, ah.lastT = a.Link.PublishedSamples, a.LastHealth, ms
		ah.pts[ah.next] = p
		ah.next = (ah.next + 1) % len(ah.pts)
		if ah.next == 0 {
			ah.full = true
		}
	}
	for k := range h.agents {
		if !seen[k] {
			delete(h.agents, k)
		}
	}
}

func (ah *agentHist) last() *histPoint {
	if !ah.full && ah.next == 0 {
		return nil
	}
	return &ah.pts[(ah.next-1+len(ah.pts))%len(ah.pts)]
}

// points returns a copy of an agent's points, oldest first.
func (h *history) points(site, agent string) []histPoint {
	h.mu.Lock()
	defer h.mu.Unlock()
	ah := h.agents[site+"/"+agent]
	if ah == nil {
		return []histPoint{}
	}
	if !ah.full {
		return append([]histPoint{}, ah.pts[:ah.next]...)
	}
	return append(append([]histPoint{}, ah.pts[ah.next:]...), ah.pts[:ah.next]...)
}

// history serves GET /ui/history/{site}/{agent}.
func (d *Dashboard) history(w http.ResponseWriter, r *http.Request) {
	site, agent := r.PathValue("site"), r.PathValue("agent")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"site": site, "agent": agent,
		"every_ms": d.hist.every.Milliseconds(), "points": d.hist.points(site, agent)})
}

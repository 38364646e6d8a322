package registry

import (
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"sort"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// Alert kinds. docs/alerts.md describes each rule.
const (
	KindAgentOffline   = "agent_offline"
	KindBacklogOld     = "backlog_old"
	KindBacklogGrowing = "backlog_growing"
	KindSamplesDropped = "samples_dropped"
	KindDeviceDown     = "device_down"
	KindSeqGap         = "sequence_gap"
)

// maxHistory is how many ended alerts are kept.
const maxHistory = 1000

// Alert is one alert, active (Ended 0) or ended. Times are ms since the epoch.
type Alert struct {
	ID      uint64 `json:"id"`
	Kind    string `json:"kind"`
	Site    string `json:"site"`
	Agent   string `json:"agent"`
	Device  string `json:"device,omitempty"`
	Message string `json:"message"`
	Started int64  `json:"started"`
	Ended   int64  `json:"ended,omitempty"`
}

// Active reports whether the alert has not ended.
func (a Alert) Active() bool { return a.Ended == 0 }

func alertKey(id uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], id)
	return k[:]
}

type alertID struct{ kind, site, agent, device string }

// alertBook holds the active alerts and the recent ended ones.
type alertBook struct {
	nextID  uint64
	active  map[alertID]*Alert
	ended   []Alert // oldest first
	dirty   map[uint64]Alert
	deleted []uint64
}

func (b *alertBook) init() {
	b.active = map[alertID]*Alert{}
	b.dirty = map[uint64]Alert{}
	b.nextID = 1
}

func (b *alertBook) load(bk *bolt.Bucket, log *slog.Logger) error {
	return bk.ForEach(func(k, v []byte) error {
		var a Alert
		if err := json.Unmarshal(v, &a); err != nil {
			log.Warn("registry: skipping an unreadable alert record", "error", err)
			return nil
		}
		if a.ID >= b.nextID {
			b.nextID = a.ID + 1
		}
		if a.Active() {
			c := a
			b.active[alertID{a.Kind, a.Site, a.Agent, a.Device}] = &c
		} else {
			b.ended = append(b.ended, a)
		}
		return nil
	})
}

// set starts or ends the alert; it reports the alert and whether it changed
// state. While an alert stays active its message is refreshed.
func (b *alertBook) set(kind, site, agent, device string, on bool, msg string, ms int64) (Alert, bool) {
	id := alertID{kind, site, agent, device}
	cur := b.active[id]
	switch {
	case on && cur == nil:
		a := &Alert{ID: b.nextID, Kind: kind, Site: site, Agent: agent, Device: device, Message: msg, Started: ms}
		b.nextID++
		b.active[id] = a
		b.dirty[a.ID] = *a
		return *a, true
	case on:
		if cur.Message != msg {
			cur.Message = msg
			b.dirty[cur.ID] = *cur
		}
	case cur != nil:
		cur.Ended = ms
		delete(b.active, id)
		b.ended = append(b.ended, *cur)
		b.dirty[cur.ID] = *cur
		if len(b.ended) > maxHistory {
			n := len(b.ended) - maxHistory
			for _, old := range b.ended[:n] {
				b.deleted = append(b.deleted, old.ID)
				delete(b.dirty, old.ID)
			}
			b.ended = append(b.ended[:0], b.ended[n:]...)
		}
		return *cur, true
	}
	return Alert{}, false
}

func (b *alertBook) activeFor(site, agent string) []Alert {
	var out []Alert
	for id, a := range b.active {
		if id.site == site && id.agent == agent {
			out = append(out, *a)
		}
	}
	return out
}

func (b *alertBook) takeDirty() ([]Alert, []uint64) {
	if len(b.dirty) == 0 && len(b.deleted) == 0 {
		return nil, nil
	}
	out := make([]Alert, 0, len(b.dirty))
	for _, a := range b.dirty {
		out = append(out, a)
	}
	clear(b.dirty)
	del := b.deleted
	b.deleted = nil
	return out, del
}

// Alerts returns the active alerts (newest first) and, if history, the ended
// ones too (most recently ended first), at most limit ended ones.
func (r *Registry) Alerts(history bool, limit int) []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Alert, 0, len(r.alerts.active))
	for _, a := range r.alerts.active {
		out = append(out, *a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	if history {
		for i := len(r.alerts.ended) - 1; i >= 0 && limit > 0; i-- {
			out = append(out, r.alerts.ended[i])
			limit--
		}
	}
	return out
}

// AgentAlerts returns the active alerts of one agent, newest first.
func (r *Registry) AgentAlerts(site, id string) []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.alerts.activeFor(site, id)
	sort.Slice(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	return out
}

// String names the alert for logs.
func (a Alert) String() string {
	s := a.Kind + " " + a.Site + "/" + a.Agent
	if a.Device != "" {
		s += " device " + a.Device
	}
	return s + " #" + strconv.FormatUint(a.ID, 10)
}

// Package registry is the gateway's view of the fleet: every agent's state,
// figures and latest values, the sequence bookkeeping of its batches, and the
// alerts raised on them. It lives in memory and is saved to the gateway's
// bbolt file, so a restart does not forget agents that are offline right now.
package registry

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/weftiot/weft/wire"
)

// Agent states as the registry reports them.
const (
	StateOnline  = wire.Online
	StateOffline = wire.Offline
	StateUnknown = "unknown" // seen only through data or health, never a status
)

var (
	bucketAgents = []byte("agents")
	bucketAlerts = []byte("alerts")
)

// Rules are the alert thresholds.
type Rules struct {
	// OfflineAfter: an agent offline (or silent) this long raises agent_offline;
	// it is also the grace before a missing batch counts as a gap.
	OfflineAfter time.Duration
	// BacklogAgeAfter: an oldest unsent sample this old, or a backlog growing
	// this long, raises a backlog alert; drops and gaps keep their alert
	// this long after the last one.
	BacklogAgeAfter time.Duration
}

// Agent is one agent as the API shows it. Times are ms since the epoch, 0
// when unknown.
type Agent struct {
	Site       string `json:"site"`
	ID         string `json:"id"`
	State      string `json:"state"`
	StateSince int64  `json:"state_since"`
	LastSeen   int64  `json:"last_seen"`
	LastHealth int64  `json:"last_health"`
	Version    string `json:"version"`
	ConfigHash string `json:"config_hash"`
	// PushedConfigHash is the hash the agent reported for the last config
	// pushed through this gateway.
	PushedConfigHash string   `json:"pushed_config_hash,omitempty"`
	PushedAt         int64    `json:"pushed_at,omitempty"`
	Started          int64    `json:"started"`
	UptimeS          int64    `json:"uptime_s"`
	DeviceNames      []string `json:"device_names"`
	Devices          []Device `json:"devices"`
	Backlog          Backlog  `json:"backlog"`
	Dropped          Dropped  `json:"dropped"`
	Link             Link     `json:"link"`
	Seq              Seq      `json:"seq"`
	Received         Received `json:"received"`
	ActiveAlerts     int      `json:"active_alerts"`
}

// Device is one of an agent's devices, from its last health message.
type Device struct {
	ID        string  `json:"id"`
	Protocol  string  `json:"protocol"`
	State     string  `json:"state"`
	LatencyMs float64 `json:"latency_ms"`
	Reads     uint64  `json:"reads"`
	Errors    uint64  `json:"errors"`
	// ErrorsByKind is the agent's count of failed requests by kind
	// (wire.DeviceHealth.ErrorsByKind), as of its last health message.
	ErrorsByKind map[string]uint64 `json:"errors_by_kind,omitempty"`
	// ErrorRate is errors per read between the last two health messages.
	ErrorRate float64 `json:"error_rate"`
	LastError string  `json:"last_error,omitempty"`
	LastOK    int64   `json:"last_ok,omitempty"`
	Samples   uint64  `json:"samples"`
}

// Backlog is the agent's spool.
type Backlog struct {
	Batches     int64 `json:"batches"`
	Samples     int64 `json:"samples"`
	Bytes       int64 `json:"bytes"`
	OldestAgeMs int64 `json:"oldest_age_ms"`
	// GrowingSince is when the backlog started to grow without shrinking.
	GrowingSince int64 `json:"growing_since,omitempty"`
}

// Dropped counts samples the agent's spool had to drop.
type Dropped struct {
	Oldest uint64 `json:"oldest"`
	Newest uint64 `json:"newest"`
	LastAt int64  `json:"last_at,omitempty"` // when the count last grew
}

// Link is the agent's connection to the broker, as it reports it.
type Link struct {
	Connected        bool   `json:"connected"`
	Reconnects       uint64 `json:"reconnects"`
	PublishedBatches uint64 `json:"published_batches"`
	PublishedSamples uint64 `json:"published_samples"`
	LastError        string `json:"last_error,omitempty"`
}

// Seq is the sequence bookkeeping of the agent's batches.
type Seq struct {
	Last       uint64 `json:"last"`
	Gaps       uint64 `json:"gaps"`
	Missing    uint64 `json:"missing"` // in holes not yet counted as gaps
	Duplicates uint64 `json:"duplicates"`
	Late       uint64 `json:"late"`
	Resets     uint64 `json:"resets"`
	// Others counts batches that other gateway instances on the shared
	// subscription stored and reported (docs/gateway.md, Several gateways).
	Others    uint64 `json:"others"`
	LastGapAt int64  `json:"last_gap_at,omitempty"`
}

// Received counts what this gateway instance received from the agent.
type Received struct {
	Batches       uint64  `json:"batches"`
	Samples       uint64  `json:"samples"`
	SamplesPerSec float64 `json:"samples_per_sec"`
	LastBatch     int64   `json:"last_batch,omitempty"`
}

// Latest is the newest sample of one point.
type Latest struct {
	Device  string `json:"device"`
	Point   string `json:"point"`
	Value   any    `json:"value"` // number, bool, string or null
	Quality string `json:"quality"`
	Code    uint32 `json:"code,omitempty"`
	TS      int64  `json:"ts"`
	// Unit and Type come from the agent's last online status (its config):
	// empty when the point has none or the agent does not say.
	Unit string `json:"unit,omitempty"`
	Type string `json:"type,omitempty"`
}

// agent is the registry's record of one agent.
type agent struct {
	Agent
	SeqState seqState `json:"seq_state"`
	// latest[device][point]; in memory only.
	latest map[string]map[string]*wire.Sample
	// points[device][point] from the last status that described them; in
	// memory only: the status is retained, so a restarted gateway gets it
	// again from the broker.
	points map[string]map[string]wire.PointInfo
	// rate bookkeeping
	rateSamples uint64
	rateAt      time.Time
}

// syncSeq copies the sequence bookkeeping into the API view.
func (a *agent) syncSeq() {
	a.Seq = Seq{Last: a.SeqState.Last, Gaps: a.SeqState.Gaps, Missing: a.SeqState.missing(),
		Duplicates: a.SeqState.Duplicates, Late: a.SeqState.Late, Resets: a.SeqState.Resets, Others: a.SeqState.Others,
		LastGapAt: a.Seq.LastGapAt}
}

func (a *agent) key() string { return a.Site + "/" + a.ID }

// Registry is the fleet view. It is safe for concurrent use.
type Registry struct {
	db    *bolt.DB
	log   *slog.Logger
	rules Rules
	now   func() time.Time

	mu      sync.Mutex
	agents  map[string]*agent
	dirty   map[string]bool
	alerts  alertBook
	onAlert func(Alert)
}

// Open loads the registry from db (creating its buckets) and returns it.
func Open(db *bolt.DB, rules Rules, log *slog.Logger) (*Registry, error) {
	if rules.OfflineAfter <= 0 {
		rules.OfflineAfter = 2 * time.Minute
	}
	if rules.BacklogAgeAfter <= 0 {
		rules.BacklogAgeAfter = 10 * time.Minute
	}
	r := &Registry{db: db, log: log, rules: rules, now: time.Now,
		agents: map[string]*agent{}, dirty: map[string]bool{}}
	r.alerts.init()
	err := db.Update(func(tx *bolt.Tx) error {
		ab, err := tx.CreateBucketIfNotExists(bucketAgents)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketAlerts); err != nil {
			return err
		}
		if err := ab.ForEach(func(k, v []byte) error {
			a := &agent{}
			if err := json.Unmarshal(v, a); err != nil {
				log.Warn("registry: skipping an unreadable agent record", "key", string(k), "error", err)
				return nil
			}
			a.latest = map[string]map[string]*wire.Sample{}
			r.agents[a.key()] = a
			return nil
		}); err != nil {
			return err
		}
		return r.alerts.load(tx.Bucket(bucketAlerts), log)
	})
	if err != nil {
		return nil, fmt.Errorf("registry: load from %s: %w", db.Path(), err)
	}
	return r, nil
}

// SetClock replaces the clock, for tests of the alert rules.
func (r *Registry) SetClock(now func() time.Time) {
	r.mu.Lock()
	r.now = now
	r.mu.Unlock()
}

// OnAlert registers a function called (under the registry's lock; it must
// not call back) whenever an alert starts or ends.
func (r *Registry) OnAlert(f func(Alert)) {
	r.mu.Lock()
	r.onAlert = f
	r.mu.Unlock()
}

// get returns the agent, creating it. Callers hold r.mu.
func (r *Registry) get(site, id string) *agent {
	k := site + "/" + id
	a := r.agents[k]
	if a == nil {
		a = &agent{Agent: Agent{Site: site, ID: id, State: StateUnknown}, latest: map[string]map[string]*wire.Sample{}}
		r.agents[k] = a
	}
	r.dirty[k] = true
	return a
}

// BatchOutcome tells the caller how a batch's sequence number looked.
type BatchOutcome struct {
	Duplicate bool // seen before
	Late      bool // filled a hole
	Ahead     bool // skipped numbers (a hole opened)
	Reset     bool // the agent restarted its numbering
}

// Batch records one data batch received from its agent: sequence, counts
// and latest values. The batch's samples are copied where kept.
func (r *Registry) Batch(b *wire.Batch) BatchOutcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	a := r.get(b.Site, b.Agent)
	ms := now.UnixMilli()
	a.LastSeen = ms
	a.Received.Batches++
	a.Received.Samples += uint64(len(b.Samples))
	a.Received.LastBatch = ms
	var out BatchOutcome
	switch a.SeqState.observe(b.Seq, ms) {
	case seqDuplicate:
		out.Duplicate = true
	case seqLate:
		out.Late = true
	case seqAhead:
		out.Ahead = true
	case seqReset:
		out.Reset = true
		r.log.Warn("agent restarted its batch numbering", "site", b.Site, "agent", b.Agent, "seq", b.Seq)
	}
	a.syncSeq()
	for i := range b.Samples {
		s := &b.Samples[i]
		pts := a.latest[s.Device]
		if pts == nil {
			pts = map[string]*wire.Sample{}
			a.latest[s.Device] = pts
		}
		if cur := pts[s.Point]; cur == nil {
			c := *s
			pts[s.Point] = &c
		} else if s.TS >= cur.TS {
			*cur = *s
		}
	}
	return out
}

// Status records an agent's status message.
func (r *Registry) Status(s *wire.Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	a := r.get(s.Site, s.Agent)
	ms := now.UnixMilli()
	if s.State != a.State {
		a.State = s.State
		a.StateSince = ms
	}
	if s.State == StateOnline {
		a.LastSeen = ms
	}
	if s.Version != "" {
		a.Version = s.Version
	}
	if s.ConfigHash != "" {
		a.ConfigHash = s.ConfigHash
	}
	if s.Started != 0 {
		a.Started = s.Started
	}
	if s.Devices != nil {
		a.DeviceNames = append([]string(nil), s.Devices...)
	}
	if s.Points != nil {
		// A status without points (a will, an older agent) keeps the last.
		a.points = make(map[string]map[string]wire.PointInfo, len(s.Points))
		for _, d := range s.Points {
			pts := a.points[d.Device]
			if pts == nil {
				pts = make(map[string]wire.PointInfo, len(d.Points))
				a.points[d.Device] = pts
			}
			for _, p := range d.Points {
				pts[p.Name] = p
			}
		}
	}
	r.evaluate(a, now)
}

// Health records an agent's health message (or a status command's reply).
func (r *Registry) Health(h *wire.Health) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	ms := now.UnixMilli()
	a := r.get(h.Site, h.Agent)
	a.LastSeen = ms
	first := a.LastHealth == 0
	a.LastHealth = ms
	if a.State != StateOnline {
		// Health comes only from a running agent; a retained "offline"
		// from an earlier life is out of date.
		a.State, a.StateSince = StateOnline, ms
	}
	if h.Version != "" {
		a.Version = h.Version
	}
	if h.ConfigHash != "" {
		a.ConfigHash = h.ConfigHash
	}
	a.UptimeS = h.UptimeS
	// Backlog.
	prev := a.Backlog
	a.Backlog = Backlog{Batches: h.Spool.Batches, Samples: h.Spool.Samples, Bytes: h.Spool.Bytes,
		OldestAgeMs: h.Spool.OldestAgeMs, GrowingSince: prev.GrowingSince}
	switch {
	case h.Spool.Samples == 0 || h.Spool.Samples < prev.Samples:
		a.Backlog.GrowingSince = 0
	case h.Spool.Samples > prev.Samples && prev.GrowingSince == 0 && !first:
		a.Backlog.GrowingSince = ms
	}
	// Drops.
	if !first && (h.Spool.DroppedOldest > a.Dropped.Oldest || h.Spool.DroppedNewest > a.Dropped.Newest) {
		a.Dropped.LastAt = ms
	}
	a.Dropped.Oldest, a.Dropped.Newest = h.Spool.DroppedOldest, h.Spool.DroppedNewest
	a.Link = Link{Connected: h.Forwarder.Connected, Reconnects: h.Forwarder.Reconnects,
		PublishedBatches: h.Forwarder.PublishedBatch, PublishedSamples: h.Forwarder.PublishedSamp,
		LastError: h.Forwarder.LastError}
	// Devices.
	old := map[string]Device{}
	for _, d := range a.Devices {
		old[d.ID] = d
	}
	a.Devices = a.Devices[:0:0]
	for _, d := range h.Devices {
		nd := Device{ID: d.ID, Protocol: d.Protocol, State: d.State, LatencyMs: d.LatencyMs,
			Reads: d.Reads, Errors: d.Errors, ErrorsByKind: d.ErrorsByKind, LastError: d.LastError, LastOK: d.LastOK, Samples: d.Samples}
		if o, ok := old[d.ID]; ok && d.Reads >= o.Reads && d.Errors >= o.Errors {
			dr, de := d.Reads-o.Reads, d.Errors-o.Errors
			switch {
			case dr > 0:
				nd.ErrorRate = float64(de) / float64(dr)
			case de > 0:
				nd.ErrorRate = 1
			}
		} else if d.Reads > 0 {
			nd.ErrorRate = float64(d.Errors) / float64(d.Reads)
		}
		a.Devices = append(a.Devices, nd)
	}
	r.evaluate(a, now)
}

// Pushed records the config hash an agent reported after a config push.
func (r *Registry) Pushed(site, id, hash string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.get(site, id)
	a.PushedConfigHash = hash
	a.PushedAt = r.now().UnixMilli()
	if hash != "" {
		a.ConfigHash = hash
	}
}

// Tick evaluates the time-based alert rules, turns old holes into gaps and
// updates publish rates. Run calls it every few seconds.
func (r *Registry) Tick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	for _, a := range r.agents {
		if a.rateAt.IsZero() {
			a.rateAt, a.rateSamples = now, a.Received.Samples
		} else if dt := now.Sub(a.rateAt); dt >= time.Second {
			a.Received.SamplesPerSec = float64(a.Received.Samples-a.rateSamples) / dt.Seconds()
			a.rateAt, a.rateSamples = now, a.Received.Samples
		}
		r.evaluate(a, now)
	}
}

// evaluate applies every rule to one agent. Callers hold r.mu.
func (r *Registry) evaluate(a *agent, now time.Time) {
	ms := now.UnixMilli()
	if n := a.SeqState.expire(ms, r.rules.OfflineAfter.Milliseconds()); n > 0 {
		a.Seq.LastGapAt = ms
		r.dirty[a.key()] = true
		r.log.Warn("batches missing from an agent's sequence", "site", a.Site, "agent", a.ID, "batches", n)
	}
	offAfter := r.rules.OfflineAfter.Milliseconds()
	backAfter := r.rules.BacklogAgeAfter.Milliseconds()

	// agent_offline: offline for OfflineAfter, or online but silent that long.
	offline, msg := false, ""
	switch {
	case a.State == StateOffline && ms-a.StateSince >= offAfter:
		offline, msg = true, fmt.Sprintf("offline since %s", time.UnixMilli(a.StateSince).UTC().Format(time.RFC3339))
	case a.State != StateOffline && a.LastSeen != 0 && ms-a.LastSeen >= offAfter:
		offline, msg = true, fmt.Sprintf("no message since %s", time.UnixMilli(a.LastSeen).UTC().Format(time.RFC3339))
	}
	r.set(a, KindAgentOffline, "", offline, msg, ms)

	online := !offline && a.State != StateOffline
	r.set(a, KindBacklogOld, "", online && a.Backlog.OldestAgeMs >= backAfter,
		fmt.Sprintf("oldest unsent sample is %s old (%d samples, %d bytes waiting)",
			time.Duration(a.Backlog.OldestAgeMs)*time.Millisecond, a.Backlog.Samples, a.Backlog.Bytes), ms)
	r.set(a, KindBacklogGrowing, "", online && a.Backlog.GrowingSince != 0 && ms-a.Backlog.GrowingSince >= backAfter,
		fmt.Sprintf("backlog growing since %s (%d samples now)",
			time.UnixMilli(a.Backlog.GrowingSince).UTC().Format(time.RFC3339), a.Backlog.Samples), ms)
	r.set(a, KindSamplesDropped, "", a.Dropped.LastAt != 0 && ms-a.Dropped.LastAt < backAfter,
		fmt.Sprintf("spool dropped samples (oldest %d, newest %d in total)", a.Dropped.Oldest, a.Dropped.Newest), ms)
	r.set(a, KindSeqGap, "", a.Seq.LastGapAt != 0 && ms-a.Seq.LastGapAt < backAfter,
		fmt.Sprintf("%d batches missing in total", a.SeqState.Gaps), ms)

	down := map[string]bool{}
	for _, d := range a.Devices {
		if d.State == wire.DeviceDown {
			down[d.ID] = true
			msg := "device down"
			if d.LastError != "" {
				msg += ": " + d.LastError
			}
			r.set(a, KindDeviceDown, d.ID, online, msg, ms)
		}
	}
	for _, al := range r.alerts.activeFor(a.Site, a.ID) {
		if al.Kind == KindDeviceDown && (!down[al.Device] || !online) {
			r.set(a, KindDeviceDown, al.Device, false, "", ms)
		}
	}
	a.syncSeq()
	a.ActiveAlerts = len(r.alerts.activeFor(a.Site, a.ID))
}

// set raises or clears one alert. Callers hold r.mu.
func (r *Registry) set(a *agent, kind, device string, on bool, msg string, ms int64) {
	al, changed := r.alerts.set(kind, a.Site, a.ID, device, on, msg, ms)
	if !changed {
		return
	}
	if al.Active() {
		r.log.Warn("alert", "kind", kind, "site", a.Site, "agent", a.ID, "device", device, "message", msg)
	} else {
		r.log.Info("alert cleared", "kind", kind, "site", a.Site, "agent", a.ID, "device", device)
	}
	if r.onAlert != nil {
		r.onAlert(al)
	}
}

// Agents returns every agent, sorted by site and id.
func (r *Registry) Agents() []Agent {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Agent, 0, len(r.agents))
	for _, a := range r.agents {
		out = append(out, a.snapshot())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Site != out[j].Site {
			return out[i].Site < out[j].Site
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func (a *agent) snapshot() Agent {
	c := a.Agent
	c.Devices = append([]Device(nil), a.Devices...)
	c.DeviceNames = append([]string(nil), a.DeviceNames...)
	return c
}

// Get returns one agent and its latest values, sorted by device and point.
func (r *Registry) Get(site, id string) (Agent, []Latest, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.agents[site+"/"+id]
	if a == nil {
		return Agent{}, nil, false
	}
	var latest []Latest
	for _, pts := range a.latest {
		for _, s := range pts {
			p := a.points[s.Device][s.Point]
			latest = append(latest, Latest{Device: s.Device, Point: s.Point, Value: ValueOf(s.Value),
				Quality: s.Quality.String(), Code: s.Code, TS: s.TS, Unit: p.Unit, Type: p.Type})
		}
	}
	sort.Slice(latest, func(i, j int) bool {
		if latest[i].Device != latest[j].Device {
			return latest[i].Device < latest[j].Device
		}
		return latest[i].Point < latest[j].Point
	})
	return a.snapshot(), latest, true
}

// Online counts agents online and all agents.
func (r *Registry) Online() (online, total int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.agents {
		if a.State == StateOnline {
			online++
		}
	}
	return online, len(r.agents)
}

// ValueOf turns a wire value into what JSON shows: a number, a bool, a
// string or nil.
func ValueOf(v wire.Value) any {
	switch v.Kind() {
	case wire.Float:
		f, _ := v.Float()
		return f
	case wire.Int:
		return v.Int()
	case wire.Uint:
		return v.Uint()
	case wire.Bool:
		return v.Bool()
	case wire.String:
		return v.Str()
	}
	return nil
}

// Flush saves every changed agent and alert in one transaction.
func (r *Registry) Flush() error {
	r.mu.Lock()
	type rec struct {
		k []byte
		v []byte
	}
	var recs []rec
	for k := range r.dirty {
		a := r.agents[k]
		if a == nil {
			continue
		}
		v, err := json.Marshal(a)
		if err != nil {
			r.mu.Unlock()
			return fmt.Errorf("registry: encode agent %s: %w", k, err)
		}
		recs = append(recs, rec{[]byte(k), v})
	}
	clear(r.dirty)
	alertRecs, deletes := r.alerts.takeDirty()
	r.mu.Unlock()
	if len(recs) == 0 && len(alertRecs) == 0 && len(deletes) == 0 {
		return nil
	}
	err := r.db.Update(func(tx *bolt.Tx) error {
		ab := tx.Bucket(bucketAgents)
		for _, rc := range recs {
			if err := ab.Put(rc.k, rc.v); err != nil {
				return err
			}
		}
		lb := tx.Bucket(bucketAlerts)
		for _, al := range alertRecs {
			v, err := json.Marshal(al)
			if err != nil {
				return err
			}
			if err := lb.Put(alertKey(al.ID), v); err != nil {
				return err
			}
		}
		for _, id := range deletes {
			if err := lb.Delete(alertKey(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// Mark everything again so the next Flush retries it.
		r.mu.Lock()
		for _, rc := range recs {
			r.dirty[string(rc.k)] = true
		}
		for _, al := range alertRecs {
			if _, newer := r.alerts.dirty[al.ID]; !newer {
				r.alerts.dirty[al.ID] = al
			}
		}
		r.alerts.deleted = append(r.alerts.deleted, deletes...)
		r.mu.Unlock()
		return fmt.Errorf("registry: save to %s: %w", r.db.Path(), err)
	}
	return nil
}

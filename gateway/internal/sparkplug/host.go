// Package sparkplug is the gateway's Sparkplug B 3.0 host application: it
// takes NBIRTH, NDEATH, DBIRTH, DDEATH, NDATA and DDATA from any compliant
// edge node (a Weft agent with mqtt.format: sparkplug_b, or a third party's),
// tracks births, deaths, aliases and sequence numbers per edge node and
// device, asks a node to rebirth (NCMD Node Control/Rebirth) when its
// sequence skips or a metric is unknown, stores the readings with the same
// InfluxDB schema as native data (site = group id, agent = edge node id,
// device = device id or "_node", point = metric name), and publishes its
// STATE as a primary host so that edge nodes store and forward while it is
// away. docs/sparkplug.md lists the rules with the tests that cover them.
//
// It has its own MQTT connection, apart from the native ingest: Sparkplug
// relies on one host seeing each node's messages in order, so it cannot use
// a shared subscription, and its will is its STATE.
package sparkplug

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/weftiot/weft/gateway/internal/ingest"
	"github.com/weftiot/weft/gateway/internal/registry"
	"github.com/weftiot/weft/internal/backoff"
	"github.com/weftiot/weft/internal/mqttconn"
	"github.com/weftiot/weft/wire"
	spb "github.com/weftiot/weft/wire/sparkplug"
	pb "github.com/weftiot/weft/wire/sparkplug/sparkplugpb"
)

// Options configure a Host.
type Options struct {
	Broker    string
	ClientID  string // must differ from the native ingest's
	Username  string
	Password  string
	TLS       *tls.Config
	KeepAlive time.Duration // default 30s
	// HostID is the host application id of the STATE topic.
	HostID string

	Sink     ingest.Sink
	Registry *registry.Registry // nil: nodes are not shown in the fleet
	// Metrics registers the host's counters; nil uses a private registry.
	Metrics prometheus.Registerer
	Log     *slog.Logger

	// BatchSize caps the samples of one store write (default 5000);
	// FlushInterval bounds how long a reading waits for its write (1s).
	BatchSize     int
	FlushInterval time.Duration
	// QueueLen is how many decoded messages may wait for the store (default
	// 4096). When it is full the MQTT reader waits, and the broker holds
	// (or, for QoS 0, drops) what follows.
	QueueLen int
	// RebirthInterval is the least time between two rebirth requests to
	// the same node (default 5s), so a burst of bad messages asks once.
	RebirthInterval time.Duration
	// Backoff bounds the wait between connection attempts (1s..5s, as the
	// native ingest); a broker back sooner ends the wait (WaitForBroker).
	BackoffMin, BackoffMax time.Duration
}

// Host is the Sparkplug host application. Run it once.
type Host struct {
	o   Options
	log *slog.Logger
	rl  *ingest.RateLog // warnings about bad input and failed writes
	m   *metrics

	queue chan *wire.Batch
	stop  chan struct{} // closed when Run has disconnected

	mu          sync.Mutex
	tr          *tracker
	lastRebirth map[string]time.Time
	lastSeen    map[string]time.Time // of each node in the registry
	client      mqtt.Client
	connected   bool
	stateTS     int64 // timestamp of the current connection's STATE
}

// New makes a Host.
func New(o Options) *Host {
	if o.KeepAlive <= 0 {
		o.KeepAlive = 30 * time.Second
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 5000
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 4096
	}
	if o.RebirthInterval <= 0 {
		o.RebirthInterval = 5 * time.Second
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = time.Second
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = max(5*time.Second, o.BackoffMin)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = prometheus.NewRegistry()
	}
	log := o.Log.With("component", "sparkplug", "host_id", o.HostID)
	return &Host{o: o, log: log, rl: ingest.NewRateLog(log, 10*time.Second), m: newMetrics(o.Metrics),
		queue: make(chan *wire.Batch, o.QueueLen), stop: make(chan struct{}), tr: newTracker(), lastRebirth: map[string]time.Time{}, lastSeen: map[string]time.Time{}}
}

// Connected reports whether the host is connected and its STATE online.
func (h *Host) Connected() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.connected
}

// Nodes lists the edge nodes the host has seen, sorted.
func (h *Host) Nodes() []NodeInfo {
	h.mu.Lock()
	out := h.tr.info()
	h.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Group != out[j].Group {
			return out[i].Group < out[j].Group
		}
		return out[i].EdgeNode < out[j].EdgeNode
	})
	return out
}

// Run connects, publishes STATE online, ingests until ctx ends, then
// publishes STATE offline, stores what it holds (within 5s) and
// disconnects.
func (h *Host) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); h.write() }()
	defer func() {
		close(h.stop) // the writer stores what is queued, within 5s
		wg.Wait()
	}()

	attempt := 0
	for ctx.Err() == nil {
		// A broker back before the backoff is over ends the wait
		// (mqttconn.WaitForBroker's probe), as for the native forwarder.
		if attempt > 0 && !mqttconn.WaitForBroker(ctx, h.o.Broker, backoff.Delay(attempt, h.o.BackoffMin, h.o.BackoffMax)) {
			break
		}
		lost, c, err := h.connect(ctx)
		if err != nil {
			attempt++
			h.m.errors.WithLabelValues("connect").Inc()
			if attempt == 1 || attempt%10 == 0 {
				h.log.Warn("broker unreachable; retrying", "broker", h.o.Broker, "attempt", attempt, "error", err)
			}
			continue
		}
		attempt = 0
		select {
		case err := <-lost:
			h.setClient(nil)
			h.m.errors.WithLabelValues("connection_lost").Inc()
			h.log.Warn("lost the broker; reconnecting", "error", err)
			attempt = 1
		case <-ctx.Done():
			h.setClient(nil)
			h.goOffline(c)
		}
	}
	return nil
}

func (h *Host) setClient(c mqtt.Client) {
	h.mu.Lock()
	h.client = c
	h.connected = c != nil
	h.mu.Unlock()
}

// connect makes one connection with a fresh STATE timestamp: the will (STATE
// offline) and the birth (STATE online) carry the same one. It subscribes to
// the Sparkplug namespace and its own STATE, then publishes STATE online.
func (h *Host) connect(ctx context.Context) (<-chan error, mqtt.Client, error) {
	ts := time.Now().UnixMilli()
	stateTopic := spb.StateTopic(h.o.HostID)
	o, lost := mqttconn.Conn{
		Broker: h.o.Broker, ClientID: h.o.ClientID,
		Username: h.o.Username, Password: h.o.Password, TLS: h.o.TLS,
		// Sparkplug 3.0 requires a clean session of every host
		// (tck-id-message-flow-phid-sparkplug-clean-session-311). After a
		// broker crash that restores our retained STATE online, what edge
		// nodes publish before we are back reaches nobody; Weft agents keep
		// it in their spool until they see our new STATE (docs/sparkplug.md,
		// "Across a broker restart").
		CleanSession: true, KeepAlive: h.o.KeepAlive, ConnectTimeout: 10 * time.Second,
	}.Options()
	o.SetOrderMatters(true).
		SetBinaryWill(stateTopic, spb.EncodeState(spb.State{Online: false, Timestamp: ts}), 1, true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { h.onMessage(m.Topic(), m.Payload()) })
	c, err := mqttconn.Connect(ctx, o)
	if err != nil {
		return nil, nil, fmt.Errorf("sparkplug host: %w", err)
	}
	h.mu.Lock()
	h.stateTS = ts
	h.client = c // rebirth requests may go out from now on
	h.mu.Unlock()
	// Subscribe before the STATE birth, so no node birth that follows it is
	// missed. QoS 1: NDEATH (the nodes' will) is QoS 1.
	subs := map[string]byte{stateTopic: 1}
	for _, t := range []spb.MessageType{spb.NBIRTH, spb.NDEATH, spb.NDATA} {
		subs[spb.Namespace+"/+/"+string(t)+"/+"] = 1
	}
	for _, t := range []spb.MessageType{spb.DBIRTH, spb.DDEATH, spb.DDATA} {
		subs[spb.Namespace+"/+/"+string(t)+"/+/+"] = 1
	}
	st := c.SubscribeMultiple(subs, nil)
	if !st.WaitTimeout(30*time.Second) || st.Error() != nil {
		h.setClient(nil)
		c.Disconnect(0)
		return nil, nil, fmt.Errorf("sparkplug host: subscribe: %v", tokenErr(st))
	}
	if sr, ok := st.(*mqtt.SubscribeToken); ok {
		for topic, code := range sr.Result() {
			if code == 0x80 {
				h.setClient(nil)
				c.Disconnect(0)
				return nil, nil, fmt.Errorf("sparkplug host: the broker refused the subscription %q (check its ACL for client %q)", topic, h.o.ClientID)
			}
		}
	}
	pt := c.Publish(stateTopic, 1, true, spb.EncodeState(spb.State{Online: true, Timestamp: ts}))
	if !pt.WaitTimeout(10*time.Second) || pt.Error() != nil {
		h.setClient(nil)
		c.Disconnect(0)
		return nil, nil, fmt.Errorf("sparkplug host: publish STATE online on %s: %v", stateTopic, tokenErr(pt))
	}
	h.setClient(c)
	h.log.Info("Sparkplug host online", "broker", h.o.Broker, "state", stateTopic)
	return lost, c, nil
}

// goOffline publishes STATE offline (the same timestamp as the birth) and
// disconnects.
func (h *Host) goOffline(c mqtt.Client) {
	h.mu.Lock()
	ts := h.stateTS
	h.mu.Unlock()
	t := c.Publish(spb.StateTopic(h.o.HostID), 1, true, spb.EncodeState(spb.State{Online: false, Timestamp: ts}))
	t.WaitTimeout(2 * time.Second)
	c.Disconnect(500)
	h.log.Info("Sparkplug host offline")
}

func tokenErr(t mqtt.Token) error {
	if err := t.Error(); err != nil {
		return err
	}
	return errors.New("timed out")
}

// onMessage handles one message, in the order the broker delivered them.
func (h *Host) onMessage(topic string, payload []byte) {
	t, err := spb.ParseTopic(topic)
	if err != nil {
		h.m.messages.WithLabelValues("unknown", "topic").Inc()
		h.rl.Warn("topic", "message on a topic that is not Sparkplug B; dropped", "topic", topic, "error", err)
		return
	}
	if t.Type == spb.STATE {
		h.onState(t, payload)
		return
	}
	p, err := spb.Decode(payload)
	if err != nil {
		reason := "malformed"
		if errors.Is(err, spb.ErrTooLarge) {
			reason = "too_large"
		}
		h.m.messages.WithLabelValues(string(t.Type), reason).Inc()
		h.rl.Warn("payload"+string(t.Type), "undecodable Sparkplug B payload; dropped", "topic", topic, "bytes", len(payload), "error", err)
		return
	}
	now := time.Now()
	h.mu.Lock()
	out := h.tr.handle(t, p, now)
	h.mu.Unlock()

	switch {
	case out.ignored != "":
		h.m.messages.WithLabelValues(string(t.Type), "ignored").Inc()
		h.log.Debug("message ignored", "topic", topic, "why", out.ignored)
	default:
		h.m.messages.WithLabelValues(string(t.Type), "ok").Inc()
	}
	for _, e := range out.problems {
		h.m.metricErrors.Inc()
		h.rl.Warn("metric", "a metric was not stored", "topic", topic, "error", e)
	}
	if out.rebirth != "" {
		h.requestRebirth(t.Group, t.EdgeNode, out.rebirth, now)
	}
	if h.o.Registry != nil {
		// The fleet view: births and deaths change the state; a device
		// birth changes the device list; other messages keep the node from
		// looking silent (third-party nodes send no Weft health), at most
		// every SeenInterval.
		st := out.status
		if st == "" && out.ignored == "" && (t.Type == spb.DBIRTH || h.seenDue(nodeKey(t.Group, t.EdgeNode), now)) {
			st = wire.Online
		}
		if st != "" {
			h.mu.Lock()
			h.lastSeen[nodeKey(t.Group, t.EdgeNode)] = now
			h.mu.Unlock()
			var pts []wire.DevicePoints
			if t.Type == spb.NBIRTH || t.Type == spb.DBIRTH {
				// Births declare the metrics and their engUnit; other
				// messages leave the registry's units as they are.
				pts = h.points(t.Group, t.EdgeNode)
			}
			h.o.Registry.Status(&wire.Status{V: wire.Version, Agent: t.EdgeNode, Site: t.Group, State: st,
				Devices: h.devices(t.Group, t.EdgeNode), Points: pts, TS: now.UnixMilli()})
		}
	}
	if out.batch != nil {
		h.m.samples.Add(float64(len(out.batch.Samples)))
		select {
		case h.queue <- out.batch:
		case <-h.stop:
		}
	}
}

// SeenInterval is how often ordinary messages refresh a node's last-seen
// time in the registry.
const SeenInterval = 10 * time.Second

func (h *Host) seenDue(k string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return now.Sub(h.lastSeen[k]) >= SeenInterval
}

func (h *Host) devices(group, edge string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.tr.nodes[nodeKey(group, edge)]
	if n == nil {
		return nil
	}
	ids := make([]string, 0, len(n.devices))
	for id := range n.devices {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (h *Host) points(group, edge string) []wire.DevicePoints {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.tr.nodes[nodeKey(group, edge)]
	if n == nil {
		return nil
	}
	return n.points()
}

// onState handles this host's own STATE: a stale offline (an old will, or
// another process with the same host id) is answered by publishing online
// again, as Sparkplug 3.0 asks.
func (h *Host) onState(t spb.Topic, payload []byte) {
	if t.HostID != h.o.HostID || len(payload) == 0 {
		return
	}
	s, err := spb.DecodeState(payload)
	if err != nil {
		h.m.messages.WithLabelValues(string(spb.STATE), "malformed").Inc()
		return
	}
	h.m.messages.WithLabelValues(string(spb.STATE), "ok").Inc()
	h.mu.Lock()
	c, ts := h.client, h.stateTS
	h.mu.Unlock()
	if s.Online || c == nil {
		return
	}
	h.log.Warn("saw this host's STATE offline while online; publishing online again", "their_timestamp", s.Timestamp)
	// From paho's handler goroutine: do not wait for the token here.
	c.Publish(spb.StateTopic(h.o.HostID), 1, true, spb.EncodeState(spb.State{Online: true, Timestamp: ts}))
}

// requestRebirth publishes NCMD Node Control/Rebirth = true to the node,
// at most once per RebirthInterval.
func (h *Host) requestRebirth(group, edge, reason string, now time.Time) {
	k := nodeKey(group, edge)
	h.mu.Lock()
	if last, ok := h.lastRebirth[k]; ok && now.Sub(last) < h.o.RebirthInterval {
		h.mu.Unlock()
		h.m.rebirths.WithLabelValues(reason, "held").Inc()
		return
	}
	c := h.client
	if c == nil {
		h.mu.Unlock()
		return
	}
	h.lastRebirth[k] = now
	h.mu.Unlock()
	b, err := spb.Encode(RebirthRequest(now))
	if err != nil {
		return
	}
	h.m.rebirths.WithLabelValues(reason, "sent").Inc()
	h.log.Info("asking an edge node to rebirth", "group", group, "edge_node", edge, "reason", reason)
	// QoS 0, as Sparkplug has NCMD; not waited for (paho's handler).
	c.Publish(spb.NodeTopic(group, spb.NCMD, edge), 0, false, b)
}

// RebirthRequest is the NCMD payload asking a node to rebirth.
func RebirthRequest(now time.Time) *spb.Payload {
	ms := uint64(now.UnixMilli())
	return &spb.Payload{Timestamp: proto.Uint64(ms), Metrics: []*spb.Metric{{
		Name: proto.String(spb.MetricRebirth), Timestamp: proto.Uint64(ms),
		Datatype: proto.Uint32(uint32(pb.DataType_Boolean)), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: true},
	}}}
}

// write stores the queued batches in groups, retrying with backoff while
// the store is down. When Run ends it stores what is queued, giving up
// after 5s.
func (h *Host) write() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var group []*wire.Batch
	n := 0
	flush := func() bool {
		if len(group) == 0 {
			return true
		}
		w, ok := ingest.WriteUntilStored(ctx, h.o.Sink, group, func(attempt int, err error, wait time.Duration) {
			h.m.errors.WithLabelValues("write").Inc()
			h.rl.Warn("write", "store write failed; holding the Sparkplug readings and retrying", "error", err, "attempt", attempt, "points", n, "retry_in", wait)
		})
		if !ok {
			return false
		}
		h.m.written.Add(float64(w.Stored))
		h.m.rejected.Add(float64(w.Rejected))
		group, n = group[:0], 0
		return true
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case b := <-h.queue:
			if len(group) == 0 {
				timer.Reset(h.o.FlushInterval)
			}
			group = append(group, b)
			n += len(b.Samples)
			if n >= h.o.BatchSize || len(h.queue) == 0 {
				timer.Stop()
				if !flush() {
					return
				}
			}
		case <-timer.C:
			if !flush() {
				return
			}
		case <-h.stop:
			time.AfterFunc(5*time.Second, cancel)
			for more := true; more; {
				select {
				case b := <-h.queue:
					group = append(group, b)
					n += len(b.Samples)
				default:
					more = false
				}
			}
			flush()
			return
		}
	}
}

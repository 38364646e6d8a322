// Package sparkplug is the agent's Sparkplug B 3.0 edge node, used instead
// of the native forwarder when mqtt.format is sparkplug_b. The group id is
// the agent's site, the edge node id its id, each configured device a
// Sparkplug device.
//
// Session. Each MQTT connection takes a new bdSeq (kept in data_dir, see
// nextBdSeq) and sets NDEATH with it as the will. With a primary host
// configured, the node waits for that host's STATE online before its birth;
// when the host goes offline it publishes NDEATH, disconnects and waits
// again, while the spool keeps collecting. The birth is NBIRTH (seq 0, the
// same bdSeq, Node Control/Rebirth and the node's metrics) and a DBIRTH for
// every device that is up, with each point's name, alias, datatype, current
// value and unit (property engUnit). seq then counts every message 0..255.
//
// Data. The spool keeps wire batches, as in native mode; the node turns
// them into DDATA (one per device per batch, metrics by alias, each with its
// source timestamp) when it publishes. What was already in the spool at the
// birth is sent with is_historical = true. DDATA goes out at QoS 0, as
// Sparkplug B requires; a batch is removed from the spool once its messages
// are written to the connection while the host is confirmed.
//
// Confirmation. A STATE online that arrives while the node is subscribed
// was published by a host that is connected now. One the broker hands over
// as a retained message at subscription may be older than the broker's
// last restart: after a crash Mosquitto restores the host's retained STATE
// online from its last save, while the host itself (clean session, as
// Sparkplug requires) is not connected yet, and QoS 0 messages published
// before it subscribes again reach nobody. So a birth on a retained STATE
// online is unconfirmed: the node publishes as usual but keeps what it
// sends in the spool. A newer STATE online (the host is back, without our
// births) makes it born again and send what it kept, as historical; if
// none comes within Options.Hold the host was there all along (only the
// node's connection broke) and the kept batches are removed.
//
// Devices. A device whose driver reports it down gets DDEATH; it gets
// DBIRTH again when it is back (or when data of it is to be sent). A point
// whose value no longer fits the datatype its birth declared (a Double point
// that starts giving strings) gets its device a new DBIRTH.
//
// Commands. NCMD Node Control/Rebirth = true makes the node publish its
// births again. The native command topic (config, status) keeps working
// on the same connection, and Publish serves the native health and replies.
package sparkplug

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/weftiot/weft/agent/internal/spool"
	"github.com/weftiot/weft/config"
	"github.com/weftiot/weft/internal/backoff"
	"github.com/weftiot/weft/internal/mqttconn"
	"github.com/weftiot/weft/wire"
)

// Spool is what the edge node needs of the spool.
type Spool interface {
	Peek(after uint64, max int) ([]spool.Entry, error)
	Ack(seqs ...uint64) error
	Notify() <-chan struct{}
	Stats() spool.Stats
}

// Device is one configured device as the node births it.
type Device struct {
	ID     string
	Down   bool // its driver reports it down
	Points []Point
}

// Point is one configured point.
type Point struct {
	Name string
	Unit string
}

// Options configure an EdgeNode.
type Options struct {
	Broker   string
	ClientID string
	Username string
	Password string
	TLS      *tls.Config
	// KeepAlive (30s), ConnectTimeout (10s), BackoffMin/Max (1s, 10s) as in
	// the native forwarder.
	KeepAlive, ConnectTimeout time.Duration
	BackoffMin, BackoffMax    time.Duration
	// FlushTimeout is how long Run keeps publishing the backlog after its
	// context ends, while the host is online (default 5s).
	FlushTimeout time.Duration

	Group, EdgeNode string
	// PrimaryHost is the host application id whose STATE gates publishing;
	// "" publishes whenever connected.
	PrimaryHost string
	// DataDir keeps the bdSeq.
	DataDir string
	// Devices lists the configured devices and their state; called at
	// every birth and once a second.
	Devices func() []Device
	// MaxBatches is how many spool batches are read at once (default 32).
	MaxBatches int
	// Hold is how long batches sent after a birth on a retained STATE
	// online stay in the spool, waiting for a newer STATE that would show
	// the host was not there (default 60s; see Confirmation above).
	Hold time.Duration

	// CmdFilter and OnCommand carry the native commands (config, status).
	CmdFilter string
	OnCommand func(topic string, payload []byte)
	// OnConnect is called after each birth (the runner publishes health).
	OnConnect func()

	Logger *slog.Logger
}

// EdgeNode publishes the spool as a Sparkplug B edge node. Run it once.
type EdgeNode struct {
	sp      Spool
	o       Options
	log     *slog.Logger
	rebirth chan struct{}

	mu      sync.Mutex
	client  mqtt.Client // while connected and born
	errMu   sync.Mutex
	lastErr string

	connected      atomic.Bool
	connects       atomic.Uint64
	connectedAt    atomic.Int64
	publishedBatch atomic.Uint64
	publishedSamp  atomic.Uint64
	births         atomic.Uint64

	// Owned by the Run goroutine.
	seq     uint64
	bdSeq   uint64
	aliases map[pointKey]uint64 // stable for the process
	kinds   map[pointKey]dataType
	last    map[pointKey]wire.Sample // last value sent, for births
	born    map[string]*bornDevice
}

type bornDevice struct {
	dt map[string]dataType // point → datatype declared by the birth
}

// DefaultHold is Options.Hold's default, mqtt.sparkplug.hold's.
const DefaultHold = config.DefaultSparkplugHold

// New makes an EdgeNode of sp.
func New(sp Spool, o Options) *EdgeNode {
	if o.KeepAlive <= 0 {
		o.KeepAlive = 30 * time.Second
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = time.Second
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = max(10*time.Second, o.BackoffMin)
	}
	if o.FlushTimeout <= 0 {
		o.FlushTimeout = 5 * time.Second
	}
	if o.MaxBatches <= 0 {
		o.MaxBatches = 32
	}
	if o.Hold <= 0 {
		o.Hold = DefaultHold
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Devices == nil {
		o.Devices = func() []Device { return nil }
	}
	return &EdgeNode{sp: sp, o: o, log: o.Logger, rebirth: make(chan struct{}, 1),
		aliases: map[pointKey]uint64{}, kinds: map[pointKey]dataType{}, last: map[pointKey]wire.Sample{}}
}

// Health is the node's part of the agent's health, as the forwarder's.
func (e *EdgeNode) Health() wire.ForwardHealth {
	e.errMu.Lock()
	defer e.errMu.Unlock()
	return wire.ForwardHealth{Connected: e.connected.Load(), PublishedBatch: e.publishedBatch.Load(),
		PublishedSamp: e.publishedSamp.Load(), Reconnects: max(e.connects.Load(), 1) - 1, LastError: e.lastErr}
}

// Connected reports whether the node is connected (born or waiting for its host).
func (e *EdgeNode) Connected() bool { return e.connected.Load() }

// ConnectedAt is when the current or last connection came up.
func (e *EdgeNode) ConnectedAt() time.Time {
	if ms := e.connectedAt.Load(); ms != 0 {
		return time.UnixMilli(ms)
	}
	return time.Time{}
}

// Births counts NBIRTHs published (tests and health).
func (e *EdgeNode) Births() uint64 { return e.births.Load() }

// ErrNotConnected is returned by Publish while the broker is unreachable.
var ErrNotConnected = errors.New("not connected to the broker")

// Publish sends a native message (health, a reply) on the connection.
func (e *EdgeNode) Publish(topic string, qos byte, retained bool, payload []byte, wait time.Duration) error {
	e.mu.Lock()
	c := e.client
	e.mu.Unlock()
	if c == nil || !e.connected.Load() {
		return ErrNotConnected
	}
	return mqttconn.Publish(c, topic, qos, retained, payload, wait)
}

// PublishStatus asks for a rebirth: in Sparkplug the births are the status
// (the runner calls it after a new config).
func (e *EdgeNode) PublishStatus() error {
	e.Rebirth()
	return nil
}

// Rebirth makes the node publish its births again (as NCMD Node
// Control/Rebirth does).
func (e *EdgeNode) Rebirth() {
	select {
	case e.rebirth <- struct{}{}:
	default:
	}
}

func (e *EdgeNode) setErr(err error) {
	e.errMu.Lock()
	e.lastErr = err.Error()
	e.errMu.Unlock()
}

// errStop ends a session because Run is finishing; errHostOffline because
// the primary host went away.
var (
	errStop        = errors.New("stopping")
	errHostOffline = errors.New("primary host offline")
)

// Run connects, births, publishes the spool and reconnects until ctx ends.
func (e *EdgeNode) Run(ctx context.Context) error {
	attempt := 0
	for ctx.Err() == nil {
		// A broker back before the backoff is over ends the wait
		// (mqttconn.WaitForBroker's probe), as for the native forwarder.
		if attempt > 0 && !mqttconn.WaitForBroker(ctx, e.o.Broker, backoff.Delay(attempt, e.o.BackoffMin, e.o.BackoffMax)) {
			break
		}
		s, err := e.connect(ctx)
		if err != nil {
			attempt++
			e.setErr(err)
			if attempt == 1 || attempt%10 == 0 {
				e.log.Warn("broker unreachable; collecting into the spool and retrying", "broker", e.o.Broker, "attempt", attempt, "err", err)
			}
			continue
		}
		attempt = 0
		err = e.session(ctx, s)
		e.mu.Lock()
		e.client = nil
		e.mu.Unlock()
		e.connected.Store(false)
		switch {
		case errors.Is(err, errStop):
			e.goOffline(s.c)
			return nil
		case errors.Is(err, errHostOffline):
			e.log.Info("primary host offline: NDEATH sent, reconnecting to wait for it; the spool keeps the data", "host", e.o.PrimaryHost)
			e.goOffline(s.c)
			// Reconnect at once: the next session waits for STATE online.
		default:
			e.setErr(err)
			e.log.Warn("broker connection lost; reconnecting", "err", err)
			s.c.Disconnect(0)
			attempt = 1
		}
	}
	return nil
}

// conn is one MQTT connection and what arrives on it.
type conn struct {
	c     mqtt.Client
	lost  <-chan error
	state chan stateMsg
}

// stateMsg is the primary host's STATE as it arrived: retained is the
// MQTT retain flag, which a broker sets only on what it hands over at
// subscription (MQTT 3.1.1, 3.3.1.3), never on a message published while
// the node is subscribed.
type stateMsg struct {
	hostState
	retained bool
}

func (e *EdgeNode) deathPayload() []byte {
	p := payload{timestamp: uint64(time.Now().UnixMilli()), metrics: []metric{bdSeqMetric(e.bdSeq)}}
	return p.encode()
}

func bdSeqMetric(bd uint64) metric {
	return metric{name: metricBdSeq, declared: dtInt64, as: dtUInt64, value: wire.UintValue(bd)}
}

// connect makes one connection with a new bdSeq and NDEATH as its will,
// and subscribes to NCMD, the primary host's STATE and the native commands.
func (e *EdgeNode) connect(ctx context.Context) (*conn, error) {
	bd, err := nextBdSeq(e.o.DataDir)
	if err != nil {
		return nil, err
	}
	e.bdSeq = bd
	o, lost := mqttconn.Conn{
		Broker: e.o.Broker, ClientID: e.o.ClientID,
		Username: e.o.Username, Password: e.o.Password, TLS: e.o.TLS,
		CleanSession: true, // Sparkplug 3.0: clean session for edge nodes
		KeepAlive:    e.o.KeepAlive, ConnectTimeout: e.o.ConnectTimeout,
	}.Options()
	o.SetWriteTimeout(e.o.ConnectTimeout).
		SetOrderMatters(false).
		SetBinaryWill(nodeTopic(e.o.Group, typeNDEATH, e.o.EdgeNode), e.deathPayload(), 1, false)
	s := &conn{lost: lost, state: make(chan stateMsg, 8)}
	if s.c, err = mqttconn.Connect(ctx, o); err != nil {
		return nil, err
	}
	subs := map[string]mqtt.MessageHandler{
		nodeTopic(e.o.Group, typeNCMD, e.o.EdgeNode): e.onNCMD,
	}
	if e.o.PrimaryHost != "" {
		subs[stateTopic(e.o.PrimaryHost)] = func(_ mqtt.Client, m mqtt.Message) {
			st, err := decodeState(m.Payload())
			if err != nil {
				e.log.Warn("primary host STATE not understood; ignored", "topic", m.Topic(), "err", err)
				return
			}
			sm := stateMsg{st, m.Retained()}
			select {
			case s.state <- sm:
			default:
				// The session is behind; it only needs the newest.
				select {
				case <-s.state:
				default:
				}
				s.state <- sm
			}
		}
	}
	if e.o.CmdFilter != "" && e.o.OnCommand != nil {
		subs[e.o.CmdFilter] = func(_ mqtt.Client, m mqtt.Message) { e.o.OnCommand(m.Topic(), m.Payload()) }
	}
	for topic, h := range subs {
		if err := mqttconn.Wait(s.c.Subscribe(topic, 1, h), e.o.ConnectTimeout); err != nil {
			s.c.Disconnect(0)
			return nil, fmt.Errorf("subscribe %s: %w", topic, err)
		}
	}
	return s, nil
}

// onNCMD honours Node Control/Rebirth = true.
func (e *EdgeNode) onNCMD(_ mqtt.Client, m mqtt.Message) {
	rebirth, err := decodeNCMD(m.Payload())
	if err != nil {
		e.log.Warn("NCMD not understood; ignored", "topic", m.Topic(), "err", err)
		return
	}
	if rebirth {
		e.log.Info("rebirth requested by NCMD")
		e.Rebirth()
	}
}

func (e *EdgeNode) goOffline(c mqtt.Client) {
	// An explicit NDEATH: a clean disconnect does not publish the will.
	t := c.Publish(nodeTopic(e.o.Group, typeNDEATH, e.o.EdgeNode), 1, false, e.deathPayload())
	t.WaitTimeout(2 * time.Second)
	c.Disconnect(500)
}

// session waits for the primary host (if any), births, and publishes the
// spool until the connection is lost, the host goes offline, or ctx ends.
func (e *EdgeNode) session(ctx context.Context, s *conn) error {
	e.connected.Store(true)
	e.connects.Add(1)
	e.connectedAt.Store(time.Now().UnixMilli())
	e.mu.Lock()
	e.client = s.c // native health and replies may go out while we wait
	e.mu.Unlock()

	var stateTS int64 = -1
	// confirmed: what is written to the connection has reached the host,
	// as far as MQTT at QoS 0 can tell, and leaves the spool. Without a
	// primary host there is nobody to confirm.
	confirmed := true
	if e.o.PrimaryHost != "" {
		e.log.Info("connected; waiting for the primary host's STATE online", "host", e.o.PrimaryHost)
		for online := false; !online; {
			select {
			case st := <-s.state:
				if st.Timestamp < stateTS {
					continue // older than what we saw
				}
				stateTS, online, confirmed = st.Timestamp, st.Online, !st.retained
			case err := <-s.lost:
				return fmt.Errorf("connection lost: %w", err)
			case <-ctx.Done():
				return errStop
			}
		}
	}
	// Drain a rebirth asked before this birth: the birth answers it.
	select {
	case <-e.rebirth:
	default:
	}
	historicalUpTo, err := e.birth(s.c)
	if err != nil {
		return err
	}
	if e.o.OnConnect != nil {
		go e.o.OnConnect()
	}
	// While unconfirmed, what is sent stays in the spool: every batch up to
	// highest has been sent on this connection (a rebirth sends again from
	// the head), so that is what the end of the hold removes.
	held := 0
	var holdEnd <-chan time.Time
	if !confirmed {
		e.log.Info("the primary host's STATE online was a retained one, perhaps from before a broker restart; keeping what is sent in the spool until the host is confirmed",
			"host", e.o.PrimaryHost, "hold", e.o.Hold)
		holdEnd = time.After(e.o.Hold)
	}
	ack := func(seqs []uint64) {
		if len(seqs) == 0 {
			return
		}
		if !confirmed {
			held += len(seqs)
			return
		}
		if err := e.sp.Ack(seqs...); err != nil {
			e.setErr(err)
			e.log.Error("acknowledging in the spool; those batches will be sent again", "err", err)
		}
	}

	var highest uint64
	stopping := ctx.Done()
	var deadline <-chan time.Time
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		entries, err := e.sp.Peek(highest, e.o.MaxBatches)
		if err != nil {
			e.setErr(err)
			e.log.Error("reading the spool", "err", err)
		}
		if len(entries) > 0 {
			var done []uint64
			for _, en := range entries {
				if err := e.publishEntry(s.c, en, en.Seq <= historicalUpTo); err != nil {
					ack(done)
					return err
				}
				done = append(done, en.Seq)
				highest = en.Seq
			}
			ack(done)
			continue
		}
		if deadline != nil {
			return errStop // flushed
		}
		select {
		case <-e.sp.Notify():
		case <-tick.C:
			if err := e.watchDevices(s.c); err != nil {
				return err
			}
		case <-e.rebirth:
			if historicalUpTo, err = e.birth(s.c); err != nil {
				return err
			}
			highest, held = 0, 0 // resend from the head what is still there
		case st := <-s.state:
			if st.Timestamp < stateTS {
				break // older than what we saw
			}
			newer := st.Timestamp > stateTS
			stateTS = st.Timestamp
			if !st.Online {
				return errHostOffline
			}
			if st.retained || (confirmed && !newer) {
				break // nothing new about the host
			}
			// The host published STATE online while we are subscribed: it is
			// connected now. If it is a new host session (or we were not
			// sure it was there), it has not seen our births nor, perhaps,
			// what we sent since: be born again and resend what the spool
			// still holds.
			e.log.Info("the primary host announced itself online; publishing the births again and resending what was kept",
				"host", e.o.PrimaryHost, "kept_batches", held, "was_confirmed", confirmed)
			confirmed, holdEnd = true, nil
			if historicalUpTo, err = e.birth(s.c); err != nil {
				return err
			}
			highest, held = 0, 0
		case <-holdEnd:
			// No newer STATE within the hold: the host was connected all
			// along (only our connection had broken).
			e.log.Info("no newer STATE from the primary host within the hold; it was online all along", "host", e.o.PrimaryHost, "kept_batches", held)
			confirmed, holdEnd, held = true, nil, 0
			if err := e.ackUpTo(highest); err != nil {
				e.setErr(err)
				e.log.Error("acknowledging in the spool; those batches will be sent again", "err", err)
			}
		case err := <-s.lost:
			return fmt.Errorf("connection lost: %w", err)
		case <-stopping:
			stopping = nil
			deadline = time.After(e.o.FlushTimeout)
		case <-deadline:
			return errStop
		}
	}
}

// ackUpTo removes the spool's batches up to seq upTo.
func (e *EdgeNode) ackUpTo(upTo uint64) error {
	var after uint64
	for {
		entries, err := e.sp.Peek(after, 1024)
		if err != nil {
			return err
		}
		var seqs []uint64
		for _, en := range entries {
			if en.Seq > upTo {
				break
			}
			seqs = append(seqs, en.Seq)
		}
		if len(seqs) == 0 {
			return nil
		}
		if err := e.sp.Ack(seqs...); err != nil {
			return err
		}
		after = seqs[len(seqs)-1]
	}
}

// next returns the next seq.
func (e *EdgeNode) next() uint64 {
	e.seq = (e.seq + 1) % 256
	return e.seq
}

func (e *EdgeNode) publish(c mqtt.Client, topic string, qos byte, p *payload) error {
	return mqttconn.Publish(c, topic, qos, false, p.encode(), e.o.ConnectTimeout)
}

// birth publishes NBIRTH and a DBIRTH for every device that is up. It
// returns the spool's last sequence number: what is in the spool up to it
// was collected before this birth and is sent as historical.
func (e *EdgeNode) birth(c mqtt.Client) (uint64, error) {
	upTo := e.sp.Stats().LastSeq
	now := uint64(time.Now().UnixMilli())
	e.seq = 0
	nb := &payload{timestamp: now, hasSeq: true, seq: 0, metrics: []metric{
		bdSeqMetric(e.bdSeq),
		{name: metricRebirth, declared: dtBoolean, as: dtBoolean, value: wire.BoolValue(false)},
	}}
	if err := e.publish(c, nodeTopic(e.o.Group, typeNBIRTH, e.o.EdgeNode), 0, nb); err != nil {
		return 0, err
	}
	e.births.Add(1)
	e.born = map[string]*bornDevice{}
	for _, d := range e.o.Devices() {
		if d.Down {
			continue
		}
		if err := e.dbirth(c, d, nil); err != nil {
			return 0, err
		}
	}
	e.log.Info("Sparkplug births published", "bdSeq", e.bdSeq, "devices", len(e.born), "historical_up_to", upTo)
	return upTo, nil
}

// pointKey names one point of one device; as a map key it needs no string
// building per sample.
type pointKey struct{ dev, point string }

func key(dev, point string) pointKey { return pointKey{dev, point} }

// alias returns the point's alias, giving it the next one the first time.
// Aliases are unique across the edge node and never reused in a process.
func (e *EdgeNode) alias(dev, point string) uint64 {
	k := key(dev, point)
	a, ok := e.aliases[k]
	if !ok {
		a = uint64(len(e.aliases) + 1)
		e.aliases[k] = a
	}
	return a
}

// dbirth publishes a DBIRTH of d: its configured points, plus extra points
// seen in data but not configured. A point's datatype comes from the kind
// of its values so far (Double until one is seen).
func (e *EdgeNode) dbirth(c mqtt.Client, d Device, extra []wire.Sample) error {
	now := uint64(time.Now().UnixMilli())
	bd := &bornDevice{dt: map[string]dataType{}}
	p := &payload{timestamp: now}
	add := func(name, unit string) {
		if _, dup := bd.dt[name]; dup {
			return
		}
		k := key(d.ID, name)
		dt, ok := e.kinds[k]
		if !ok {
			dt = dtDouble
		}
		bd.dt[name] = dt
		m := metric{name: name, alias: e.alias(d.ID, name), declared: dt, timestamp: now, hasTS: true, unit: unit}
		last, seen := e.last[k]
		if !seen || m.setValue(dt, last.Value) != nil {
			m.null = true
		} else {
			m.timestamp = uint64(last.TS)
			m.quality = last.Quality
		}
		p.metrics = append(p.metrics, m)
	}
	for _, pt := range d.Points {
		add(pt.Name, pt.Unit)
	}
	for _, s := range extra {
		add(s.Point, "")
	}
	// Points born earlier in this process stay declared.
	if old := e.born[d.ID]; old != nil {
		for name := range old.dt {
			add(name, "")
		}
	}
	p.seq, p.hasSeq = e.next(), true
	if err := e.publish(c, deviceTopic(e.o.Group, typeDBIRTH, e.o.EdgeNode, d.ID), 0, p); err != nil {
		return err
	}
	e.born[d.ID] = bd
	return nil
}

// watchDevices sends DDEATH for born devices that went down and DBIRTH for
// devices that came up.
func (e *EdgeNode) watchDevices(c mqtt.Client) error {
	for _, d := range e.o.Devices() {
		_, born := e.born[d.ID]
		switch {
		case born && d.Down:
			p := &payload{timestamp: uint64(time.Now().UnixMilli()), seq: e.next(), hasSeq: true}
			if err := e.publish(c, deviceTopic(e.o.Group, typeDDEATH, e.o.EdgeNode, d.ID), 0, p); err != nil {
				return err
			}
			delete(e.born, d.ID)
			e.log.Info("device down: DDEATH", "device", d.ID)
		case !born && !d.Down:
			if err := e.dbirth(c, d, nil); err != nil {
				return err
			}
			e.log.Info("device up: DBIRTH", "device", d.ID)
		}
	}
	return nil
}

func (e *EdgeNode) device(id string) Device {
	for _, d := range e.o.Devices() {
		if d.ID == id {
			return d
		}
	}
	return Device{ID: id}
}

// publishEntry sends one spool batch as one DDATA per device.
func (e *EdgeNode) publishEntry(c mqtt.Client, en spool.Entry, historical bool) error {
	var b wire.Batch
	if err := wire.DecodeBatch(en.Data, &b); err != nil {
		// The spool holds only what this agent encoded; a batch that does
		// not decode is dropped, not retried forever.
		e.log.Error("a spool batch does not decode; dropped", "seq", en.Seq, "err", err)
		return nil
	}
	byDev := map[string][]wire.Sample{}
	var order []string
	for _, s := range b.Samples {
		if _, ok := byDev[s.Device]; !ok {
			order = append(order, s.Device)
		}
		byDev[s.Device] = append(byDev[s.Device], s)
	}
	sort.Strings(order)
	for _, dev := range order {
		samples := byDev[dev]
		// Learn the kinds; a value that does not fit the birth's datatype,
		// or a point the birth did not declare, needs a new DBIRTH.
		bd := e.born[dev]
		needBirth := bd == nil
		for _, s := range samples {
			k := key(dev, s.Point)
			if s.Value.Kind() != wire.Null {
				if dt, ok := e.kinds[k]; !ok || !fits(dt, s.Value.Kind()) {
					e.kinds[k] = dataTypeOf(s.Value.Kind())
				}
			}
			if bd != nil {
				if dt, ok := bd.dt[s.Point]; !ok || !fits(dt, s.Value.Kind()) {
					needBirth = true
				}
			}
		}
		if needBirth {
			if err := e.dbirth(c, e.device(dev), samples); err != nil {
				return err
			}
			bd = e.born[dev]
		}
		p := &payload{timestamp: uint64(time.Now().UnixMilli()), metrics: make([]metric, 0, len(samples))}
		for _, s := range samples {
			m := metric{alias: e.alias(dev, s.Point), timestamp: uint64(max(s.TS, 0)), hasTS: true, historical: historical, quality: s.Quality}
			if err := m.setValue(bd.dt[s.Point], s.Value); err != nil {
				// Cannot happen after the birth check; keep the rest.
				e.log.Error("a sample does not fit its datatype; dropped", "device", dev, "point", s.Point, "err", err)
				continue
			}
			p.metrics = append(p.metrics, m)
			k := key(dev, s.Point)
			if cur, ok := e.last[k]; !ok || s.TS >= cur.TS {
				e.last[k] = s
			}
		}
		p.seq, p.hasSeq = e.next(), true
		if err := e.publish(c, deviceTopic(e.o.Group, typeDDATA, e.o.EdgeNode, dev), 0, p); err != nil {
			return err
		}
	}
	e.publishedBatch.Add(1)
	e.publishedSamp.Add(uint64(len(b.Samples)))
	return nil
}

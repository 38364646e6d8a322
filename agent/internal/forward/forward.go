// Package forward publishes the spool to the MQTT broker and carries the
// agent's other messages (status, health, replies) and its commands.
//
// Delivery. Every batch is published with QoS 1 and deleted from the spool
// only when the broker's PUBACK completes its token. Up to MaxInflight batches
// are in flight at once, published in sequence order, so the first
// transmission of each batch is in order.
//
// Reconnects and paho's store. The session is persistent (CleanSession
// false), so the broker keeps the agent's command subscription and queues
// commands while it is away. But paho's own resend of unacknowledged
// publishes on reconnect replaces each original token with a new one and
// completes the original without error before the resent copy is
// acknowledged: acking the spool on that completion could lose a batch in a
// crash. So the forwarder does not use paho's reconnect: it owns the
// connection loop (backoff with jitter, cut short when a down broker comes
// back: mqttconn.WaitForBroker) and builds a fresh paho client for
// each connection, whose store starts empty. After a reconnect it resends
// every unacknowledged batch from the head of the spool, in order, then goes
// on with the backlog at full speed. The spool is the only store. Batches in
// flight when a connection dropped may reach the broker twice; the gateway
// sees the repeated sequence number, and the source timestamps make the
// repeated write land on the same points.
package forward

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/weftiot/weft/agent/internal/spool"
	"github.com/weftiot/weft/internal/backoff"
	"github.com/weftiot/weft/internal/mqttconn"
	"github.com/weftiot/weft/wire"
)

// Spool is what the forwarder needs of the spool.
type Spool interface {
	Peek(after uint64, max int) ([]spool.Entry, error)
	Ack(seqs ...uint64) error
	Notify() <-chan struct{}
}

// Options configure a Forwarder.
type Options struct {
	Broker   string // tcp://, ssl://, tls://, mqtts://, ws://, wss://
	ClientID string
	Username string
	Password string
	TLS      *tls.Config // nil: no TLS unless the scheme asks for it
	// KeepAlive is the MQTT keepalive (default 30s): a dead link is noticed
	// within it, by paho's ping (mqttconn.SetKeepAlive) or, when batches
	// are in flight, by no PUBACK coming for that long.
	KeepAlive time.Duration
	// MaxInflight is how many batches may await PUBACK at once (default 32).
	MaxInflight int
	// ConnectTimeout bounds one connection attempt (default 10s, and at
	// most KeepAlive).
	ConnectTimeout time.Duration
	// BackoffMin and BackoffMax bound the wait between connection attempts
	// (defaults 1s and 10s), doubling, with jitter; a broker that was
	// unreachable and answers again ends the wait (mqttconn.WaitForBroker).
	BackoffMin, BackoffMax time.Duration
	// FlushTimeout is how long Run keeps publishing the backlog after its
	// context ends (default 5s).
	FlushTimeout time.Duration

	DataTopic   string
	StatusTopic string
	// Online returns the retained status published on every connection;
	// the will publishes Offline(Online()) if the connection dies.
	Online func() wire.Status
	// CmdFilter is subscribed on every connection; OnCommand receives what
	// arrives on it (in its own goroutine; it may publish).
	CmdFilter string
	OnCommand func(topic string, payload []byte)
	// OnConnect, when set, is called after each successful connection and
	// the online status (for example to publish health at once).
	OnConnect func()

	Logger *slog.Logger
}

// Forwarder moves the spool to the broker. Run it once.
type Forwarder struct {
	sp   Spool
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	client mqtt.Client // of the current connection; nil when down

	connected      atomic.Bool
	connects       atomic.Uint64
	publishedBatch atomic.Uint64
	publishedSamp  atomic.Uint64
	errMu          sync.Mutex
	lastErr        string
	connectedAt    atomic.Int64 // ms since epoch of the last successful connect
	connectedCh    chan struct{}

	// pendingAck holds batches PUBACKed whose spool Ack has not committed
	// yet, so that a resend after reconnect skips them.
	ackMu      sync.Mutex
	pendingAck map[uint64]bool
	ackQueue   []uint64
	ackKick    chan struct{}
}

// New makes a Forwarder of sp.
func New(sp Spool, opts Options) *Forwarder {
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 30 * time.Second
	}
	if opts.MaxInflight <= 0 {
		opts.MaxInflight = 32
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = time.Second
	}
	if opts.BackoffMax < opts.BackoffMin {
		// Hundreds of agents retrying a broker that refuses them every
		// 5-10 s (jittered) is tens of attempts a second, which any broker
		// takes; a broker that was down is retried within about a second
		// of its return anyway, by WaitForBroker's probe.
		opts.BackoffMax = max(10*time.Second, opts.BackoffMin)
	}
	if opts.FlushTimeout <= 0 {
		opts.FlushTimeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Forwarder{
		sp: sp, opts: opts, log: opts.Logger,
		pendingAck:  map[uint64]bool{},
		ackKick:     make(chan struct{}, 1),
		connectedCh: make(chan struct{}),
	}
}

// Health is the forwarder's part of the agent's health.
func (f *Forwarder) Health() wire.ForwardHealth {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	n := f.connects.Load()
	return wire.ForwardHealth{
		Connected:      f.connected.Load(),
		PublishedBatch: f.publishedBatch.Load(),
		PublishedSamp:  f.publishedSamp.Load(),
		Reconnects:     max(n, 1) - 1,
		LastError:      f.lastErr,
	}
}

// Connected reports whether the broker connection is up.
func (f *Forwarder) Connected() bool { return f.connected.Load() }

// ConnectedAt is when the current or last connection came up (zero: never).
func (f *Forwarder) ConnectedAt() time.Time {
	ms := f.connectedAt.Load()
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// ErrNotConnected is returned by Publish while the broker is unreachable.
var ErrNotConnected = errors.New("not connected to the broker")

// Publish sends one message on the current connection and waits up to wait
// for its acknowledgement (QoS 1) or its write (QoS 0).
func (f *Forwarder) Publish(topic string, qos byte, retained bool, payload []byte, wait time.Duration) error {
	f.mu.Lock()
	c := f.client
	f.mu.Unlock()
	if c == nil || !f.connected.Load() {
		return ErrNotConnected
	}
	return mqttconn.Publish(c, topic, qos, retained, payload, wait)
}

// PublishStatus publishes the retained online status again (after a
// config change, or on a rebirth command).
func (f *Forwarder) PublishStatus() error {
	if f.opts.Online == nil {
		return nil
	}
	b, err := json.Marshal(f.opts.Online())
	if err != nil {
		return err
	}
	return f.Publish(f.opts.StatusTopic, 1, true, b, 10*time.Second)
}

func (f *Forwarder) setErr(err error) {
	f.errMu.Lock()
	f.lastErr = err.Error()
	f.errMu.Unlock()
}

// errStop ends a session because Run is finishing.
var errStop = errors.New("stopping")

// Run connects, publishes the spool and keeps reconnecting until ctx ends.
// Then it goes on publishing the backlog for up to FlushTimeout (if it is
// connected), publishes the offline status and disconnects.
func (f *Forwarder) Run(ctx context.Context) error {
	ackDone := make(chan struct{})
	ackCtx, stopAcks := context.WithCancel(context.Background())
	go func() {
		defer close(ackDone)
		f.ackLoop(ackCtx)
	}()
	defer func() {
		stopAcks()
		<-ackDone
	}()

	attempt := 0
	var tried time.Time // when the last attempt began, or the last connection was lost
	for ctx.Err() == nil {
		if attempt > 0 {
			// The backoff spaces the starts of attempts: one that hung
			// until its timeout (a link that swallows CONNECT) has waited
			// that long already.
			wait := backoff.Delay(attempt, f.opts.BackoffMin, f.opts.BackoffMax) - time.Since(tried)
			if !mqttconn.WaitForBroker(ctx, f.opts.Broker, wait) {
				break
			}
		}
		tried = time.Now()
		c, lost, err := f.connect(ctx)
		if err != nil {
			attempt++
			f.setErr(err)
			if attempt == 1 || attempt%10 == 0 {
				f.log.Warn("broker unreachable; collecting into the spool and retrying", "broker", f.opts.Broker, "attempt", attempt, "err", err)
			}
			continue
		}
		attempt = 0
		err = f.session(ctx, c, lost)
		f.mu.Lock()
		f.client = nil
		f.mu.Unlock()
		f.connected.Store(false)
		if errors.Is(err, errStop) {
			f.goOffline(c)
			return nil
		}
		f.setErr(err)
		f.log.Warn("broker connection lost; resending unacknowledged batches after reconnect", "err", err)
		c.Disconnect(0)
		attempt, tried = 1, time.Now()
	}
	return nil
}

func (f *Forwarder) goOffline(c mqtt.Client) {
	if f.opts.Online != nil {
		if b, err := json.Marshal(offline(f.opts.Online())); err == nil {
			tok := c.Publish(f.opts.StatusTopic, 1, true, b)
			tok.WaitTimeout(2 * time.Second)
		}
	}
	c.Disconnect(500)
}

// offline turns the online status into the offline one, for the will and
// the goodbye. It leaves the point descriptions out: an MQTT will is at most
// 64 KiB, and the gateway keeps the points of the last online status.
func offline(st wire.Status) wire.Status {
	st.State = wire.Offline
	st.Points = nil
	st.TS = time.Now().UnixMilli()
	return st
}

// connect makes one paho client and connects it once.
func (f *Forwarder) connect(ctx context.Context) (mqtt.Client, <-chan error, error) {
	o, lost := mqttconn.Conn{
		Broker: f.opts.Broker, ClientID: f.opts.ClientID,
		Username: f.opts.Username, Password: f.opts.Password, TLS: f.opts.TLS,
		CleanSession: false, KeepAlive: f.opts.KeepAlive,
		// No wait on a link that swallows CONNECT longer than a dead
		// link may go unnoticed.
		ConnectTimeout: min(f.opts.ConnectTimeout, f.opts.KeepAlive),
	}.Options()
	// The write timeout bounds writing one publish, and a publish waiting
	// for paho's writer: a link that takes none is dead within a keepalive.
	o.SetWriteTimeout(min(f.opts.ConnectTimeout, f.opts.KeepAlive)).SetOrderMatters(false)
	if f.opts.Online != nil {
		if b, err := json.Marshal(offline(f.opts.Online())); err == nil {
			o.SetBinaryWill(f.opts.StatusTopic, b, 1, true)
		}
	}
	if f.opts.OnCommand != nil {
		handler := func(_ mqtt.Client, m mqtt.Message) {
			m.Ack()
			f.opts.OnCommand(m.Topic(), m.Payload())
		}
		// Commands queued by the broker for this session can arrive before
		// the subscription below is made: the default handler takes them.
		o.SetDefaultPublishHandler(handler)
	}
	c, err := mqttconn.Connect(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	return c, lost, nil
}

type ack struct {
	seq     uint64
	samples int
	err     error
}

// session publishes the spool on one connection until it is lost (an
// error) or ctx ends and the backlog is flushed or FlushTimeout passes
// (errStop).
func (f *Forwarder) session(ctx context.Context, c mqtt.Client, lost <-chan error) error {
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	if f.opts.Online != nil {
		b, err := json.Marshal(f.opts.Online())
		if err != nil {
			return err
		}
		if err := mqttconn.Wait(c.Publish(f.opts.StatusTopic, 1, true, b), f.opts.ConnectTimeout); err != nil {
			return fmt.Errorf("publish online status on %s: %w", f.opts.StatusTopic, err)
		}
	}
	if f.opts.CmdFilter != "" && f.opts.OnCommand != nil {
		if err := mqttconn.Wait(c.Subscribe(f.opts.CmdFilter, 1, nil), f.opts.ConnectTimeout); err != nil {
			return fmt.Errorf("subscribe %s: %w", f.opts.CmdFilter, err)
		}
	}
	f.mu.Lock()
	f.client = c
	f.mu.Unlock()
	f.connected.Store(true)
	if f.connects.Add(1) > 1 {
		f.log.Info("broker connection restored", "broker", f.opts.Broker)
	} else {
		f.log.Info("connected to the broker", "broker", f.opts.Broker)
	}
	f.connectedAt.Store(time.Now().UnixMilli())
	if f.opts.OnConnect != nil {
		go f.opts.OnConnect()
	}

	acks := make(chan ack, f.opts.MaxInflight)
	inflight := 0
	// heard is when the broker last acknowledged a batch, or when a batch
	// went out with none in flight; 0 when none is in flight.
	var heard atomic.Int64
	dead := make(chan error, 1)
	var watching sync.WaitGroup
	watching.Go(func() { f.watchdog(sctx, c, &heard, dead) })
	defer func() { cancel(); watching.Wait() }()
	var highest uint64 // resend everything unacknowledged, from the head
	stopping := ctx.Done()
	var deadline <-chan time.Time
	safety := time.NewTicker(time.Second)
	defer safety.Stop()
	for {
		idle := false
		if room := f.opts.MaxInflight - inflight; room > 0 {
			entries, err := f.sp.Peek(highest, room)
			if err != nil {
				f.setErr(err)
				f.log.Error("forwarder: reading the spool", "err", err)
			}
			for _, e := range entries {
				highest = e.Seq
				if f.isPendingAck(e.Seq) {
					continue
				}
				if inflight == 0 {
					heard.Store(time.Now().UnixNano())
				}
				tok := c.Publish(f.opts.DataTopic, 1, false, e.Data)
				inflight++
				go func(seq uint64, samples int) {
					select {
					case <-tok.Done():
					case <-sctx.Done():
						return
					}
					select {
					case acks <- ack{seq, samples, tok.Error()}:
					case <-sctx.Done():
					}
				}(e.Seq, e.Samples)
			}
			idle = len(entries) == 0 && err == nil
		}
		if deadline != nil && idle && inflight == 0 {
			return errStop // flushed
		}
		select {
		case a := <-acks:
			inflight--
			var done []uint64
			var failed error
			for more := true; more; {
				if a.err != nil {
					failed = a.err
				} else {
					done = append(done, a.seq)
					f.publishedBatch.Add(1)
					f.publishedSamp.Add(uint64(a.samples))
				}
				select {
				case a = <-acks:
					inflight--
				default:
					more = false
				}
			}
			f.queueAck(done)
			if inflight > 0 {
				heard.Store(time.Now().UnixNano())
			} else {
				heard.Store(0)
			}
			if failed != nil {
				select {
				case err := <-dead: // the watchdog closed the connection
					return err
				default:
				}
				return fmt.Errorf("publish: %w", failed)
			}
		case <-f.sp.Notify():
		case <-safety.C:
		case err := <-dead:
			return err
		case err := <-lost:
			return fmt.Errorf("connection lost: %w", err)
		case <-stopping:
			stopping = nil
			deadline = time.After(f.opts.FlushTimeout)
		case <-deadline:
			f.log.Warn("forwarder: flush deadline reached; the rest stays in the spool", "in_flight", inflight)
			return errStop
		}
	}
}

// watchdog declares the link dead when batches are in flight and no PUBACK
// came for a keepalive (heard, in Unix nanoseconds, is when the last one
// came or the first batch went out). Paho may not notice that itself: its
// PINGREQ can be stuck behind a full TCP send buffer, which a real blackhole
// fills, and a publish then waits up to the write timeout. It sends the
// reason on dead and closes the connection. A publish blocked in paho
// returns within its write timeout (at most the keepalive).
func (f *Forwarder) watchdog(ctx context.Context, c mqtt.Client, heard *atomic.Int64, dead chan<- error) {
	k := f.opts.KeepAlive
	t := time.NewTimer(k / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wait := k / 4 // nothing in flight: look again
		if h := heard.Load(); h != 0 {
			left := k - time.Since(time.Unix(0, h))
			if left <= 0 {
				err := fmt.Errorf("no acknowledgement from the broker for %v with batches in flight: the link is dead", k)
				f.setErr(err)
				f.connected.Store(false)
				dead <- err
				c.Disconnect(0)
				return
			}
			wait = min(wait, left)
		}
		t.Reset(wait)
	}
}

func (f *Forwarder) isPendingAck(seq uint64) bool {
	f.ackMu.Lock()
	defer f.ackMu.Unlock()
	return f.pendingAck[seq]
}

func (f *Forwarder) queueAck(seqs []uint64) {
	if len(seqs) == 0 {
		return
	}
	f.ackMu.Lock()
	for _, s := range seqs {
		f.pendingAck[s] = true
	}
	f.ackQueue = append(f.ackQueue, seqs...)
	f.ackMu.Unlock()
	select {
	case f.ackKick <- struct{}{}:
	default:
	}
}

// ackLoop deletes acknowledged batches from the spool, many per commit, so
// that publishing never waits for an fsync. It drains what is queued before
// returning.
func (f *Forwarder) ackLoop(ctx context.Context) {
	for {
		f.ackMu.Lock()
		seqs := f.ackQueue
		f.ackQueue = nil
		f.ackMu.Unlock()
		if len(seqs) > 0 {
			if err := f.sp.Ack(seqs...); err != nil {
				f.setErr(err)
				f.log.Error("forwarder: acknowledging in the spool; those batches will be sent again", "batches", len(seqs), "err", err)
			}
			f.ackMu.Lock()
			for _, s := range seqs {
				delete(f.pendingAck, s)
			}
			f.ackMu.Unlock()
			continue
		}
		select {
		case <-f.ackKick:
		case <-ctx.Done():
			f.ackMu.Lock()
			n := len(f.ackQueue)
			f.ackMu.Unlock()
			if n == 0 {
				return
			}
		}
	}
}

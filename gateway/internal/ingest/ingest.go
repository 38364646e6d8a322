// Package ingest is the gateway's MQTT side: it receives every agent's data
// batches (through its own subscription, or a shared one when a group is
// configured) and stores them, acknowledging each
// message to the broker only after its points are stored; it feeds status
// and health messages to the registry; and it sends commands to agents and
// waits for their replies.
//
// Flow of a data message:
//
//	paho (manual acks) → onMessage → data channel → collector: decode, check,
//	registry → group of messages → writer: Sink.Write (retried until it
//	works) → BeforeAck (registry saved) → Ack every message of the group, in
//	the order received.
//
// A message that cannot be decoded, is too large, or claims another agent
// than its topic is counted, logged (rate-limited) and acknowledged with the
// group it arrived in, so the broker does not redeliver it forever.
package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/weftiot/weft/gateway/internal/registry"
	"github.com/weftiot/weft/internal/mqttconn"
	"github.com/weftiot/weft/wire"
)

// Sink stores batches. Write returns nil when every sample was stored or
// refused as bad (then the messages may be acknowledged), and an error when
// the store is unavailable (then nothing is acknowledged and the same
// batches are written again later). Writing a batch twice must store it once.
type Sink interface {
	Write(ctx context.Context, batches []*wire.Batch) (stored, rejected, skipped int, err error)
}

// Options configure an Ingest.
type Options struct {
	Broker    string // tcp://host:port, ssl://…, ws://…
	ClientID  string
	Username  string
	Password  string
	TLS       *tls.Config
	KeepAlive time.Duration
	Prefix    string
	// SharedGroup is the $share group of the data subscription; "" (the
	// default) subscribes without sharing: this instance receives every
	// agent's data. Mosquitto 2.0 restores such a subscription of a
	// persistent session after its restart, and not a $share one, so a
	// group loses what agents publish between a Mosquitto restart and the
	// gateway's new subscription (Run logs a warning).
	SharedGroup string
	// GatewayID names this instance among those sharing the subscription:
	// with a SharedGroup, the instances exchange the batch numbers they
	// stored on {prefix}/_gateways/{GatewayID}/seen (see seen.go). It must
	// be unique per instance and usable as a topic level.
	GatewayID string
	// SeenInterval is how often the stored batch numbers are published
	// (default 1s).
	SeenInterval time.Duration
	// BatchSize caps the samples of one store write.
	BatchSize int
	// Writers is how many groups may be written to the Sink at once
	// (default 1; the Sink must then take concurrent Writes). Messages are
	// acknowledged in the order received all the same. InfluxDB stores a
	// backlog faster with several writes in flight: it parses and indexes
	// one while the next arrives and another waits for its WAL fsync.
	Writers int
	// FlushInterval bounds how long a received message waits for its write
	// while messages keep coming.
	FlushInterval time.Duration
	// QueueLen is how many data messages may wait for the collector
	// (default 4096). The broker's in-flight limit normally keeps it far lower.
	QueueLen int
	// MaxPendingBytes bounds the payload bytes of data messages received
	// and not yet acknowledged (default 16 MiB): past it the gateway stops
	// reading from the broker until a write completes (see budget).
	MaxPendingBytes int
	// DrainTimeout is how long, at shutdown, pending messages may still be
	// written and acknowledged (default 5s). What is not is redelivered.
	DrainTimeout time.Duration

	Sink     Sink
	Registry *registry.Registry
	Metrics  *Metrics
	Log      *slog.Logger
	// BeforeAck runs after a group is stored and before it is acknowledged
	// (the gateway saves the registry there, so sequence numbers of
	// acknowledged batches survive a crash). An error is logged only.
	BeforeAck func() error
}

// Ingest is the gateway's MQTT client.
type Ingest struct {
	o      Options
	log    *slog.Logger
	rl     *RateLog
	topics wire.Topics
	client mqtt.Client
	data   chan dataMsg
	groups chan *group
	stop   chan struct{}
	budget *budget
	seen   seenBook
	// batches are decoded batches for reuse: a batch goes back after its
	// group is acknowledged, so the next decode reuses its samples array
	// and, where names repeat, its strings.
	batches sync.Pool

	mu      sync.Mutex
	waiters map[string]*waiter
	conn    bool
}

// dataMsg is a data message with the site and agent onMessage parsed from
// its topic, so the collector does not parse the topic again.
type dataMsg struct {
	m           mqtt.Message
	site, agent string
}

type waiter struct {
	site, agent string
	ch          chan wire.Reply
}

// group is the unit of one store write and of the acks that follow it.
type group struct {
	msgs    []mqtt.Message
	batches []*wire.Batch
	points  int
	bytes   int // payload bytes of msgs, held in the budget
	first   time.Time
}

// New makes an Ingest; Run connects it.
func New(o Options) *Ingest {
	if o.BatchSize <= 0 {
		o.BatchSize = 5000
	}
	if o.Writers <= 0 {
		o.Writers = 1
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 4096
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 5 * time.Second
	}
	if o.MaxPendingBytes <= 0 {
		o.MaxPendingBytes = 16 << 20
	}
	if o.SeenInterval <= 0 {
		o.SeenInterval = time.Second
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 30 * time.Second
	}
	log := o.Log.With("component", "ingest")
	return &Ingest{o: o, log: log, rl: NewRateLog(log, 10*time.Second), topics: wire.Topics{Prefix: o.Prefix},
		data: make(chan dataMsg, o.QueueLen), groups: make(chan *group), stop: make(chan struct{}),
		waiters: map[string]*waiter{}, budget: newBudget(o.MaxPendingBytes),
		batches: sync.Pool{New: func() any { return &wire.Batch{} }}}
}

// DataFilter is the data subscription's topic filter.
func (in *Ingest) DataFilter() string {
	if in.o.SharedGroup == "" {
		return in.topics.DataWildcard()
	}
	return "$share/" + in.o.SharedGroup + "/" + in.topics.DataWildcard()
}

// Run connects to the broker and ingests until ctx is done. Then it stops
// taking messages, writes and acknowledges what it has within DrainTimeout,
// and disconnects. It returns an error only if it could not start.
func (in *Ingest) Run(ctx context.Context) error {
	opts := mqtt.NewClientOptions().
		AddBroker(in.o.Broker).
		SetClientID(in.o.ClientID).
		SetUsername(in.o.Username).
		SetPassword(in.o.Password).
		SetCleanSession(false). // the broker keeps our subscriptions and unacknowledged messages
		SetAutoAckDisabled(true).
		SetOrderMatters(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(2 * time.Second).
		// Paho's reconnect waits 1s doubling to this, without jitter. A
		// plant district has a few gateways, not a herd: 5s brings one back
		// within 5s of the broker's return at no cost to the broker.
		SetMaxReconnectInterval(5 * time.Second).
		SetDefaultPublishHandler(in.onMessage).
		SetOnConnectHandler(in.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			in.setConnected(false)
			in.o.Metrics.Errors.WithLabelValues("connection_lost").Inc()
			in.log.Warn("lost the broker; reconnecting", "broker", in.o.Broker, "error", err)
		})
	mqttconn.SetKeepAlive(opts, in.o.KeepAlive) // a dead link noticed within the keepalive
	if in.o.TLS != nil {
		opts.SetTLSConfig(in.o.TLS)
	}
	in.client = mqtt.NewClient(opts)
	in.client.Connect() // with ConnectRetry it keeps trying in the background

	if in.o.SharedGroup != "" {
		in.log.Warn("the data subscription is shared (mqtt.shared_group): a broker that forgets shared subscriptions when it restarts, as Mosquitto 2.0 does, drops what agents publish until the gateways subscribe again, and the agents have already deleted it; keep a shared group only on a broker that keeps them (docs/gateway.md, section One gateway or several), else leave mqtt.shared_group out",
			"filter", in.DataFilter())
	}
	if in.o.SharedGroup != "" && !in.seenSharing() {
		in.log.Warn("gateway id unusable as a topic level: not sharing stored batch numbers with the other instances; their gap counts will be wrong", "id", in.o.GatewayID)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); in.collect(ctx) }()
	go func() { defer wg.Done(); in.write(ctx) }()
	stopSeen, seenDone := make(chan struct{}), make(chan struct{})
	if in.seenSharing() {
		go func() { defer close(seenDone); in.announce(stopSeen) }()
	} else {
		close(seenDone)
	}
	<-ctx.Done()
	close(in.stop)
	wg.Wait()
	close(stopSeen) // the last stored numbers go out before disconnecting
	<-seenDone
	in.client.Disconnect(1000)
	in.setConnected(false)
	return nil
}

// Connected reports whether the broker link is up.
func (in *Ingest) Connected() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.conn
}

func (in *Ingest) setConnected(c bool) {
	in.mu.Lock()
	in.conn = c
	in.mu.Unlock()
}

// onConnect subscribes on every (re)connection: the session may be new, and
// subscribing again brings the retained statuses. A failed subscription is
// retried every 5 s while the connection lasts.
func (in *Ingest) onConnect(c mqtt.Client) {
	subs := map[string]byte{
		in.DataFilter():            1,
		in.topics.StatusWildcard(): 1,
		in.topics.HealthWildcard(): 0,
		in.topics.ReplyWildcard():  1,
	}
	for {
		err := in.subscribe(c, subs)
		if err == nil {
			break
		}
		in.o.Metrics.Errors.WithLabelValues("subscribe").Inc()
		in.log.Error("subscribe failed; retrying in 5s", "error", err)
		select {
		case <-time.After(5 * time.Second):
		case <-in.stop:
			return
		}
		if !c.IsConnectionOpen() {
			return // the next connection subscribes again
		}
	}
	if in.seenSharing() {
		// Apart, so that a broker ACL from before this topic costs the
		// fleet-wide gap counts, not the data.
		if err := in.subscribe(c, map[string]byte{in.seenWildcard(): 1}); err != nil {
			in.o.Metrics.Errors.WithLabelValues("subscribe").Inc()
			in.log.Error("no batch numbers from the other gateway instances: their share of every agent's batches will count as gaps here; allow this gateway `readwrite "+in.seenWildcard()+"` in the broker's ACL",
				"error", err)
		}
	}
	in.setConnected(true)
	in.log.Info("connected to the broker", "broker", in.o.Broker, "client_id", in.o.ClientID, "data", in.DataFilter())
}

func (in *Ingest) subscribe(c mqtt.Client, subs map[string]byte) error {
	t := c.SubscribeMultiple(subs, nil)
	if !t.WaitTimeout(30 * time.Second) {
		return errors.New("no SUBACK in 30s")
	}
	if t.Error() != nil {
		return t.Error()
	}
	if st, ok := t.(*mqtt.SubscribeToken); ok {
		for topic, code := range st.Result() {
			if code == 0x80 {
				return fmt.Errorf("the broker refused the subscription %q (check its ACL for this client)", topic)
			}
		}
	}
	return nil
}

// onMessage is paho's handler for every message. It must not block long:
// paho calls it from its reading goroutine.
func (in *Ingest) onMessage(_ mqtt.Client, m mqtt.Message) {
	if strings.HasPrefix(m.Topic(), in.seenBase()) && strings.HasSuffix(m.Topic(), "/seen") {
		in.onSeen(m.Topic(), m.Payload())
		m.Ack()
		return
	}
	site, agent, kind, rest, err := wire.ParseTopic(in.o.Prefix, m.Topic())
	if err != nil {
		in.o.Metrics.Control.WithLabelValues("unknown", "topic").Inc()
		in.rl.Warn("topic", "message on a topic outside the contract; dropped", "topic", m.Topic(), "error", err)
		m.Ack()
		return
	}
	switch kind {
	case wire.KindData:
		// Not acknowledged when stopping: the broker redelivers it to the
		// next session.
		n := len(m.Payload())
		if !in.budget.take(n, in.stop) {
			return
		}
		select {
		case in.data <- dataMsg{m: m, site: site, agent: agent}:
			in.o.Metrics.Pending.Inc()
			in.o.Metrics.PendingBytes.Add(float64(n))
		case <-in.stop:
			in.budget.release(n)
		}
		return
	case wire.KindStatus:
		in.onStatus(site, agent, m)
	case wire.KindHealth:
		in.onHealth(site, agent, m)
	case wire.KindReply:
		in.onReply(site, agent, rest, m)
	default:
		in.o.Metrics.Control.WithLabelValues(kind, "ignored").Inc()
	}
	m.Ack()
}

func (in *Ingest) onStatus(site, agent string, m mqtt.Message) {
	if len(m.Payload()) == 0 {
		return // a cleared retained status
	}
	var s wire.Status
	err := wire.DecodeStatus(m.Payload(), &s)
	if err == nil {
		err = wire.CheckSource(wire.KindStatus, s.Site, s.Agent, site, agent)
	}
	if err != nil {
		in.reject(wire.KindStatus, m.Topic(), err)
		return
	}
	in.o.Metrics.Control.WithLabelValues(wire.KindStatus, "ok").Inc()
	in.o.Registry.Status(&s)
}

func (in *Ingest) onHealth(site, agent string, m mqtt.Message) {
	var h wire.Health
	err := wire.DecodeHealth(m.Payload(), &h)
	if err == nil {
		err = wire.CheckSource(wire.KindHealth, h.Site, h.Agent, site, agent)
	}
	if err != nil {
		in.reject(wire.KindHealth, m.Topic(), err)
		return
	}
	in.o.Metrics.Control.WithLabelValues(wire.KindHealth, "ok").Inc()
	in.o.Registry.Health(&h)
}

func (in *Ingest) onReply(site, agent, id string, m mqtt.Message) {
	var r wire.Reply
	err := wire.DecodeReply(m.Payload(), &r)
	if err == nil && r.ID != id {
		err = fmt.Errorf("wire: reply message: %w: payload id %q, topic id %q", wire.ErrTopic, r.ID, id)
	}
	if err == nil && r.Health != nil {
		err = wire.CheckSource("reply health", r.Health.Site, r.Health.Agent, site, agent)
	}
	if err != nil {
		in.reject(wire.KindReply, m.Topic(), err)
		return
	}
	in.mu.Lock()
	w := in.waiters[id]
	if w != nil && (w.site != site || w.agent != agent) {
		w = nil
	}
	in.mu.Unlock()
	if w == nil {
		in.o.Metrics.Control.WithLabelValues(wire.KindReply, "unexpected").Inc()
		return // another gateway instance's command, or one we gave up on
	}
	in.o.Metrics.Control.WithLabelValues(wire.KindReply, "ok").Inc()
	select {
	case w.ch <- r:
	default:
	}
}

// outcome names the reason a message was rejected, for the counters.
func outcome(err error) string {
	switch {
	case errors.Is(err, wire.ErrTooLarge):
		return "too_large"
	case errors.Is(err, wire.ErrVersion):
		return "version"
	case errors.Is(err, wire.ErrTopic):
		return "mismatch"
	}
	return "malformed"
}

func (in *Ingest) reject(kind, topic string, err error) {
	o := outcome(err)
	in.o.Metrics.Control.WithLabelValues(kind, o).Inc()
	in.rl.Warn(kind+o, "rejected a "+kind+" message", "reason", o, "topic", topic, "error", err)
}

// collect decodes data messages and hands groups to the writer. A group goes
// to the writer as soon as the writer is free and no message is waiting, or
// when it reaches BatchSize samples, or when its first message has waited
// FlushInterval: the writer is never idle while there is data, and a
// busy writer lets the next group grow.
func (in *Ingest) collect(ctx context.Context) {
	defer close(in.groups)
	g := &group{}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	due := false
	for {
		var out chan *group
		full := g.points >= in.o.BatchSize
		if len(g.msgs) > 0 && (full || due || len(in.data) == 0) {
			out = in.groups
		}
		if full || due {
			// Take no more input until the writer has this group.
			select {
			case out <- g:
				g, due = &group{}, false
				timer.Stop()
			case <-ctx.Done():
				in.drain(g)
				return
			}
			continue
		}
		select {
		case d := <-in.data:
			if len(g.msgs) == 0 {
				g.first = time.Now()
				timer.Reset(in.o.FlushInterval)
			}
			in.add(g, d)
		case out <- g:
			g, due = &group{}, false
			timer.Stop()
		case <-timer.C:
			due = len(g.msgs) > 0
		case <-ctx.Done():
			in.drain(g)
			return
		}
	}
}

// drain hands the last group to the writer at shutdown, if the writer takes
// it within the drain timeout.
func (in *Ingest) drain(g *group) {
	for {
		select {
		case d := <-in.data:
			in.add(g, d)
			continue
		default:
		}
		break
	}
	if len(g.msgs) == 0 {
		return
	}
	select {
	case in.groups <- g:
	case <-time.After(in.o.DrainTimeout):
	}
}

// add decodes one data message into the group.
func (in *Ingest) add(g *group, d dataMsg) {
	m := d.m
	g.msgs = append(g.msgs, m)
	g.bytes += len(m.Payload())
	b := in.batches.Get().(*wire.Batch)
	err := wire.DecodeBatch(m.Payload(), b)
	if err == nil {
		err = wire.CheckTopic(b, d.site, d.agent)
	}
	if err != nil {
		in.batches.Put(b)
		o := outcome(err)
		in.o.Metrics.Messages.WithLabelValues(o).Inc()
		in.rl.Warn("data"+o, "rejected a data message", "reason", o, "topic", m.Topic(), "bytes", len(m.Payload()), "error", err)
		return
	}
	switch oc := in.o.Registry.Batch(b); {
	case oc.Duplicate:
		in.o.Metrics.Batches.WithLabelValues("duplicate").Inc()
	case oc.Late:
		in.o.Metrics.Batches.WithLabelValues("late").Inc()
	case oc.Ahead:
		in.o.Metrics.Batches.WithLabelValues("ahead").Inc()
	case oc.Reset:
		in.o.Metrics.Batches.WithLabelValues("reset").Inc()
	default:
		in.o.Metrics.Batches.WithLabelValues("next").Inc()
	}
	g.batches = append(g.batches, b)
	g.points += len(b.Samples)
}

// write stores each group, up to Writers at once, retrying with backoff
// while the store is down, then acknowledges their messages in order. Writes that are still failing
// when ctx is done plus DrainTimeout are abandoned unacknowledged: the broker
// redelivers those messages.
func (in *Ingest) write(ctx context.Context) {
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
			select {
			case <-time.After(in.o.DrainTimeout):
				cancel()
			case <-wctx.Done():
			}
		case <-wctx.Done():
		}
	}()
	// Up to Writers groups are stored at once; each job's done says
	// whether its group was stored, and the acknowledger takes the jobs in
	// the order the groups came, so messages are acknowledged in order.
	type job struct {
		g    *group
		done chan bool
	}
	jobs := make(chan job)
	order := make(chan job, in.o.Writers)
	var wg sync.WaitGroup
	for range in.o.Writers {
		wg.Go(func() {
			for j := range jobs {
				j.done <- in.store(wctx, j.g)
			}
		})
	}
	wg.Go(func() {
		stopped := false
		for j := range order {
			// After a group that was not stored (shutting down), none is
			// acknowledged: the broker redelivers them all.
			if ok := <-j.done; ok && !stopped {
				in.acknowledge(j.g)
			} else {
				stopped = true
			}
		}
	})
	for g := range in.groups {
		j := job{g: g, done: make(chan bool, 1)}
		order <- j
		jobs <- j
	}
	close(jobs)
	close(order)
	wg.Wait()
}

// acknowledge finishes a stored group: the registry is saved, its messages
// acknowledged, and their budget released.
func (in *Ingest) acknowledge(g *group) {
	if in.o.BeforeAck != nil {
		if err := in.o.BeforeAck(); err != nil {
			in.o.Metrics.Errors.WithLabelValues("registry_save").Inc()
			in.rl.Warn("beforeack", "saving the registry failed", "error", err)
		}
	}
	for _, m := range g.msgs {
		m.Ack()
	}
	in.o.Metrics.Pending.Sub(float64(len(g.msgs)))
	in.o.Metrics.PendingBytes.Sub(float64(g.bytes))
	in.budget.release(g.bytes)
	sharing := in.seenSharing()
	for _, b := range g.batches {
		if sharing {
			in.seen.add(b.Site, b.Agent, b.Seq)
		}
		in.batches.Put(b)
	}
}

// store writes one group until it works; false if ctx ended first.
func (in *Ingest) store(ctx context.Context, g *group) bool {
	decoded := len(g.batches)
	if decoded == 0 {
		return true
	}
	w, ok := WriteUntilStored(ctx, in.o.Sink, g.batches, func(attempt int, err error, wait time.Duration) {
		in.o.Metrics.Errors.WithLabelValues("write").Inc()
		in.rl.Warn("write", "store write failed; holding the messages unacknowledged and retrying",
			"error", err, "attempt", attempt, "messages", len(g.msgs), "points", g.points, "retry_in", wait)
	})
	if !ok {
		return false
	}
	in.o.Metrics.WriteSeconds.Observe(w.Took.Seconds())
	in.o.Metrics.PointsWritten.Add(float64(w.Stored))
	in.o.Metrics.PointsRejected.Add(float64(w.Rejected))
	in.o.Metrics.PointsSkipped.Add(float64(w.Skipped))
	in.o.Metrics.Messages.WithLabelValues("stored").Add(float64(decoded))
	if w.Attempts > 1 {
		in.log.Info("store is back; written after retries", "attempts", w.Attempts, "points", w.Stored)
	}
	return true
}

// Command sends a command to an agent and waits for its reply until ctx
// ends. The command's ID must be unique (the caller makes it).
func (in *Ingest) Command(ctx context.Context, site, agent string, c wire.Command) (wire.Reply, error) {
	if !in.Connected() {
		return wire.Reply{}, fmt.Errorf("command %s to %s/%s: %w", c.Name, site, agent, ErrNotConnected)
	}
	payload, err := jsonMarshal(c)
	if err != nil {
		return wire.Reply{}, fmt.Errorf("command %s to %s/%s: encode: %w", c.Name, site, agent, err)
	}
	w := &waiter{site: site, agent: agent, ch: make(chan wire.Reply, 1)}
	in.mu.Lock()
	in.waiters[c.ID] = w
	in.mu.Unlock()
	defer func() {
		in.mu.Lock()
		delete(in.waiters, c.ID)
		in.mu.Unlock()
	}()
	topic := in.topics.Cmd(site, agent, c.Name)
	t := in.client.Publish(topic, 1, false, payload)
	select {
	case <-t.Done():
		if t.Error() != nil {
			in.o.Metrics.Errors.WithLabelValues("command").Inc()
			return wire.Reply{}, fmt.Errorf("command %s to %s/%s: publish on %s: %w", c.Name, site, agent, topic, t.Error())
		}
	case <-ctx.Done():
		return wire.Reply{}, fmt.Errorf("command %s to %s/%s: publish on %s: %w", c.Name, site, agent, topic, ErrNoReply)
	}
	select {
	case r := <-w.ch:
		return r, nil
	case <-ctx.Done():
		in.o.Metrics.Errors.WithLabelValues("command").Inc()
		return wire.Reply{}, fmt.Errorf("command %s to %s/%s: %w", c.Name, site, agent, ErrNoReply)
	}
}

package opcua

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"github.com/weftiot/weft/protocols"
	"github.com/weftiot/weft/wire"
)

// Subscriptions: how items are spread and how long silence may last.
const (
	// itemsPerSubscription bounds one subscription, so that one publish
	// response stays small: gopcua's server sends every response as a
	// single chunk and a client refuses a chunk above its 64 KiB receive
	// buffer (a 1,000-item data change is about 30 KB), and many PLCs
	// limit the items of one subscription anyway.
	itemsPerSubscription = 1000
	// maxKeepAlivePeriod is the longest the driver lets a server stay
	// silent on a subscription before a keep-alive is due.
	maxKeepAlivePeriod = 10 * time.Second
	// maxPublishRequests bounds the Publish requests kept outstanding.
	maxPublishRequests = 10
)

// subscriptionTiming returns the publishing interval and the max keep-alive
// count the driver asks for: a keep-alive at least every
// min(2 × timeout, 10 s), and never before one publishing interval.
func (d *Driver) subscriptionTiming() (pub time.Duration, keepAlive uint32) {
	pub = d.cfg.PublishingInterval
	if pub <= 0 {
		pub = defaultInterval
	}
	period := max(pub, min(2*d.timeout, maxKeepAlivePeriod))
	return pub, uint32(max(1, period/pub))
}

// silenceLimit is how long a subscription may send neither data nor a
// keep-alive before the driver calls it stalled: the keep-alive period, one
// interval more (a server counts intervals from its own tick), and a margin
// of max(timeout, interval).
func (d *Driver) silenceLimit(pub time.Duration, keepAlive uint32) time.Duration {
	return pub*time.Duration(keepAlive+1) + max(d.timeout, pub)
}

// publishTimeout bounds one Publish request: the server holds it until it
// has data or a keep-alive is due.
func (d *Driver) publishTimeout() time.Duration {
	return d.silenceLimit(d.subscriptionTiming()) + d.timeout
}

// subscription is one server subscription and what the driver last heard
// from it.
type subscription struct {
	id        uint32
	pub       time.Duration // revised by the server
	keepAlive uint32        // revised by the server
	lastHeard time.Time
	lastSeq   uint32 // sequence number of the last data message
}

// Subscribe creates subscriptions of at most 1,000 monitored items each, one
// item per mode: subscribe point, and emits a sample for every data change
// the server publishes. It blocks until ctx ends (it deletes the
// subscriptions and returns nil) or the connection or a subscription is lost
// (it returns an error wrapping protocols.ErrNotConnected; the agent calls
// Connect, then Subscribe again, which recreates everything). With no
// subscribed points it returns nil at once.
//
// The driver runs its own Publish requests, so that it sees keep-alives.
// A loss is seen four ways: the secure channel fails (server restart,
// reset); a Publish fails; a subscription sends neither data nor a
// keep-alive within its publishing interval × max keep-alive count (plus a
// margin: the server stopped publishing while the connection stays up); or,
// after max(5 s, 3 × publishing interval) with nothing at all, a probe Read
// of the server's clock fails (a silent network cut).
func (d *Driver) Subscribe(ctx context.Context, emit protocols.Emit) error {
	if len(d.subbed) == 0 {
		return nil
	}
	c, nodes, nodeErr := d.current()
	if c == nil {
		return fmt.Errorf("%s: subscribe: %w", d.where(), protocols.ErrNotConnected)
	}
	pub, keepAlive := d.subscriptionTiming()

	now := time.Now()
	var items []*ua.MonitoredItemCreateRequest
	for _, i := range d.subbed {
		if nodes[i] == nil {
			emit(wire.Sample{Device: d.device, Point: d.points[i].Name, Quality: wire.Bad, Code: uint32(codeOf(nodeErr[i])), TS: now.UnixMilli()})
			continue
		}
		items = append(items, d.monitoredItem(i, nodes[i], pub))
	}
	// Even with no item to monitor, one subscription's keep-alives tell a
	// live server from a dead one.
	groups := [][]*ua.MonitoredItemCreateRequest{nil}
	if len(items) > 0 {
		groups = groups[:0]
		for start := 0; start < len(items); start += itemsPerSubscription {
			groups = append(groups, items[start:min(start+itemsPerSubscription, len(items))])
		}
	}
	subs := make(map[uint32]*subscription, len(groups))
	defer func() { d.deleteSubscriptions(c, subs) }()
	for _, group := range groups {
		sub, err := d.createSubscription(ctx, c, pub, keepAlive)
		if err != nil {
			return err
		}
		subs[sub.id] = sub
		for start := 0; start < len(group); start += monitoredPerCall {
			if err := d.monitor(ctx, c, sub.id, group[start:min(start+monitoredPerCall, len(group))], emit); err != nil {
				return err
			}
		}
	}
	d.log.Info("subscribed", "items", len(items), "subscriptions", len(subs), "publishing_interval", pub, "keep_alive_count", keepAlive)

	pctx, stopPublishing := context.WithCancel(ctx)
	results := make(chan publishResult)
	acks := &ackQueue{}
	var wg sync.WaitGroup
	for range min(len(subs)+1, maxPublishRequests) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.publishLoop(pctx, c, acks, results, pub)
		}()
	}
	defer func() {
		stopPublishing()
		wg.Wait()
	}()

	idleLimit := max(5*time.Second, 3*pub)
	watch := time.NewTicker(min(pub, 500*time.Millisecond))
	defer watch.Stop()
	lastHeard := time.Now()
	for _, sub := range subs {
		sub.lastHeard = lastHeard
	}
	var buf []wire.Sample
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-results:
			if r.err != nil {
				switch {
				case errors.Is(r.err, ua.StatusBadTimeout), errors.Is(r.err, ua.StatusBadTooManyPublishRequests):
					// A Publish held past its timeout, or one too many:
					// the silence limit catches a real stall.
					d.log.Debug("publish", "err", r.err)
					continue
				case ctx.Err() != nil:
					return nil
				}
				return d.lost(fmt.Errorf("%s: publish: %w", d.where(), r.err))
			}
			lastHeard = time.Now()
			sub := subs[r.res.SubscriptionID]
			if sub == nil {
				d.log.Debug("publish response for another subscription", "subscription", r.res.SubscriptionID)
				continue
			}
			sub.lastHeard = lastHeard
			msg := r.res.NotificationMessage
			if msg == nil || len(msg.NotificationData) == 0 {
				continue // keep-alive
			}
			acks.add(sub.id, msg.SequenceNumber)
			if sub.lastSeq != 0 && msg.SequenceNumber != sub.lastSeq+1 {
				d.log.Warn("notifications missed", "subscription", sub.id, "after", sub.lastSeq, "got", msg.SequenceNumber)
			}
			sub.lastSeq = msg.SequenceNumber
			for _, data := range msg.NotificationData {
				if data == nil {
					continue
				}
				switch v := data.Value.(type) {
				case *ua.DataChangeNotification:
					buf = d.emitChanges(v, nodes, buf, emit)
				case *ua.StatusChangeNotification:
					if Quality(v.Status) != wire.Good {
						return d.lost(fmt.Errorf("%s: the server ended subscription %d: %w", d.where(), sub.id, v.Status))
					}
				}
			}
		case <-watch.C:
			if st := c.State(); st != opcua.Connected {
				return d.lost(fmt.Errorf("%s: connection %s", d.where(), st))
			}
			now := time.Now()
			for _, sub := range subs {
				if limit := d.silenceLimit(sub.pub, sub.keepAlive); now.Sub(sub.lastHeard) > limit {
					return d.lost(fmt.Errorf("%s: subscription %d sent neither data nor a keep-alive for %s (publishing interval %s, max keep-alive count %d): the server stopped publishing; resubscribing",
						d.where(), sub.id, now.Sub(sub.lastHeard).Round(time.Millisecond), sub.pub, sub.keepAlive))
				}
			}
			if now.Sub(lastHeard) < idleLimit {
				continue
			}
			if err := d.probe(ctx, c); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return d.lost(fmt.Errorf("%s: no data for %s and the server does not answer: %w", d.where(), now.Sub(lastHeard).Round(time.Second), err))
			}
			lastHeard = now
		}
	}
}

// emitChanges emits the samples of one data change notification.
func (d *Driver) emitChanges(v *ua.DataChangeNotification, nodes []*ua.NodeID, buf []wire.Sample, emit protocols.Emit) []wire.Sample {
	now := time.Now()
	var emitted uint64
	for _, item := range v.MonitoredItems {
		if item == nil {
			continue
		}
		i := int(item.ClientHandle)
		if i < 0 || i >= len(d.points) || nodes[i] == nil {
			d.log.Debug("notification for an unknown client handle", "handle", item.ClientHandle)
			continue
		}
		var cerr error
		buf, cerr = appendSamples(buf[:0], d.device, d.points[i].Name, item.Value, now)
		if cerr != nil {
			d.log.Debug("value not converted", "err", cerr)
		}
		for _, s := range buf {
			emit(s)
		}
		emitted += uint64(len(buf))
	}
	d.addStats(0, uint64(len(v.MonitoredItems)), emitted)
	return buf
}

// createSubscription asks for one subscription and returns what the server
// granted.
func (d *Driver) createSubscription(ctx context.Context, c *opcua.Client, pub time.Duration, keepAlive uint32) (*subscription, error) {
	req := &ua.CreateSubscriptionRequest{
		RequestedPublishingInterval: float64(pub) / float64(time.Millisecond),
		RequestedLifetimeCount:      3 * keepAlive,
		RequestedMaxKeepAliveCount:  keepAlive,
		MaxNotificationsPerPublish:  itemsPerSubscription,
		PublishingEnabled:           true,
	}
	var res *ua.CreateSubscriptionResponse
	sctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	d.requests.Add(1)
	err := c.Send(sctx, req, func(v ua.Response) error {
		r, ok := v.(*ua.CreateSubscriptionResponse)
		if !ok {
			return fmt.Errorf("unexpected answer %T", v)
		}
		res = r
		return nil
	})
	if err == nil && res.SubscriptionID == 0 {
		err = errors.New("the server answered subscription id 0")
	}
	if err != nil {
		err = fmt.Errorf("%s: create subscription: %w", d.where(), err)
		if isConnErr(err) {
			return nil, d.lost(err)
		}
		d.noteErr(err)
		return nil, err
	}
	sub := &subscription{id: res.SubscriptionID, pub: pub, keepAlive: keepAlive}
	if res.RevisedPublishingInterval > 0 {
		sub.pub = time.Duration(res.RevisedPublishingInterval * float64(time.Millisecond))
	}
	if res.RevisedMaxKeepAliveCount > 0 {
		sub.keepAlive = res.RevisedMaxKeepAliveCount
	}
	return sub, nil
}

type publishResult struct {
	res *ua.PublishResponse
	err error
}

// ackQueue holds the sequence numbers to acknowledge with the next Publish.
type ackQueue struct {
	mu   sync.Mutex
	acks []*ua.SubscriptionAcknowledgement
}

func (q *ackQueue) add(sub, seq uint32) {
	q.mu.Lock()
	q.acks = append(q.acks, &ua.SubscriptionAcknowledgement{SubscriptionID: sub, SequenceNumber: seq})
	q.mu.Unlock()
}

func (q *ackQueue) take() []*ua.SubscriptionAcknowledgement {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.acks
	q.acks = nil
	if out == nil {
		out = []*ua.SubscriptionAcknowledgement{}
	}
	return out
}

// publishLoop keeps one Publish request outstanding until ctx ends, and
// hands every answer (data, keep-alive or error) to Subscribe. After an
// error it waits one publishing interval (at most a second) before the next
// request; after BadTooManyPublishRequests it stops, leaving the others.
func (d *Driver) publishLoop(ctx context.Context, c *opcua.Client, acks *ackQueue, results chan<- publishResult, pub time.Duration) {
	for ctx.Err() == nil {
		var res *ua.PublishResponse
		err := c.Send(ctx, &ua.PublishRequest{SubscriptionAcknowledgements: acks.take()}, func(v ua.Response) error {
			r, ok := v.(*ua.PublishResponse)
			if !ok {
				return fmt.Errorf("unexpected answer %T", v)
			}
			res = r
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		if err == nil && res == nil {
			err = errors.New("empty publish response")
		}
		select {
		case results <- publishResult{res: res, err: err}:
		case <-ctx.Done():
			return
		}
		if errors.Is(err, ua.StatusBadTooManyPublishRequests) {
			return
		}
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(min(pub, time.Second)):
			}
		}
	}
}

func (d *Driver) monitoredItem(i int, node *ua.NodeID, pub time.Duration) *ua.MonitoredItemCreateRequest {
	p := d.points[i]
	sampling := p.SamplingInterval
	if sampling <= 0 {
		sampling = pub
	}
	queue := p.QueueSize
	if queue <= 0 {
		queue = defaultQueue
	}
	var filter *ua.ExtensionObject
	if p.Deadband != nil || p.DeadbandPercent != nil || d.triggers[i] != ua.DataChangeTriggerStatusValue {
		f := &ua.DataChangeFilter{Trigger: d.triggers[i], DeadbandType: uint32(ua.DeadbandTypeNone)}
		switch {
		case p.Deadband != nil:
			f.DeadbandType, f.DeadbandValue = uint32(ua.DeadbandTypeAbsolute), *p.Deadband
		case p.DeadbandPercent != nil:
			f.DeadbandType, f.DeadbandValue = uint32(ua.DeadbandTypePercent), *p.DeadbandPercent
		}
		filter = ua.NewExtensionObject(f)
	}
	return &ua.MonitoredItemCreateRequest{
		ItemToMonitor:  &ua.ReadValueID{NodeID: node, AttributeID: ua.AttributeIDValue, DataEncoding: &ua.QualifiedName{}},
		MonitoringMode: ua.MonitoringModeReporting,
		RequestedParameters: &ua.MonitoringParameters{
			ClientHandle:     uint32(i),
			SamplingInterval: float64(sampling.Milliseconds()),
			Filter:           filter,
			QueueSize:        uint32(queue),
			DiscardOldest:    true,
		},
	}
}

// monitor creates one batch of monitored items; an item the server refuses
// is emitted as a Bad sample with the server's code.
func (d *Driver) monitor(ctx context.Context, c *opcua.Client, subID uint32, items []*ua.MonitoredItemCreateRequest, emit protocols.Emit) error {
	req := &ua.CreateMonitoredItemsRequest{SubscriptionID: subID, TimestampsToReturn: ua.TimestampsToReturnBoth, ItemsToCreate: items}
	var res *ua.CreateMonitoredItemsResponse
	mctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	d.requests.Add(1)
	err := c.Send(mctx, req, func(v ua.Response) error {
		r, ok := v.(*ua.CreateMonitoredItemsResponse)
		if !ok {
			return fmt.Errorf("unexpected answer %T", v)
		}
		res = r
		return nil
	})
	if err == nil && len(res.Results) != len(items) {
		err = fmt.Errorf("the server answered %d results for %d items", len(res.Results), len(items))
	}
	if err != nil {
		err = fmt.Errorf("%s: create %d monitored items: %w", d.where(), len(items), err)
		if isConnErr(err) {
			return d.lost(err)
		}
		d.noteErr(err)
		return err
	}
	now := time.Now().UnixMilli()
	for k, r := range res.Results {
		if r == nil || r.StatusCode == ua.StatusOK || Quality(r.StatusCode) != wire.Bad {
			continue
		}
		i := int(items[k].RequestedParameters.ClientHandle)
		d.log.Warn("server refused a monitored item", "point", d.points[i].Name, "node", items[k].ItemToMonitor.NodeID, "status", r.StatusCode)
		emit(wire.Sample{Device: d.device, Point: d.points[i].Name, Quality: wire.Bad, Code: uint32(r.StatusCode), TS: now})
	}
	return nil
}

// probe reads the server's clock to tell a quiet subscription from a dead
// connection.
func (d *Driver) probe(ctx context.Context, c *opcua.Client) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	res, err := c.Read(ctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{{
		NodeID: ua.NewNumericNodeID(0, id.Server_ServerStatus_CurrentTime), AttributeID: ua.AttributeIDValue}}})
	if err == nil && len(res.Results) != 1 {
		err = errors.New("empty answer")
	}
	return err
}

// deleteSubscriptions removes the subscriptions from the server, best
// effort: on a dead connection it fails fast and the server drops them
// itself.
func (d *Driver) deleteSubscriptions(c *opcua.Client, subs map[uint32]*subscription) {
	if len(subs) == 0 || c.State() != opcua.Connected {
		return
	}
	ids := make([]uint32, 0, len(subs))
	for id := range subs {
		ids = append(ids, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(d.timeout, 2*time.Second))
	defer cancel()
	c.Send(ctx, &ua.DeleteSubscriptionsRequest{SubscriptionIDs: ids}, func(ua.Response) error { return nil })
}

package opcua

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"github.com/weftiot/weft/protocols"
	"github.com/weftiot/weft/wire"
)

// Subscribe creates one subscription with a monitored item per mode:
// subscribe point and emits a sample for every data change the server
// publishes. It blocks until ctx ends (it deletes the subscription and
// returns nil) or the connection or subscription is lost (it returns an error
// wrapping protocols.ErrNotConnected; the agent calls Connect, then Subscribe
// again, which recreates the subscription). With no subscribed points it
// returns nil at once.
//
// A lost connection is seen three ways: the client's secure channel fails
// (server restart, reset), a publish error, or, when nothing arrived for a
// while, a probe Read of the server's clock failing (a silent network cut).
func (d *Driver) Subscribe(ctx context.Context, emit protocols.Emit) error {
	if len(d.subbed) == 0 {
		return nil
	}
	c, nodes, nodeErr := d.current()
	if c == nil {
		return fmt.Errorf("%s: subscribe: %w", d.where(), protocols.ErrNotConnected)
	}
	pub := d.cfg.PublishingInterval
	if pub <= 0 {
		pub = defaultInterval
	}
	// Keep-alives about every 10 s; the server drops the subscription after
	// three missed ones.
	keepAlive := uint32(max(1, int((10*time.Second)/pub)))
	notif := make(chan *opcua.PublishNotificationData, 256)
	sctx, cancel := context.WithTimeout(ctx, d.timeout)
	d.requests.Add(1)
	sub, err := c.Subscribe(sctx, &opcua.SubscriptionParameters{Interval: pub, MaxKeepAliveCount: keepAlive, LifetimeCount: 3 * keepAlive}, notif)
	cancel()
	if err != nil {
		err = fmt.Errorf("%s: create subscription: %w", d.where(), err)
		if isConnErr(err) {
			return d.lost(err)
		}
		d.noteErr(err)
		return err
	}
	defer d.deleteSubscription(c, sub.SubscriptionID)

	now := time.Now()
	var items []*ua.MonitoredItemCreateRequest
	for _, i := range d.subbed {
		if nodes[i] == nil {
			emit(wire.Sample{Device: d.device, Point: d.points[i].Name, Quality: wire.Bad, Code: uint32(codeOf(nodeErr[i])), TS: now.UnixMilli()})
			continue
		}
		items = append(items, d.monitoredItem(i, nodes[i], pub))
	}
	for start := 0; start < len(items); start += monitoredPerCall {
		batch := items[start:min(start+monitoredPerCall, len(items))]
		if err := d.monitor(ctx, c, sub.SubscriptionID, batch, emit); err != nil {
			return err
		}
	}
	d.log.Info("subscribed", "items", len(items), "publishing_interval", pub)

	idleLimit := max(5*time.Second, 3*pub)
	watch := time.NewTicker(min(pub, 500*time.Millisecond))
	defer watch.Stop()
	lastHeard := time.Now()
	var buf []wire.Sample
	for {
		select {
		case <-ctx.Done():
			return nil
		case n := <-notif:
			lastHeard = time.Now()
			if n == nil {
				continue
			}
			if n.Error != nil {
				return d.lost(fmt.Errorf("%s: subscription: %w", d.where(), n.Error))
			}
			switch v := n.Value.(type) {
			case *ua.DataChangeNotification:
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
			case *ua.StatusChangeNotification:
				if Quality(v.Status) != wire.Good {
					return d.lost(fmt.Errorf("%s: the server ended the subscription: %w", d.where(), v.Status))
				}
			}
		case <-watch.C:
			if st := c.State(); st != opcua.Connected {
				return d.lost(fmt.Errorf("%s: connection %s", d.where(), st))
			}
			if time.Since(lastHeard) < idleLimit {
				continue
			}
			if err := d.probe(ctx, c); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return d.lost(fmt.Errorf("%s: no data for %s and the server does not answer: %w", d.where(), time.Since(lastHeard).Round(time.Second), err))
			}
			lastHeard = time.Now()
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

// deleteSubscription removes the subscription from the server, best effort:
// on a dead connection it fails fast and the server drops it itself.
func (d *Driver) deleteSubscription(c *opcua.Client, subID uint32) {
	if c.State() != opcua.Connected {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(d.timeout, 2*time.Second))
	defer cancel()
	c.Send(ctx, &ua.DeleteSubscriptionsRequest{SubscriptionIDs: []uint32{subID}}, func(ua.Response) error { return nil })
}

package opcua

import (
	"sync/atomic"
	"time"

	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uasc"
)

// notifyWait is how long notify waits for a subscription to take a
// notification before it skips that subscription for the rest of the round.
const notifyWait = 200 * time.Millisecond

// notify tells the monitored items of the changed nodes, in place of
// gopcua's Server.ChangeNotification. gopcua's sends into each
// subscription's 100-slot channel while holding the monitored-item lock; a
// subscription that has just ended (deleted by its client, killed after a
// failed send, timed out) never reads its channel again, so the send blocks
// for good, and so does the ended subscription's own clean-up, which needs
// that lock: the whole server stops publishing while its connections stay
// up. Here a subscription that does not take a notification within
// notifyWait is skipped for the rest of the round; its clean-up then runs,
// and a live but busy subscription only loses values of this round, which
// the next change brings again. It returns how many notifications it
// dropped.
func notify(srv *server.Server, changed []*ua.NodeID) (dropped int) {
	mis := srv.MonitoredItemService
	if mis == nil || len(changed) == 0 {
		return 0
	}
	mis.Mu.Lock()
	defer mis.Mu.Unlock()
	stuck := map[*server.Subscription]bool{}
	for _, n := range changed {
		items := mis.Nodes[n.String()]
		if len(items) == 0 {
			continue
		}
		ns, nsErr := srv.Namespace(int(n.Namespace()))
		for _, item := range items {
			if item == nil || item.Sub == nil || item.Req == nil || item.Req.RequestedParameters == nil || item.Req.ItemToMonitor == nil {
				continue
			}
			if stuck[item.Sub] {
				dropped++
				continue
			}
			val := &ua.MonitoredItemNotification{ClientHandle: item.Req.RequestedParameters.ClientHandle}
			if nsErr != nil {
				val.Value = badValue(ua.StatusBadNodeIDUnknown)
			} else {
				val.Value = ns.Attribute(n, item.Req.ItemToMonitor.AttributeID)
			}
			select {
			case item.Sub.NotifyChannel <- val:
				continue
			default:
			}
			t := time.NewTimer(notifyWait)
			select {
			case item.Sub.NotifyChannel <- val:
			case <-t.C:
				stuck[item.Sub] = true
				dropped++
			}
			t.Stop()
		}
	}
	return dropped
}

// publisher stands in front of gopcua's Publish service so that tests can
// make the server stop publishing while its connections stay up.
type publisher struct {
	srv     *server.Server
	stalled *atomic.Bool
}

// publish passes the request to gopcua's subscriptions, or, while stalled,
// swallows it: no data and no keep-alive come back, as from a server whose
// publishing engine hangs.
func (p *publisher) publish(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
	if p.stalled.Load() {
		return nil, nil
	}
	return p.srv.SubscriptionService.Publish(sc, r, reqID)
}

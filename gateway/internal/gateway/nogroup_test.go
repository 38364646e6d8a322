package gateway

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weftiot/weft/gateway/internal/registry"
	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
)

// TestTwoGatewaysWithoutGroupStoreOnce runs two gateways with the default
// config (no shared group) on one broker: each receives and writes every
// batch, and InfluxDB still holds each point once, because a point is its
// series and source timestamp. This is what docs/gateway.md promises for
// redundant gateways on a broker that loses shared subscriptions.
func TestTwoGatewaysWithoutGroupStoreOnce(t *testing.T) {
	mq := testservers.Mosquitto(t)
	db := testservers.Influx(t)
	// gatewayYAML sets the group the shared-group tests need; take it out.
	noGroup := func(id string) string {
		y := gatewayYAML(t, id, t.TempDir(), mq.URL, db, "")
		out := strings.Replace(y, ", shared_group: weft-gateway", "", 1)
		if out == y {
			t.Fatalf("gatewayYAML no longer sets the shared group this test takes out:\n%s", y)
		}
		return out
	}
	g1 := startGateway(t, noGroup("gw-1"))
	g2 := startGateway(t, noGroup("gw-2"))
	for _, g := range []*gw{g1, g2} {
		waitFor(t, 10*time.Second, "gateway connected", func() bool { return apiDo(t, "GET", g.HTTP+"/healthz", "", "", nil) == 200 })
	}
	ts := time.Now().Add(-time.Hour).UnixMilli()
	const batches, perBatch = 100, 50
	for _, id := range []string{"a1", "a2"} {
		ag := agentClient(t, mq.URL, id)
		for seq := uint64(1); seq <= batches; seq++ {
			publish(t, ag, topics.Data("s", id), wire.AppendBatch(nil, floatBatch("s", id, seq, perBatch, 25, ts+int64(seq)*perBatch)), false)
		}
	}
	// Both write everything: each stores all 2*batches messages.
	for _, g := range []*gw{g1, g2} {
		waitFor(t, 60*time.Second, "every message stored by "+g.HTTP, func() bool {
			return metric(t, g, `weft_gateway_messages_total{outcome="stored"}`) == 2*batches
		})
	}
	if n := countValues(t, db, "value", ""); n != 2*batches*perBatch {
		t.Errorf("InfluxDB holds %d points after two gateways each wrote all %d; want each point once", n, 2*batches*perBatch)
	}
	for _, id := range []string{"a1", "a2"} {
		if n := countValues(t, db, "value", fmt.Sprintf("agent = '%s'", id)); n != batches*perBatch {
			t.Errorf("agent %s: %d points, want %d", id, n, batches*perBatch)
		}
	}
	// Each instance saw every batch itself: nothing missing, nothing
	// learned from the other (they do not exchange batch numbers).
	for _, g := range []*gw{g1, g2} {
		for _, id := range []string{"a1", "a2"} {
			var a struct{ Agent registry.Agent }
			apiDo(t, "GET", g.HTTP+"/api/v1/agents/s/"+id, readToken, "", &a)
			q := a.Agent.Seq
			if q.Last != batches || q.Missing != 0 || q.Gaps != 0 || q.Duplicates != 0 || q.Others != 0 || a.Agent.Received.Batches != batches {
				t.Errorf("%s on %s: seq %+v, received %d; want last %d, all received here, no gaps, duplicates or others' batches",
					id, g.HTTP, q, a.Agent.Received.Batches, batches)
			}
		}
	}
}

package gateway

import (
	"fmt"
	"strings"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"testing"
	"time"

	"github.com/weftiot/weft/gateway/internal/broker"
	"github.com/weftiot/weft/gateway/internal/registry"
	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
)

// TestInfluxOutageLosesNothing stops influxd while an agent keeps
// publishing, then starts it again: every point lands, none twice.
func TestInfluxOutageLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("stops and restarts influxd")
	}
	mq := testservers.Mosquitto(t, testservers.WithConfig("max_queued_messages 100000"))
	db := testservers.Influx(t)
	g := startGateway(t, gatewayYAML(t, "gw-out", t.TempDir(), mq.URL, db, ""))
	ag := agentClient(t, mq.URL, "a1")
	ts := time.Now().Add(-time.Hour).UnixMilli()
	const perBatch = 100
	seq := uint64(0)
	send := func(n int) {
		for i := 0; i < n; i++ {
			seq++
			publish(t, ag, topics.Data("s", "a1"), wire.AppendBatch(nil, floatBatch("s", "a1", seq, perBatch, 10, ts+int64(seq)*perBatch)), false)
		}
	}
	send(20)
	waitFor(t, 20*time.Second, "the first 20 batches", func() bool { return countValues(t, db, "value", "") == 20*perBatch })

	db.Stop()
	send(200) // more than Mosquitto's in-flight window of 20
	waitFor(t, 20*time.Second, "write errors while influxd is down", func() bool {
		return metric(t, g, `weft_gateway_errors_total{kind="write"}`) >= 2
	})
	if p := metric(t, g, "weft_gateway_pending_messages"); p == 0 {
		t.Errorf("no message pending while influxd is down")
	}
	time.Sleep(2 * time.Second) // an outage of a few seconds with retries
	db.Start()
	waitFor(t, 60*time.Second, "all 220 batches after influxd returned", func() bool {
		return countValues(t, db, "value", "") == 220*perBatch
	})
	send(5)
	waitFor(t, 20*time.Second, "batches after the outage", func() bool { return countValues(t, db, "value", "") == 225*perBatch })
	var a struct{ Agent registry.Agent }
	apiDo(t, "GET", g.HTTP+"/api/v1/agents/s/a1", readToken, "", &a)
	if a.Agent.Seq.Last != 225 || a.Agent.Seq.Gaps != 0 || a.Agent.Seq.Missing != 0 {
		t.Errorf("seq after the outage: %+v; want last 225, no gaps", a.Agent.Seq)
	}
}

// TestTwoGatewaysShareTheLoad runs two gateways in one shared group: every
// point is written, and both did part of the work.
func TestTwoGatewaysShareTheLoad(t *testing.T) {
	mq := testservers.Mosquitto(t)
	db := testservers.Influx(t)
	g1 := startGateway(t, gatewayYAML(t, "gw-1", t.TempDir(), mq.URL, db, ""))
	g2 := startGateway(t, gatewayYAML(t, "gw-2", t.TempDir(), mq.URL, db, ""))
	for _, g := range []*gw{g1, g2} {
		waitFor(t, 10*time.Second, "gateway connected", func() bool { return apiDo(t, "GET", g.HTTP+"/healthz", "", "", nil) == 200 })
	}
	ts := time.Now().Add(-time.Hour).UnixMilli()
	const batches, perBatch = 200, 50
	for _, id := range []string{"a1", "a2"} {
		ag := agentClient(t, mq.URL, id)
		for seq := uint64(1); seq <= batches; seq++ {
			publish(t, ag, topics.Data("s", id), wire.AppendBatch(nil, floatBatch("s", id, seq, perBatch, 25, ts+int64(seq)*perBatch)), false)
		}
	}
	waitFor(t, 60*time.Second, "every point of both agents", func() bool {
		return countValues(t, db, "value", "") == 2*batches*perBatch
	})
	for _, id := range []string{"a1", "a2"} {
		if n := countValues(t, db, "value", fmt.Sprintf("agent = '%s'", id)); n != batches*perBatch {
			t.Errorf("agent %s: %d points, want %d", id, n, batches*perBatch)
		}
	}
	// The counters move just after the write InfluxDB already shows.
	var s1, s2 float64
	waitFor(t, 10*time.Second, "stored counters", func() bool {
		s1 = metric(t, g1, `weft_gateway_messages_total{outcome="stored"}`)
		s2 = metric(t, g2, `weft_gateway_messages_total{outcome="stored"}`)
		return s1+s2 == 2*batches
	})
	if s1+s2 != 2*batches || s1 == 0 || s2 == 0 {
		t.Errorf("messages stored by gw-1 %v and gw-2 %v; want both > 0 and %d in all", s1, s2, 2*batches)
	}
	// Each instance stored part of every agent's batches; the batch numbers
	// they publish on the seen topic fill each other's holes: nothing
	// missing, no duplicates, on both, and each learned what the other
	// stored.
	for _, g := range []*gw{g1, g2} {
		for _, id := range []string{"a1", "a2"} {
			var a struct{ Agent registry.Agent }
			waitFor(t, 15*time.Second, "no batch of "+id+" missing on "+g.HTTP, func() bool {
				apiDo(t, "GET", g.HTTP+"/api/v1/agents/s/"+id, readToken, "", &a)
				return a.Agent.Seq.Last == batches && a.Agent.Seq.Missing == 0
			})
			q := a.Agent.Seq
			if q.Gaps != 0 || q.Duplicates != 0 || q.Others == 0 || q.Others+a.Agent.Received.Batches != batches {
				t.Errorf("%s on %s: seq %+v, received %d; want no gaps or duplicates, and the others' count plus its own = %d",
					id, g.HTTP, q, a.Agent.Received.Batches, batches)
			}
		}
	}
}

// TestTwoGatewaysCountTheSameGap: an agent publishes batches 1..100 but
// 50..59 to two gateways sharing the subscription; once the grace period
// (alerts.offline_after) is over, both count exactly those 10 as a gap and
// raise sequence_gap, though each received only part of the batches.
func TestTwoGatewaysCountTheSameGap(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a 3 s grace period")
	}
	mq := testservers.Mosquitto(t)
	db := testservers.Influx(t)
	shortGrace := func(y string) string {
		return strings.Replace(y, "offline_after: 2m", "offline_after: 3s", 1)
	}
	g1 := startGateway(t, shortGrace(gatewayYAML(t, "gw-1", t.TempDir(), mq.URL, db, "")))
	g2 := startGateway(t, shortGrace(gatewayYAML(t, "gw-2", t.TempDir(), mq.URL, db, "")))
	ts := time.Now().Add(-time.Hour).UnixMilli()
	ag := agentClient(t, mq.URL, "a1")
	for seq := uint64(1); seq <= 100; seq++ {
		if seq >= 50 && seq <= 59 {
			continue
		}
		publish(t, ag, topics.Data("s", "a1"), wire.AppendBatch(nil, floatBatch("s", "a1", seq, 10, 10, ts+int64(seq)*10)), false)
	}
	waitFor(t, 30*time.Second, "90 batches stored", func() bool { return countValues(t, db, "value", "") == 90*10 })
	var got [2]registry.Seq
	var recv [2]uint64
	for i, g := range []*gw{g1, g2} {
		var a struct{ Agent registry.Agent }
		waitFor(t, 30*time.Second, "the gap counted on "+g.HTTP, func() bool {
			apiDo(t, "GET", g.HTTP+"/api/v1/agents/s/a1", readToken, "", &a)
			return a.Agent.Seq.Gaps > 0 && a.Agent.Seq.Missing == 0
		})
		got[i], recv[i] = a.Agent.Seq, a.Agent.Received.Batches
		var al struct{ Alerts []registry.Alert }
		apiDo(t, "GET", g.HTTP+"/api/v1/alerts", readToken, "", &al)
		found := false
		for _, x := range al.Alerts {
			found = found || (x.Kind == registry.KindSeqGap && x.Agent == "a1")
		}
		if !found {
			t.Errorf("%s: no sequence_gap alert for a1 in %+v", g.HTTP, al.Alerts)
		}
	}
	for i, q := range got {
		if q.Gaps != 10 || q.Last != 100 || q.Duplicates != 0 {
			t.Errorf("gateway %d: seq %+v; want exactly 10 gaps, last 100, no duplicates", i+1, q)
		}
	}
	if recv[0] == 0 || recv[1] == 0 || recv[0]+recv[1] != 90 {
		t.Errorf("batches received by gw-1 %d and gw-2 %d; want both > 0 and 90 in all", recv[0], recv[1])
	}
}

// TestEmbeddedBrokerACL runs the embedded broker and the window store: an
// agent's own data lands; publishing under another agent's topic is refused
// by the broker; a payload claiming another agent is refused by the gateway.
func TestEmbeddedBrokerACL(t *testing.T) {
	g := startGateway(t, gatewayYAML(t, "gw-emb", t.TempDir(), "embedded", nil, ""))
	waitFor(t, 10*time.Second, "gateway connected", func() bool { return apiDo(t, "GET", g.HTTP+"/healthz", "", "", nil) == 200 })
	a1 := agentClient(t, g.Broker, "a1")
	ts := time.Now().Add(-time.Minute).UnixMilli()
	publish(t, a1, topics.Status("s", "a1"), statusMsg("s", "a1", wire.Online), true)
	publish(t, a1, topics.Data("s", "a1"), wire.AppendBatch(nil, floatBatch("s", "a1", 1, 10, 10, ts)), false)
	// Client a9, under a2's topic, with a2's payload: the broker's ACL
	// refuses it (and mochi drops a9's connection, so the token is not
	// waited for).
	a9 := newClient(agentOpts(g.Broker, "a9"))
	if tok := a9.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("a9 connect: %v", tok.Error())
	}
	a9.Publish(topics.Data("s", "a2"), 1, false, wire.AppendBatch(nil, floatBatch("s", "a2", 1, 10, 10, ts)))
	defer a9.Disconnect(0)
	// On its own topic, claiming a2: the gateway's check refuses it.
	publish(t, a1, topics.Data("s", "a1"), wire.AppendBatch(nil, floatBatch("s", "a2", 2, 10, 10, ts)), false)
	publish(t, a1, topics.Data("s", "a1"), wire.AppendBatch(nil, floatBatch("s", "a1", 2, 10, 10, ts+100)), false)

	waitFor(t, 10*time.Second, "a1's two batches stored and the mismatch counted", func() bool {
		return metric(t, g, `weft_gateway_messages_total{outcome="stored"}`) == 2 &&
			metric(t, g, `weft_gateway_messages_total{outcome="mismatch"}`) == 1
	})
	if st := apiDo(t, "GET", g.HTTP+"/api/v1/agents/s/a2", readToken, "", nil); st != 404 {
		t.Errorf("a2 is known to the registry (HTTP %d): its data got through", st)
	}
	var ser struct {
		Samples []struct {
			TS    int64
			Value float64
		}
	}
	apiDo(t, "GET", g.HTTP+"/api/v1/agents/s/a1/series?device=dev-1&point=p3", readToken, "", &ser)
	if len(ser.Samples) != 2 || ser.Samples[0].TS != ts+3 || ser.Samples[0].Value != 1003 || ser.Samples[1].Value != 2003 {
		t.Errorf("window series = %+v; want 1003 at %d then 2003", ser.Samples, ts+3)
	}
	// A subscription to another agent's commands is refused.
	tok := a1.SubscribeMultiple(map[string]byte{topics.CmdWildcard("s", "a2"): 1, topics.CmdWildcard("s", "a1"): 1}, nil)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	res := tok.(*mqtt.SubscribeToken).Result()
	if res[topics.CmdWildcard("s", "a2")] != 0x80 || res[topics.CmdWildcard("s", "a1")] != 1 {
		t.Errorf("subscription results %v: want another agent's commands refused (0x80) and its own granted", res)
	}
	// The gateway's user name with a wrong password is refused.
	o := agentOpts(g.Broker, "intruder").SetUsername(broker.GatewayUser).SetPassword("guess")
	if c := newClient(o); c.Connect().WaitTimeout(5*time.Second) && c.IsConnected() {
		t.Error("connected as the gateway with a wrong password")
	}
}

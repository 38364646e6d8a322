package wire_test

import (
	"math/rand/v2"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
)

// TestBatchThroughMosquitto is issue 2's done-criterion: a batch encoded by
// AppendBatch goes through a real Mosquitto at QoS 1 and is read back,
// checked against its topic, decoded and equal.
func TestBatchThroughMosquitto(t *testing.T) {
	broker := testservers.Mosquitto(t)
	topics := wire.Topics{Prefix: wire.DefaultPrefix}

	client := func(id string) mqtt.Client {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL).SetClientID(id).
			SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("%s: connect %s: %v", id, broker.URL, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(100) })
		return c
	}

	type msg struct {
		topic   string
		payload []byte
	}
	got := make(chan msg, 10)
	gw := client("gateway")
	if tok := gw.Subscribe(topics.DataWildcard(), 1, func(_ mqtt.Client, m mqtt.Message) {
		got <- msg{m.Topic(), m.Payload()}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", topics.DataWildcard(), tok.Error())
	}

	sent := &wire.Batch{Agent: "dye-01-gw", Site: "weihai-textile-park", Seq: 1042}
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 500 {
		s := wire.Sample{Device: "dye-01", Point: "bath_temp", TS: 1732540800123 + int64(i)}
		switch i % 4 {
		case 0:
			s.Value = wire.FloatValue(85 + r.Float64())
		case 1:
			s.Value = wire.IntValue(r.Int64N(1 << 40))
		case 2:
			s.Value, s.Quality, s.Code = wire.BoolValue(true), wire.Uncertain, 0x40920000
		case 3:
			s.Value, s.Point = wire.StringValue("染色机 RUN"), "状态"
		}
		sent.Samples = append(sent.Samples, s)
	}
	payload := wire.AppendBatch(nil, sent)
	agent := client("agent")
	if tok := agent.Publish(topics.Data(sent.Site, sent.Agent), 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish QoS 1: %v", tok.Error())
	}

	var m msg
	select {
	case m = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the batch did not come back from Mosquitto")
	}
	site, agentID, kind, _, err := wire.ParseTopic(topics.Prefix, m.topic)
	if err != nil || kind != wire.KindData {
		t.Fatalf("ParseTopic(%q) = kind %q, %v", m.topic, kind, err)
	}
	var b wire.Batch
	if err := wire.DecodeBatch(m.payload, &b); err != nil {
		t.Fatalf("DecodeBatch: %v", err)
	}
	if err := wire.CheckTopic(&b, site, agentID); err != nil {
		t.Fatal(err)
	}
	if b.Agent != sent.Agent || b.Site != sent.Site || b.Seq != sent.Seq || len(b.Samples) != len(sent.Samples) {
		t.Fatalf("got batch %s/%s seq %d with %d samples", b.Site, b.Agent, b.Seq, len(b.Samples))
	}
	for i, s := range sent.Samples {
		if g := b.Samples[i]; g.Device != s.Device || g.Point != s.Point || !g.Value.Equal(s.Value) ||
			g.Quality != s.Quality || g.Code != s.Code || g.TS != s.TS {
			t.Fatalf("sample %d: got %+v, want %+v", i, g, s)
		}
	}
}

package sparkplug

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/weftiot/weft/gateway/internal/influx"
	"github.com/weftiot/weft/gateway/internal/registry"
	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
	spb "github.com/weftiot/weft/wire/sparkplug"
)

// thirdParty is a hand-built Sparkplug B edge node, as another vendor's
// would be: its payloads are written byte by byte with protowire from the
// field numbers of the specification, not with Weft's generated code.
type thirdParty struct {
	t      *testing.T
	c      mqtt.Client
	group  string
	node   string
	seq    uint64
	bdSeq  uint64
	ncmd   chan []byte
	states chan []byte
}

type rawMetric struct {
	name  string
	alias uint64
	dt    uint64 // 0: left out
	ts    uint64
	// one of:
	double *float64
	long   *uint64
	str    *string
	boolv  *bool
	hist   bool
	unit   string
}

func f64(f float64) *float64 { return &f }
func u64(u uint64) *uint64   { return &u }
func str(s string) *string   { return &s }

func (m rawMetric) bytes() []byte {
	var b []byte
	if m.name != "" {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, m.name)
	}
	if m.alias != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, m.alias)
	}
	if m.ts != 0 {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, m.ts)
	}
	if m.dt != 0 {
		b = protowire.AppendTag(b, 4, protowire.VarintType)
		b = protowire.AppendVarint(b, m.dt)
	}
	if m.hist {
		b = protowire.AppendTag(b, 5, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	if m.unit != "" {
		var pv []byte
		pv = protowire.AppendTag(pv, 1, protowire.VarintType)
		pv = protowire.AppendVarint(pv, 12)
		pv = protowire.AppendTag(pv, 8, protowire.BytesType)
		pv = protowire.AppendString(pv, m.unit)
		var ps []byte
		ps = protowire.AppendTag(ps, 1, protowire.BytesType)
		ps = protowire.AppendString(ps, "engUnit")
		ps = protowire.AppendTag(ps, 2, protowire.BytesType)
		ps = protowire.AppendBytes(ps, pv)
		b = protowire.AppendTag(b, 9, protowire.BytesType)
		b = protowire.AppendBytes(b, ps)
	}
	switch {
	case m.long != nil:
		b = protowire.AppendTag(b, 11, protowire.VarintType)
		b = protowire.AppendVarint(b, *m.long)
	case m.double != nil:
		b = protowire.AppendTag(b, 13, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(*m.double))
	case m.boolv != nil:
		b = protowire.AppendTag(b, 14, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeBool(*m.boolv))
	case m.str != nil:
		b = protowire.AppendTag(b, 15, protowire.BytesType)
		b = protowire.AppendString(b, *m.str)
	}
	return b
}

// payload encodes a payload; seq < 0 leaves it out (NDEATH).
func rawPayload(ts uint64, seq int, ms ...rawMetric) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, ts)
	for _, m := range ms {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, m.bytes())
	}
	if seq >= 0 {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(seq))
	}
	return b
}

const (
	dtInt64   = 4
	dtDouble  = 10
	dtBoolean = 11
	dtString  = 12
)

func newThirdParty(t *testing.T, broker, group, node string, bdSeq uint64) *thirdParty {
	tp := &thirdParty{t: t, group: group, node: node, bdSeq: bdSeq, ncmd: make(chan []byte, 16), states: make(chan []byte, 16)}
	will := rawPayload(uint64(time.Now().UnixMilli()), -1, rawMetric{name: "bdSeq", dt: dtInt64, long: u64(bdSeq)})
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID("vendor-"+node).SetCleanSession(true).
		SetAutoReconnect(false).SetBinaryWill(spb.NodeTopic(group, spb.NDEATH, node), will, 1, false)
	tp.c = mqtt.NewClient(o)
	if tok := tp.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("third-party node connect: %v", tok.Error())
	}
	t.Cleanup(func() { tp.c.Disconnect(0) })
	sub := func(topic string, ch chan []byte) {
		tok := tp.c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) { ch <- m.Payload() })
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", topic, tok.Error())
		}
	}
	sub(spb.NodeTopic(group, spb.NCMD, node), tp.ncmd)
	sub(spb.StateTopic("weft-host"), tp.states)
	return tp
}

func (tp *thirdParty) publish(topic string, qos byte, b []byte) {
	tp.t.Helper()
	if tok := tp.c.Publish(topic, qos, false, b); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tp.t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func (tp *thirdParty) birth(ts uint64) {
	tp.seq = 0
	tp.publish(spb.NodeTopic(tp.group, spb.NBIRTH, tp.node), 0, rawPayload(ts, 0,
		rawMetric{name: "bdSeq", dt: dtInt64, long: u64(tp.bdSeq)},
		rawMetric{name: "Node Control/Rebirth", dt: dtBoolean, boolv: new(bool)},
		rawMetric{name: "Firmware", alias: 1, dt: dtString, str: str("v2.1")}))
	tp.publish(spb.DeviceTopic(tp.group, spb.DBIRTH, tp.node, "press 1"), 0, rawPayload(ts, tp.next(),
		rawMetric{name: "Oven/Temp", alias: 20, dt: dtDouble, double: f64(180.5), unit: "°C"},
		rawMetric{name: "Count", alias: 21, dt: dtInt64, long: u64(1000)}))
}

func (tp *thirdParty) next() int {
	tp.seq = (tp.seq + 1) % 256
	return int(tp.seq)
}

func (tp *thirdParty) ddata(ts uint64, seq int, ms ...rawMetric) {
	tp.publish(spb.DeviceTopic(tp.group, spb.DDATA, tp.node, "press 1"), 0, rawPayload(ts, seq, ms...))
}

// waitRebirth waits for an NCMD asking for a rebirth.
func (tp *thirdParty) waitRebirth(within time.Duration) {
	tp.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case b := <-tp.ncmd:
			p, err := spb.Decode(b)
			if err != nil {
				tp.t.Fatalf("NCMD: %v", err)
			}
			for _, m := range p.GetMetrics() {
				if m.GetName() == spb.MetricRebirth && m.GetBooleanValue() {
					return
				}
			}
		case <-deadline:
			tp.t.Fatalf("no NCMD %s within %v", spb.MetricRebirth, within)
		}
	}
}

type host struct {
	h    *Host
	reg  *registry.Registry
	stop func()
}

func startHost(t *testing.T, broker string, db *testservers.InfluxDB, extra func(*Options)) *host {
	t.Helper()
	bdb, err := bolt.Open(t.TempDir()+"/gw.db", 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bdb.Close() })
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	reg, err := registry.Open(bdb, registry.Rules{OfflineAfter: time.Minute, BacklogAgeAfter: time.Minute}, log)
	if err != nil {
		t.Fatal(err)
	}
	w := influx.New(influx.Options{URL: db.URL, Bucket: db.Bucket, Token: db.Token}, log)
	t.Cleanup(w.Close)
	o := Options{Broker: broker, ClientID: "weft-host-test", HostID: "weft-host", Sink: sinkOf{w}, Registry: reg,
		Log: log, FlushInterval: 100 * time.Millisecond, RebirthInterval: 200 * time.Millisecond, BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second}
	if extra != nil {
		extra(&o)
	}
	h := New(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	waitFor(t, 10*time.Second, "host online", h.Connected)
	return &host{h: h, reg: reg, stop: stop}
}

type sinkOf struct{ w *influx.Writer }

func (s sinkOf) Write(ctx context.Context, b []*wire.Batch) (int, int, int, error) {
	r, err := s.w.Write(ctx, b)
	return r.Points, r.Rejected, r.Skipped, err
}

func waitFor(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// points returns "device/point@ts=value" strings of the agent's series.
func points(t *testing.T, db *testservers.InfluxDB, agent string) map[string]string {
	got := map[string]string{}
	ser, err := db.QueryErr(fmt.Sprintf(`SELECT value, value_int, value_str, value_bool FROM weft WHERE agent = '%s' GROUP BY site, device, point`, agent))
	if err != nil {
		return got
	}
	for _, s := range ser {
		for _, row := range s.Values {
			for i := 1; i < len(row); i++ {
				if row[i] != nil {
					got[fmt.Sprintf("%s|%s|%s@%v", s.Tags["site"], s.Tags["device"], s.Tags["point"], row[0])] = fmt.Sprint(row[i])
				}
			}
		}
	}
	return got
}

// TestThirdPartyNode: a hand-built edge node's births and data reach
// InfluxDB with the native schema; a seq gap and an unknown alias make the
// host ask for a rebirth; its NDEATH marks it offline in the registry; the
// host's STATE is online while it runs and offline (same timestamp) after.
func TestThirdPartyNode(t *testing.T) {
	mq := testservers.Mosquitto(t)
	db := testservers.Influx(t)
	h := startHost(t, mq.URL, db, nil)
	tp := newThirdParty(t, mq.URL, "Plant A", "vendor-plc", 3)

	var online spb.State
	select {
	case b := <-tp.states:
		var err error
		if online, err = spb.DecodeState(b); err != nil || !online.Online {
			t.Fatalf("retained STATE %s: %+v %v", b, online, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no retained STATE online for the host")
	}

	base := uint64(time.Now().Add(-time.Minute).UnixMilli())
	tp.birth(base)
	tp.ddata(base+1000, tp.next(), rawMetric{alias: 20, double: f64(181.25)}, rawMetric{alias: 21, long: u64(1001)})
	tp.ddata(base+2000, tp.next(), rawMetric{alias: 20, double: f64(182), hist: true, ts: base + 1500})

	want := map[string]string{
		fmt.Sprintf("Plant A|_node|Firmware@%d", base):         "v2.1",
		fmt.Sprintf("Plant A|press 1|Oven/Temp@%d", base):      "180.5",
		fmt.Sprintf("Plant A|press 1|Count@%d", base):          "1000",
		fmt.Sprintf("Plant A|press 1|Oven/Temp@%d", base+1000): "181.25",
		fmt.Sprintf("Plant A|press 1|Count@%d", base+1000):     "1001",
		fmt.Sprintf("Plant A|press 1|Oven/Temp@%d", base+1500): "182",
	}
	waitFor(t, 15*time.Second, "the node's points in InfluxDB", func() bool { return len(points(t, db, "vendor-plc")) >= len(want) })
	got := points(t, db, "vendor-plc")
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d points, want %d: %v", len(got), len(want), got)
	}
	if _, ok := bdSeqOf(h); !ok {
		t.Fatal("host does not know the node")
	}

	// A skipped sequence number: rebirth.
	tp.next()
	tp.ddata(base+3000, tp.next(), rawMetric{alias: 20, double: f64(183)})
	tp.waitRebirth(5 * time.Second)
	tp.birth(base + 4000)

	// An alias the birth did not declare: rebirth.
	time.Sleep(250 * time.Millisecond) // past the rebirth rate limit
	tp.ddata(base+5000, tp.next(), rawMetric{alias: 77, double: f64(1)})
	tp.waitRebirth(5 * time.Second)

	// Registry: the node is an agent, online, with its device.
	a, _, ok := h.reg.Get("Plant A", "vendor-plc")
	if !ok || a.State != wire.Online || a.LastSeen == 0 || len(a.DeviceNames) != 1 || a.DeviceNames[0] != "press 1" {
		t.Fatalf("registry: %+v %v", a, ok)
	}
	// The DBIRTH's engUnit property is the latest value's unit. (The
	// gateway records the host's batches in the registry; here the test
	// records one.)
	h.reg.Batch(&wire.Batch{Site: "Plant A", Agent: "vendor-plc", Samples: []wire.Sample{
		{Device: "press 1", Point: "Oven/Temp", Value: wire.FloatValue(183), TS: 1},
		{Device: "press 1", Point: "Count", Value: wire.IntValue(1002), TS: 1},
		{Device: NodeDevice, Point: "Firmware", Value: wire.StringValue("v2.1"), TS: 1}}})
	_, latest, _ := h.reg.Get("Plant A", "vendor-plc")
	units := map[string]string{}
	for _, l := range latest {
		units[l.Device+"|"+l.Point] = l.Unit + "|" + l.Type
	}
	for k, want := range map[string]string{"press 1|Oven/Temp": "°C|Double", "press 1|Count": "|Int64", "_node|Firmware": "|String"} {
		if units[k] != want {
			t.Errorf("registry latest %s: unit|type %q, want %q (all %v)", k, units[k], want, units)
		}
	}
	// The node dies without a word: the broker publishes its will (NDEATH).
	tp.c.Disconnect(0) // a clean disconnect sends no will; publish what the will would
	tp2 := newThirdParty(t, mq.URL, "Plant A", "vendor-plc-watch", 0)
	tp2.publish(spb.NodeTopic("Plant A", spb.NDEATH, "vendor-plc"), 1, rawPayload(base, -1, rawMetric{name: "bdSeq", dt: dtInt64, long: u64(3)}))
	waitFor(t, 5*time.Second, "registry offline", func() bool {
		a, _, _ := h.reg.Get("Plant A", "vendor-plc")
		return a.State == wire.Offline
	})

	// The host stops: STATE offline with its birth's timestamp, retained.
	h.stop()
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(mq.URL).SetClientID("state-reader"))
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer sub.Disconnect(0)
	states := make(chan []byte, 4)
	sub.Subscribe(spb.StateTopic("weft-host"), 1, func(_ mqtt.Client, m mqtt.Message) { states <- m.Payload() })
	select {
	case b := <-states:
		var st spb.State
		if err := json.Unmarshal(b, &st); err != nil || st.Online || st.Timestamp != online.Timestamp {
			t.Fatalf("STATE after stop: %s (birth timestamp %d)", b, online.Timestamp)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no retained STATE after the host stopped")
	}
}

func bdSeqOf(h *host) (uint64, bool) {
	for _, n := range h.h.Nodes() {
		if n.EdgeNode == "vendor-plc" {
			return n.BdSeq, true
		}
	}
	return 0, false
}

// TestHostAnswersStaleOffline: a STATE offline for this host while it is
// online (an old will, another process) is answered with STATE online, with
// the current connection's timestamp.
func TestHostAnswersStaleOffline(t *testing.T) {
	mq := testservers.Mosquitto(t)
	db := testservers.Influx(t)
	h := startHost(t, mq.URL, db, nil)
	// A stale offline STATE (someone else's, or an old will) is answered.
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(mq.URL).SetClientID("stale"))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(0)
	got := make(chan spb.State, 8)
	c.Subscribe(spb.StateTopic("weft-host"), 1, func(_ mqtt.Client, m mqtt.Message) {
		if s, err := spb.DecodeState(m.Payload()); err == nil {
			got <- s
		}
	})
	first := <-got
	c.Publish(spb.StateTopic("weft-host"), 1, true, spb.EncodeState(spb.State{Online: false, Timestamp: 1})).Wait()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case s := <-got:
			if s.Online && s.Timestamp == first.Timestamp {
				h.stop()
				return
			}
		case <-deadline:
			t.Fatal("the host did not publish STATE online again after a stale offline")
		}
	}
}

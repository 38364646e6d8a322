package sparkplug

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/protobuf/proto"

	"github.com/weftiot/weft/agent/internal/spool"
	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
	spb "github.com/weftiot/weft/wire/sparkplug"
	pb "github.com/weftiot/weft/wire/sparkplug/sparkplugpb"
)

const (
	group = "weihai"
	node  = "dye-gw"
)

// msg is one Sparkplug message the recorder saw.
type msg struct {
	topic spb.Topic
	p     *spb.Payload
}

// recorder subscribes to everything under spBv1.0 and keeps it in order.
type recorder struct {
	t    *testing.T
	c    mqtt.Client
	mu   sync.Mutex
	msgs []msg
}

func record(t *testing.T, broker string) *recorder {
	r := &recorder{t: t}
	r.c = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("recorder").SetOrderMatters(true))
	if tok := r.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	t.Cleanup(func() { r.c.Disconnect(0) })
	tok := r.c.Subscribe(spb.Namespace+"/"+group+"/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		tp, err := spb.ParseTopic(m.Topic())
		if err != nil {
			t.Errorf("edge node published on %q: %v", m.Topic(), err)
			return
		}
		p, err := spb.Decode(m.Payload())
		if err != nil {
			t.Errorf("undecodable payload on %q: %v", m.Topic(), err)
			return
		}
		// Sparkplug B: NDEATH at QoS 1, births and data at QoS 0 (the
		// recorder subscribes at QoS 1, so it sees the publisher's QoS).
		switch want := byte(0); tp.Type {
		case spb.NDEATH:
			want = 1
			fallthrough
		case spb.NBIRTH, spb.DBIRTH, spb.DDATA, spb.DDEATH, spb.NDATA:
			if m.Qos() != want {
				t.Errorf("%s published at QoS %d, want %d", m.Topic(), m.Qos(), want)
			}
		}
		r.mu.Lock()
		r.msgs = append(r.msgs, msg{tp, p})
		r.mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	return r
}

// wait returns the messages once there are at least n of the given types
// (all types when none given) since index from.
func (r *recorder) wait(from, n int, types ...spb.MessageType) []msg {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		var got []msg
		for _, m := range r.msgs[min(from, len(r.msgs)):] {
			if len(types) == 0 || contains(types, m.topic.Type) {
				got = append(got, m)
			}
		}
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %d %v messages from #%d; have %s", n, types, from, r.dump())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

func (r *recorder) dump() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := ""
	for i, m := range r.msgs {
		s += fmt.Sprintf("\n  #%d %s seq=%v metrics=%d", i, m.topic, m.p.Seq, len(m.p.Metrics))
	}
	return s
}

func contains(ts []spb.MessageType, t spb.MessageType) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

// devices is a settable device list.
type devices struct {
	mu   sync.Mutex
	list []Device
}

func (d *devices) get() []Device {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Device(nil), d.list...)
}

func (d *devices) setDown(id string, down bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range d.list {
		if d.list[i].ID == id {
			d.list[i].Down = down
		}
	}
}

func openSpool(t testing.TB, dir string) *spool.Spool {
	sp, err := spool.Open(filepath.Join(dir, "spool.db"), spool.Options{MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

func appendBatch(t testing.TB, sp *spool.Spool, samples ...wire.Sample) {
	t.Helper()
	_, err := sp.Append(context.Background(), len(samples), func(seq uint64) ([]byte, error) {
		return wire.AppendBatch(nil, &wire.Batch{Agent: node, Site: group, Seq: seq, Samples: samples}), nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

type running struct {
	e    *EdgeNode
	stop func()
}

func startNode(t testing.TB, broker string, sp *spool.Spool, dir, host string, devs *devices, opts ...func(*Options)) *running {
	t.Helper()
	o := Options{Broker: broker, ClientID: node, Group: group, EdgeNode: node, PrimaryHost: host, DataDir: dir,
		Devices: devs.get, BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond, FlushTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	for _, f := range opts {
		f(&o)
	}
	e := New(sp, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return &running{e, stop}
}

func metricNamed(p *spb.Payload, name string) *spb.Metric {
	for _, m := range p.GetMetrics() {
		if m.GetName() == name {
			return m
		}
	}
	return nil
}

func bdSeqOf(t *testing.T, p *spb.Payload) uint64 {
	t.Helper()
	m := metricNamed(p, spb.MetricBdSeq)
	if m == nil || m.GetDatatype() != uint32(pb.DataType_Int64) {
		t.Fatalf("no Int64 bdSeq metric in %v", p)
	}
	v, _ := spb.Int(m)
	return v
}

// checkSeq checks that the messages after an NBIRTH number 1, 2, ... 255,
// 0, 1 ... (every message but NDEATH).
func checkSeq(t *testing.T, ms []msg) {
	t.Helper()
	var want uint64
	for i, m := range ms {
		switch m.topic.Type {
		case spb.NCMD, spb.DCMD:
			continue // the test's own commands
		case spb.NDEATH:
			if m.p.Seq != nil {
				t.Errorf("#%d NDEATH carries seq %d", i, m.p.GetSeq())
			}
			continue
		case spb.NBIRTH:
			want = 0
		}
		if m.p.Seq == nil || m.p.GetSeq() != want {
			t.Fatalf("#%d %s: seq %v, want %d", i, m.topic, m.p.Seq, want)
		}
		want = (want + 1) % 256
	}
}

// TestEdgeNodeSession: births, aliases, datatypes, units, historical flag,
// device death and rebirth, NCMD rebirth, seq numbering, NDEATH and bdSeq
// across connections, against a real Mosquitto.
func TestEdgeNodeSession(t *testing.T) {
	mq := testservers.Mosquitto(t)
	rec := record(t, mq.URL)
	dir := t.TempDir()
	sp := openSpool(t, dir)
	devs := &devices{list: []Device{
		{ID: "dyer1", Points: []Point{{Name: "temp", Unit: "°C"}, {Name: "count"}}},
		{ID: "dyer2", Down: true, Points: []Point{{Name: "level", Unit: "%"}}},
	}}
	t0 := time.Now().Add(-time.Minute).UnixMilli()
	appendBatch(t, sp, wire.Sample{Device: "dyer1", Point: "temp", Value: wire.FloatValue(80.5), TS: t0},
		wire.Sample{Device: "dyer1", Point: "count", Value: wire.IntValue(7), TS: t0})

	n := startNode(t, mq.URL, sp, dir, "", devs)
	ms := rec.wait(0, 3)
	if ms[0].topic.Type != spb.NBIRTH || ms[1].topic.Type != spb.DBIRTH || ms[1].topic.Device != "dyer1" || ms[2].topic.Type != spb.DDATA {
		t.Fatalf("want NBIRTH, DBIRTH dyer1, DDATA; got %s", rec.dump())
	}
	nb := ms[0].p
	if bdSeqOf(t, nb) != 0 {
		t.Errorf("first bdSeq %d, want 0", bdSeqOf(t, nb))
	}
	if m := metricNamed(nb, spb.MetricRebirth); m == nil || m.GetBooleanValue() || m.GetDatatype() != uint32(pb.DataType_Boolean) {
		t.Errorf("NBIRTH Node Control/Rebirth: %v", m)
	}
	db := ms[1].p
	temp, count := metricNamed(db, "temp"), metricNamed(db, "count")
	if temp == nil || count == nil || temp.Alias == nil || count.Alias == nil || temp.GetAlias() == count.GetAlias() {
		t.Fatalf("DBIRTH metrics: %v", db)
	}
	if temp.GetDatatype() != uint32(pb.DataType_Double) {
		t.Errorf("temp datatype %d", temp.GetDatatype())
	}
	if u, ok := spb.Property(temp, spb.PropUnit); !ok || u.GetStringValue() != "°C" {
		t.Errorf("temp unit property: %v", u)
	}
	dd := ms[2].p
	if len(dd.Metrics) != 2 {
		t.Fatalf("DDATA %v", dd)
	}
	for _, m := range dd.Metrics {
		if m.Name != nil || m.Alias == nil || !m.GetIsHistorical() || m.GetTimestamp() != uint64(t0) {
			t.Errorf("DDATA metric %v: want alias only, historical, timestamp %d", m, t0)
		}
		dt := pb.DataType_Double
		if m.GetAlias() == temp.GetAlias() {
			if v, _ := spb.Value(m, dt); v.Kind() != wire.Float || v.Kind() == wire.Null {
				t.Errorf("temp value %v", v)
			}
		}
	}

	// Live data: not historical. A string value for a Double point gets
	// the device a new DBIRTH first.
	from := rec.count()
	appendBatch(t, sp, wire.Sample{Device: "dyer1", Point: "temp", Value: wire.FloatValue(81), TS: t0 + 1000})
	live := rec.wait(from, 1, spb.DDATA)[0]
	if live.p.Metrics[0].GetIsHistorical() {
		t.Error("live DDATA marked historical")
	}
	from = rec.count()
	appendBatch(t, sp, wire.Sample{Device: "dyer1", Point: "count", Value: wire.StringValue("jammed"), TS: t0 + 2000})
	got := rec.wait(from, 2)
	if got[0].topic.Type != spb.DBIRTH || got[1].topic.Type != spb.DDATA {
		t.Fatalf("want DBIRTH then DDATA after a type change: %s", rec.dump())
	}
	if m := metricNamed(got[0].p, "count"); m == nil || m.GetDatatype() != uint32(pb.DataType_String) || m.GetAlias() != count.GetAlias() {
		t.Errorf("re-born count: %v (alias must stay %d)", m, count.GetAlias())
	}

	// Device states: dyer2 comes up (DBIRTH), dyer1 goes down (DDEATH).
	from = rec.count()
	devs.setDown("dyer2", false)
	if m := rec.wait(from, 1, spb.DBIRTH)[0]; m.topic.Device != "dyer2" {
		t.Fatalf("DBIRTH of %q", m.topic.Device)
	}
	devs.setDown("dyer1", true)
	if m := rec.wait(from, 1, spb.DDEATH)[0]; m.topic.Device != "dyer1" {
		t.Fatalf("DDEATH of %q", m.topic.Device)
	}

	// NCMD Node Control/Rebirth: NBIRTH with the same bdSeq, DBIRTH of
	// the devices that are up.
	from = rec.count()
	b, _ := spb.Encode(&spb.Payload{Timestamp: proto.Uint64(1), Metrics: []*spb.Metric{{Name: proto.String(spb.MetricRebirth),
		Datatype: proto.Uint32(uint32(pb.DataType_Boolean)), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: true}}}})
	rec.c.Publish(spb.NodeTopic(group, spb.NCMD, node), 0, false, b).Wait()
	rb := rec.wait(from, 2, spb.NBIRTH, spb.DBIRTH)
	if rb[0].topic.Type != spb.NBIRTH || bdSeqOf(t, rb[0].p) != 0 || rb[1].topic.Device != "dyer2" {
		t.Fatalf("rebirth: %s", rec.dump())
	}

	// Enough data to wrap seq past 255.
	devs.setDown("dyer1", false)
	for i := range 300 {
		appendBatch(t, sp, wire.Sample{Device: "dyer1", Point: "temp", Value: wire.FloatValue(float64(i)), TS: t0 + 3000 + int64(i)})
	}
	waitFor(t, "spool drained", func() bool { return sp.Stats().Batches == 0 })

	// Stop: NDEATH with this session's bdSeq. A new run takes bdSeq 1.
	n.stop()
	all := rec.wait(0, 1, spb.NDEATH)
	if bdSeqOf(t, all[0].p) != 0 {
		t.Errorf("NDEATH bdSeq %d, want 0", bdSeqOf(t, all[0].p))
	}
	from = rec.count()
	startNode(t, mq.URL, sp, dir, "", devs)
	if bd := bdSeqOf(t, rec.wait(from, 1, spb.NBIRTH)[0].p); bd != 1 {
		t.Errorf("bdSeq after a reconnect %d, want 1", bd)
	}
	checkSeq(t, rec.wait(0, 0))
	seen := rec.wait(0, 300, spb.DDATA)
	if len(seen) < 300 {
		t.Fatalf("%d DDATA", len(seen))
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEdgeNodeStoreAndForward: with a primary host, nothing is published
// until its STATE is online; when it goes offline the node sends NDEATH and
// the spool keeps what is collected; when it returns the node is born again
// (new bdSeq) and replays the backlog as historical. A STATE older than the
// last one seen is ignored.
func TestEdgeNodeStoreAndForward(t *testing.T) {
	mq := testservers.Mosquitto(t)
	rec := record(t, mq.URL)
	dir := t.TempDir()
	sp := openSpool(t, dir)
	devs := &devices{list: []Device{{ID: "d", Points: []Point{{Name: "p"}}}}}
	state := func(online bool, ts int64) {
		rec.c.Publish(spb.StateTopic("scada"), 1, true, spb.EncodeState(spb.State{Online: online, Timestamp: ts})).Wait()
	}
	t0 := time.Now().Add(-time.Hour).UnixMilli()
	appendBatch(t, sp, wire.Sample{Device: "d", Point: "p", Value: wire.IntValue(1), TS: t0})
	n := startNode(t, mq.URL, sp, dir, "scada", devs)
	waitFor(t, "connected", n.e.Connected)
	time.Sleep(300 * time.Millisecond)
	if c := rec.count(); c != 0 {
		t.Fatalf("published %d messages before the host's STATE: %s", c, rec.dump())
	}
	state(true, 1000)
	ms := rec.wait(0, 3)
	if ms[0].topic.Type != spb.NBIRTH || ms[2].topic.Type != spb.DDATA || !ms[2].p.Metrics[0].GetIsHistorical() {
		t.Fatalf("after STATE online: %s", rec.dump())
	}
	bd1 := bdSeqOf(t, ms[0].p)

	// A stale offline (older timestamp) changes nothing.
	from := rec.count()
	state(false, 999)
	time.Sleep(300 * time.Millisecond)
	if rec.count() != from {
		t.Fatalf("reacted to a stale STATE: %s", rec.dump())
	}

	// The host goes offline: NDEATH, then silence while data is spooled.
	state(false, 1000)
	if d := rec.wait(from, 1, spb.NDEATH)[0]; bdSeqOf(t, d.p) != bd1 {
		t.Errorf("NDEATH bdSeq %d, want %d", bdSeqOf(t, d.p), bd1)
	}
	from = rec.count()
	appendBatch(t, sp, wire.Sample{Device: "d", Point: "p", Value: wire.IntValue(2), TS: t0 + 1})
	appendBatch(t, sp, wire.Sample{Device: "d", Point: "p", Value: wire.IntValue(3), TS: t0 + 2})
	time.Sleep(500 * time.Millisecond)
	if rec.count() != from {
		t.Fatalf("published while the host was offline: %s", rec.dump())
	}
	if st := sp.Stats(); st.Batches != 2 {
		t.Fatalf("spool holds %d batches, want 2", st.Batches)
	}

	// The host returns: rebirth with a new bdSeq, then the backlog as
	// historical, in order.
	state(true, 2000)
	back := rec.wait(from, 2, spb.NBIRTH, spb.DDATA)
	if bdSeqOf(t, back[0].p) == bd1 {
		t.Errorf("the new session kept bdSeq %d", bd1)
	}
	dd := rec.wait(from, 2, spb.DDATA)
	for i, m := range dd {
		mt := m.p.Metrics[0]
		if !mt.GetIsHistorical() || mt.GetTimestamp() != uint64(t0+1+int64(i)) {
			t.Errorf("replayed DDATA %d: %v", i, mt)
		}
	}
	waitFor(t, "spool drained", func() bool { return sp.Stats().Batches == 0 })
	checkSeq(t, rec.wait(0, 0))
}

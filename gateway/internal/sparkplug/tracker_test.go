package sparkplug

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/weftiot/weft/wire"
	spb "github.com/weftiot/weft/wire/sparkplug"
	pb "github.com/weftiot/weft/wire/sparkplug/sparkplugpb"
)

// Helpers that build payloads with the generated types; the MQTT test
// builds its third-party node's bytes by hand instead.

func met(name string, alias uint64, dt pb.DataType, v wire.Value) *spb.Metric {
	m := &spb.Metric{}
	if name != "" {
		m.Name = proto.String(name)
	}
	if alias != 0 {
		m.Alias = proto.Uint64(alias)
	}
	if dt != pb.DataType_Unknown {
		m.Datatype = proto.Uint32(uint32(dt))
	}
	if err := spb.SetValue(m, dt, v); err != nil {
		panic(err)
	}
	return m
}

func pay(seq int, ms ...*spb.Metric) *spb.Payload {
	p := &spb.Payload{Timestamp: proto.Uint64(1_700_000_000_000), Metrics: ms}
	if seq >= 0 {
		p.Seq = proto.Uint64(uint64(seq))
	}
	return p
}

func nbirth(seq int, bd int64, ms ...*spb.Metric) *spb.Payload {
	ms = append([]*spb.Metric{met(spb.MetricBdSeq, 0, pb.DataType_Int64, wire.IntValue(bd)),
		met(spb.MetricRebirth, 0, pb.DataType_Boolean, wire.BoolValue(false))}, ms...)
	return pay(seq, ms...)
}

var (
	tN  = spb.Topic{Group: "plant", EdgeNode: "node1"}
	now = time.UnixMilli(1_700_000_000_500)
)

func top(typ spb.MessageType, dev string) spb.Topic {
	t := tN
	t.Type, t.Device = typ, dev
	return t
}

func TestTrackerRules(t *testing.T) {
	tr := newTracker()
	step := func(name string, tp spb.Topic, p *spb.Payload, wantRebirth, wantStatus string, wantSamples int) outcome {
		t.Helper()
		out := tr.handle(tp, p, now)
		if out.rebirth != wantRebirth || out.status != wantStatus {
			t.Fatalf("%s: rebirth %q status %q (ignored %q, problems %v); want rebirth %q status %q",
				name, out.rebirth, out.status, out.ignored, out.problems, wantRebirth, wantStatus)
		}
		n := 0
		if out.batch != nil {
			n = len(out.batch.Samples)
		}
		if n != wantSamples {
			t.Fatalf("%s: %d samples, want %d (%v)", name, n, wantSamples, out.problems)
		}
		return out
	}

	step("data before any birth asks for a rebirth", top(spb.DDATA, "d1"), pay(5, met("", 1, pb.DataType_Unknown, wire.Value{})), ReasonUnborn, "", 0)
	step("NBIRTH without bdSeq is refused", top(spb.NBIRTH, ""), pay(0, met("x", 0, pb.DataType_Double, wire.FloatValue(1))), ReasonBirth, "", 0)

	out := step("NBIRTH", top(spb.NBIRTH, ""), nbirth(0, 7, met("uptime", 1, pb.DataType_Int64, wire.IntValue(99))), "", wire.Online, 1)
	if s := out.batch.Samples[0]; s.Device != NodeDevice || s.Point != "uptime" || s.Value.Int() != 99 || s.TS != 1_700_000_000_000 {
		t.Fatalf("NBIRTH sample %+v", s)
	}
	if out.batch.Site != "plant" || out.batch.Agent != "node1" {
		t.Fatalf("batch names %q/%q", out.batch.Site, out.batch.Agent)
	}

	unit := met("temp", 10, pb.DataType_Double, wire.FloatValue(80.5))
	spb.AddProperty(unit, spb.PropUnit, spb.StringProperty("°C"))
	step("DBIRTH", top(spb.DBIRTH, "dyer"), pay(1, unit, met("running", 11, pb.DataType_Boolean, wire.BoolValue(true)),
		met("empty", 12, pb.DataType_Double, wire.Value{})), "", "", 2) // the null value is declared, not stored

	d := pay(2, met("", 10, pb.DataType_Double, wire.FloatValue(81)))
	d.Metrics[0].Timestamp = proto.Uint64(1_700_000_000_100)
	out = step("DDATA by alias", top(spb.DDATA, "dyer"), d, "", "", 1)
	if s := out.batch.Samples[0]; s.Device != "dyer" || s.Point != "temp" || s.TS != 1_700_000_000_100 {
		t.Fatalf("DDATA sample %+v", s)
	}
	step("DDATA by name", top(spb.DDATA, "dyer"), pay(3, met("running", 0, pb.DataType_Boolean, wire.BoolValue(false))), "", "", 1)

	bad := met("", 11, pb.DataType_Boolean, wire.Value{})
	spb.AddProperty(bad, spb.PropQuality, spb.Int32Property(spb.QualityBad))
	out = step("a bad-quality null is stored as bad", top(spb.DDATA, "dyer"), pay(4, bad), "", "", 1)
	if s := out.batch.Samples[0]; s.Quality != wire.Bad || s.Value.Kind() != wire.Null {
		t.Fatalf("bad sample %+v", s)
	}

	step("unknown alias asks for a rebirth, keeps the rest", top(spb.DDATA, "dyer"),
		pay(5, met("", 99, pb.DataType_Double, wire.FloatValue(1)), met("", 10, pb.DataType_Double, wire.FloatValue(2))), ReasonAlias, "", 1)
	step("seq gap asks for a rebirth, keeps the data", top(spb.DDATA, "dyer"), pay(9, met("", 10, pb.DataType_Double, wire.FloatValue(3))), ReasonSeqGap, "", 1)
	step("missing seq asks for a rebirth", top(spb.NDATA, ""), pay(-1, met("", 1, pb.DataType_Int64, wire.IntValue(1))), ReasonSeqGap, "", 1)

	// Seq wraps 255 → 0 without a rebirth.
	tr.nodes[nodeKey("plant", "node1")].seq = 254
	step("seq 255", top(spb.NDATA, ""), pay(255, met("", 1, pb.DataType_Int64, wire.IntValue(2))), "", "", 1)
	step("seq wraps to 0", top(spb.NDATA, ""), pay(0, met("", 1, pb.DataType_Int64, wire.IntValue(3))), "", "", 1)

	step("DDATA of an unborn device", top(spb.DDATA, "other"), pay(1, met("", 10, pb.DataType_Double, wire.FloatValue(1))), ReasonDevice, "", 0)
	step("DDEATH", top(spb.DDEATH, "dyer"), pay(2), "", "", 0)
	step("DDATA after DDEATH asks for a rebirth", top(spb.DDATA, "dyer"), pay(3, met("", 10, pb.DataType_Double, wire.FloatValue(1))), ReasonDevice, "", 0)

	out = step("NDEATH of another session is ignored", top(spb.NDEATH, ""), pay(-1, met(spb.MetricBdSeq, 0, pb.DataType_Int64, wire.IntValue(6))), "", "", 0)
	if out.ignored == "" {
		t.Fatal("stale NDEATH not reported as ignored")
	}
	step("NDEATH with the birth's bdSeq", top(spb.NDEATH, ""), pay(-1, met(spb.MetricBdSeq, 0, pb.DataType_Int64, wire.IntValue(7))), "", wire.Offline, 0)
	step("data after death asks for a rebirth", top(spb.NDATA, ""), pay(4, met("", 1, pb.DataType_Int64, wire.IntValue(1))), ReasonUnborn, "", 0)

	// A new birth replaces the aliases: alias 10 is gone.
	step("NBIRTH again", top(spb.NBIRTH, ""), nbirth(0, 8, met("speed", 1, pb.DataType_Float, wire.Float32Value(1.5))), "", wire.Online, 1)
	step("a device of the old birth must be born again", top(spb.DDATA, "dyer"), pay(1, met("", 10, pb.DataType_Double, wire.FloatValue(1))), ReasonDevice, "", 0)
	info := tr.info()
	if len(info) != 1 || !info[0].Online || info[0].BdSeq != 8 || info[0].Births != 2 || info[0].Deaths != 1 {
		t.Fatalf("info %+v", info)
	}
}

func TestTrackerHistorical(t *testing.T) {
	tr := newTracker()
	tr.handle(top(spb.NBIRTH, ""), nbirth(0, 1), now)
	tr.handle(top(spb.DBIRTH, "d"), pay(1, met("p", 5, pb.DataType_Int64, wire.IntValue(1))), now)
	m := met("", 5, pb.DataType_Int64, wire.IntValue(42))
	m.IsHistorical = proto.Bool(true)
	m.Timestamp = proto.Uint64(1_600_000_000_000)
	out := tr.handle(top(spb.DDATA, "d"), pay(2, m), now)
	if out.batch == nil || out.batch.Samples[0].TS != 1_600_000_000_000 || out.batch.Samples[0].Value.Int() != 42 {
		t.Fatalf("historical sample %+v", out.batch)
	}
}

func TestTrackerUnsupportedTypes(t *testing.T) {
	tr := newTracker()
	ds := &spb.Metric{Name: proto.String("table"), Alias: proto.Uint64(2), Datatype: proto.Uint32(uint32(pb.DataType_DataSet)),
		Value: &pb.Payload_Metric_DatasetValue{DatasetValue: &pb.Payload_DataSet{}}}
	out := tr.handle(top(spb.NBIRTH, ""), nbirth(0, 1, ds, met("ok", 3, pb.DataType_Double, wire.FloatValue(1))), now)
	if len(out.problems) != 1 || out.batch == nil || len(out.batch.Samples) != 1 {
		t.Fatalf("problems %v batch %+v", out.problems, out.batch)
	}
}

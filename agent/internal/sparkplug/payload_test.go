package sparkplug

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/weftiot/weft/wire"
	spb "github.com/weftiot/weft/wire/sparkplug"
	pb "github.com/weftiot/weft/wire/sparkplug/sparkplugpb"
)

func mustSet(t testing.TB, m metric, dt dataType, v wire.Value) metric {
	t.Helper()
	if err := m.setValue(dt, v); err != nil {
		t.Fatal(err)
	}
	return m
}

func unitProp(u string) *pb.Payload_PropertyValue { return spb.StringProperty(u) }
func qualityProp(q int32) *pb.Payload_PropertyValue {
	return spb.Int32Property(q)
}

// checkEncoding encodes p, decodes it with the generated code and compares
// with want; it also wants the very bytes proto.Marshal writes for want.
func checkEncoding(t *testing.T, p *payload, want *pb.Payload) {
	t.Helper()
	b := p.encode()
	got := &pb.Payload{}
	if err := proto.Unmarshal(b, got); err != nil {
		t.Fatalf("generated code refuses the encoding: %v\n% x", err, b)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("decodes to\n%v\nwant\n%v", got, want)
	}
	ref, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, ref) {
		t.Errorf("encoding\n% x\ndiffers from proto.Marshal's\n% x", b, ref)
	}
}

// TestPayloadEncodingMatchesGenerated: each kind of payload the edge node
// writes, against the message it means, written with the generated types.
func TestPayloadEncodingMatchesGenerated(t *testing.T) {
	const now = 1700000000123
	cases := []struct {
		name string
		p    *payload
		want *pb.Payload
	}{
		{"NDEATH", &payload{timestamp: now, metrics: []metric{bdSeqMetric(7)}},
			&pb.Payload{Timestamp: proto.Uint64(now), Metrics: []*pb.Payload_Metric{
				{Name: proto.String("bdSeq"), Datatype: proto.Uint32(uint32(pb.DataType_Int64)), Value: &pb.Payload_Metric_LongValue{LongValue: 7}},
			}}},
		{"NBIRTH", &payload{timestamp: now, hasSeq: true, metrics: []metric{bdSeqMetric(255),
			{name: metricRebirth, declared: dtBoolean, as: dtBoolean, value: wire.BoolValue(false)}}},
			&pb.Payload{Timestamp: proto.Uint64(now), Seq: proto.Uint64(0), Metrics: []*pb.Payload_Metric{
				{Name: proto.String("bdSeq"), Datatype: proto.Uint32(uint32(pb.DataType_Int64)), Value: &pb.Payload_Metric_LongValue{LongValue: 255}},
				{Name: proto.String("Node Control/Rebirth"), Datatype: proto.Uint32(uint32(pb.DataType_Boolean)), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: false}},
			}}},
		{"DBIRTH", &payload{timestamp: now, seq: 1, hasSeq: true, metrics: []metric{
			mustSet(t, metric{name: "temp", alias: 1, declared: dtDouble, timestamp: now - 5, hasTS: true, unit: "°C", quality: wire.Uncertain}, dtDouble, wire.FloatValue(-21.25)),
			{name: "never seen", alias: 2, declared: dtDouble, timestamp: now, hasTS: true, null: true, unit: "bar"},
			mustSet(t, metric{name: "count", alias: 300, declared: dtString, timestamp: 0, hasTS: true}, dtString, wire.StringValue("")),
			mustSet(t, metric{name: "gone", alias: 4, declared: dtInt64, timestamp: now, hasTS: true, quality: wire.Bad}, dtInt64, wire.Value{}),
		}},
			&pb.Payload{Timestamp: proto.Uint64(now), Seq: proto.Uint64(1), Metrics: []*pb.Payload_Metric{
				{Name: proto.String("temp"), Alias: proto.Uint64(1), Timestamp: proto.Uint64(now - 5), Datatype: proto.Uint32(uint32(pb.DataType_Double)),
					Properties: &pb.Payload_PropertySet{Keys: []string{"Quality", "engUnit"}, Values: []*pb.Payload_PropertyValue{qualityProp(64), unitProp("°C")}},
					Value:      &pb.Payload_Metric_DoubleValue{DoubleValue: -21.25}},
				{Name: proto.String("never seen"), Alias: proto.Uint64(2), Timestamp: proto.Uint64(now), Datatype: proto.Uint32(uint32(pb.DataType_Double)), IsNull: proto.Bool(true),
					Properties: &pb.Payload_PropertySet{Keys: []string{"engUnit"}, Values: []*pb.Payload_PropertyValue{unitProp("bar")}}},
				{Name: proto.String("count"), Alias: proto.Uint64(300), Timestamp: proto.Uint64(0), Datatype: proto.Uint32(uint32(pb.DataType_String)),
					Value: &pb.Payload_Metric_StringValue{StringValue: ""}},
				{Name: proto.String("gone"), Alias: proto.Uint64(4), Timestamp: proto.Uint64(now), Datatype: proto.Uint32(uint32(pb.DataType_Int64)), IsNull: proto.Bool(true),
					Properties: &pb.Payload_PropertySet{Keys: []string{"Quality"}, Values: []*pb.Payload_PropertyValue{qualityProp(0)}}},
			}}},
		{"DDEATH", &payload{timestamp: now, seq: 255, hasSeq: true},
			&pb.Payload{Timestamp: proto.Uint64(now), Seq: proto.Uint64(255)}},
		{"DDATA", &payload{timestamp: now, seq: 9, hasSeq: true, metrics: []metric{
			mustSet(t, metric{alias: 1, timestamp: now, hasTS: true}, dtDouble, wire.IntValue(-3)),
			mustSet(t, metric{alias: 2, timestamp: now, hasTS: true, historical: true}, dtFloat, wire.FloatValue(1.5)),
			mustSet(t, metric{alias: 3, timestamp: now, hasTS: true}, dtInt64, wire.IntValue(math.MinInt64)),
			mustSet(t, metric{alias: 4, timestamp: now, hasTS: true}, dtUInt64, wire.UintValue(math.MaxUint64)),
			mustSet(t, metric{alias: 5, timestamp: now, hasTS: true, quality: wire.Bad}, dtBoolean, wire.BoolValue(true)),
			mustSet(t, metric{alias: 6, timestamp: now, hasTS: true}, dtString, wire.StringValue("染色机 \x00 ok")),
			mustSet(t, metric{alias: 7, timestamp: now, hasTS: true, historical: true}, dtDouble, wire.Value{}),
			mustSet(t, metric{alias: 8, timestamp: 0, hasTS: true}, dtDouble, wire.FloatValue(math.Inf(-1))),
		}},
			&pb.Payload{Timestamp: proto.Uint64(now), Seq: proto.Uint64(9), Metrics: []*pb.Payload_Metric{
				{Alias: proto.Uint64(1), Timestamp: proto.Uint64(now), Value: &pb.Payload_Metric_DoubleValue{DoubleValue: -3}},
				{Alias: proto.Uint64(2), Timestamp: proto.Uint64(now), IsHistorical: proto.Bool(true), Value: &pb.Payload_Metric_FloatValue{FloatValue: 1.5}},
				{Alias: proto.Uint64(3), Timestamp: proto.Uint64(now), Value: &pb.Payload_Metric_LongValue{LongValue: 1 << 63}},
				{Alias: proto.Uint64(4), Timestamp: proto.Uint64(now), Value: &pb.Payload_Metric_LongValue{LongValue: math.MaxUint64}},
				{Alias: proto.Uint64(5), Timestamp: proto.Uint64(now), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: true},
					Properties: &pb.Payload_PropertySet{Keys: []string{"Quality"}, Values: []*pb.Payload_PropertyValue{qualityProp(0)}}},
				{Alias: proto.Uint64(6), Timestamp: proto.Uint64(now), Value: &pb.Payload_Metric_StringValue{StringValue: "染色机 \x00 ok"}},
				{Alias: proto.Uint64(7), Timestamp: proto.Uint64(now), IsHistorical: proto.Bool(true), IsNull: proto.Bool(true)},
				{Alias: proto.Uint64(8), Timestamp: proto.Uint64(0), Value: &pb.Payload_Metric_DoubleValue{DoubleValue: math.Inf(-1)}},
			}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkEncoding(t, c.p, c.want) })
	}
}

// TestEdgeNodeDeathPayload: the will and explicit NDEATH of a node, as the
// gateway reads it.
func TestEdgeNodeDeathPayload(t *testing.T) {
	e := New(nil, Options{})
	e.bdSeq = 42
	p, err := spb.Decode(e.deathPayload())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Metrics) != 1 || p.Seq != nil || p.Timestamp == nil {
		t.Fatalf("NDEATH %v: want a timestamp, no seq, one metric", p)
	}
	if bd, ok := spb.Int(p.Metrics[0]); !ok || bd != 42 || p.Metrics[0].GetName() != spb.MetricBdSeq {
		t.Fatalf("NDEATH metric %v, want bdSeq 42", p.Metrics[0])
	}
}

// toPB is the generated message a payload means, built with wire/sparkplug's
// own helpers (SetValue, AddProperty), as the edge node built it before it
// encoded by hand.
func toPB(t testing.TB, p *payload) *pb.Payload {
	out := &pb.Payload{Timestamp: proto.Uint64(p.timestamp)}
	if p.hasSeq {
		out.Seq = proto.Uint64(p.seq)
	}
	for _, m := range p.metrics {
		pm := &pb.Payload_Metric{}
		if m.name != "" {
			pm.Name = proto.String(m.name)
		}
		if m.alias != 0 {
			pm.Alias = proto.Uint64(m.alias)
		}
		if m.hasTS {
			pm.Timestamp = proto.Uint64(m.timestamp)
		}
		if m.declared != 0 {
			pm.Datatype = proto.Uint32(uint32(m.declared))
		}
		if m.historical {
			pm.IsHistorical = proto.Bool(true)
		}
		if m.null {
			pm.IsNull = proto.Bool(true)
		} else if err := spb.SetValue(pm, pb.DataType(m.as), m.value); err != nil {
			t.Fatalf("metric %+v: %v", m, err)
		}
		if m.quality != wire.Good {
			spb.AddProperty(pm, spb.PropQuality, spb.Int32Property(spb.QualityCode(m.quality)))
		}
		if m.unit != "" {
			spb.AddProperty(pm, spb.PropUnit, spb.StringProperty(m.unit))
		}
		out.Metrics = append(out.Metrics, pm)
	}
	return out
}

func randomValue(r *rand.Rand) wire.Value {
	switch r.IntN(6) {
	case 0:
		return wire.FloatValue(math.Float64frombits(r.Uint64()))
	case 1:
		return wire.IntValue(int64(r.Uint64()))
	case 2:
		return wire.UintValue(r.Uint64() >> r.IntN(64))
	case 3:
		return wire.BoolValue(r.IntN(2) == 0)
	case 4:
		return wire.StringValue(strings.Repeat("é", r.IntN(200)))
	}
	return wire.Value{}
}

// TestPayloadEncodingRandom: ten thousand random payloads of the shapes the
// node writes decode with the generated code to the message wire/sparkplug's
// helpers make of them, byte for byte.
func TestPayloadEncodingRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 15))
	dts := []dataType{dtDouble, dtFloat, dtInt64, dtUInt64, dtBoolean, dtString}
	n := 10000
	if testing.Short() {
		n = 1000
	}
	for i := range n {
		p := &payload{timestamp: r.Uint64() >> r.IntN(64), seq: uint64(r.IntN(256)), hasSeq: r.IntN(4) != 0}
		for range r.IntN(20) {
			m := metric{alias: r.Uint64() >> r.IntN(64), timestamp: r.Uint64() >> r.IntN(64), hasTS: r.IntN(4) != 0,
				historical: r.IntN(3) == 0, quality: wire.Quality(r.IntN(3))}
			if r.IntN(2) == 0 {
				m.name = strings.Repeat("p", r.IntN(150))
				m.declared = dts[r.IntN(len(dts))]
			}
			if r.IntN(2) == 0 {
				m.unit = strings.Repeat("m", r.IntN(150))
			}
			v := randomValue(r)
			dt := dts[r.IntN(len(dts))]
			if !fits(dt, v.Kind()) {
				dt = dataTypeOf(v.Kind())
			}
			if err := m.setValue(dt, v); err != nil {
				t.Fatal(err)
			}
			p.metrics = append(p.metrics, m)
		}
		want := toPB(t, p)
		b := p.encode()
		got := &pb.Payload{}
		if err := proto.Unmarshal(b, got); err != nil {
			t.Fatalf("payload %d: generated code refuses it: %v", i, err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("payload %d decodes to\n%v\nwant\n%v", i, got, want)
		}
		if ref, _ := (proto.MarshalOptions{Deterministic: true}).Marshal(want); !bytes.Equal(b, ref) {
			t.Fatalf("payload %d: encoding differs from proto.Marshal's", i)
		}
	}
}

// TestSetValueRefuses: a value that does not fit its datatype, or a
// datatype the node does not write, is an error naming the metric, as in
// wire/sparkplug.SetValue.
func TestSetValueRefuses(t *testing.T) {
	for _, c := range []struct {
		dt dataType
		v  wire.Value
	}{{dtInt64, wire.FloatValue(1)}, {dtBoolean, wire.StringValue("x")}, {dtString, wire.IntValue(1)}, {dtInt32, wire.IntValue(1)}} {
		m := metric{name: "temp", alias: 3}
		err := m.setValue(c.dt, c.v)
		if err == nil || !strings.Contains(err.Error(), `"temp"`) {
			t.Errorf("setValue(%v, %v) = %v, want an error naming the metric", c.dt, c.v, err)
		}
		if spb.SetValue(&pb.Payload_Metric{}, pb.DataType(c.dt), c.v) == nil {
			t.Errorf("wire/sparkplug.SetValue accepts %v as %v", c.v, c.dt)
		}
	}
}

// TestTypesMatchWireSparkplug: the datatype rules, codes and names restated
// in this package are wire/sparkplug's.
func TestTypesMatchWireSparkplug(t *testing.T) {
	for _, c := range []struct {
		ours dataType
		gen  pb.DataType
	}{{dtInt32, pb.DataType_Int32}, {dtInt64, pb.DataType_Int64}, {dtUInt64, pb.DataType_UInt64}, {dtFloat, pb.DataType_Float},
		{dtDouble, pb.DataType_Double}, {dtBoolean, pb.DataType_Boolean}, {dtString, pb.DataType_String}} {
		if uint32(c.ours) != uint32(c.gen) || c.ours.String() != c.gen.String() {
			t.Errorf("datatype %v (%d) is %v (%d) in sparkplug_b.proto", c.ours, c.ours, c.gen, c.gen)
		}
	}
	kinds := []wire.Kind{wire.Null, wire.Float, wire.Int, wire.Uint, wire.Bool, wire.String}
	for _, k := range kinds {
		if uint32(dataTypeOf(k)) != uint32(spb.DataTypeOf(k)) {
			t.Errorf("dataTypeOf(%v) = %v, wire/sparkplug says %v", k, dataTypeOf(k), spb.DataTypeOf(k))
		}
		for dt := range dataType(35) {
			if fits(dt, k) != spb.Fits(pb.DataType(dt), k) {
				t.Errorf("fits(%v, %v) = %v, wire/sparkplug says otherwise", dt, k, fits(dt, k))
			}
		}
	}
	for _, q := range []wire.Quality{wire.Good, wire.Uncertain, wire.Bad} {
		if qualityCode(q) != spb.QualityCode(q) {
			t.Errorf("qualityCode(%v) = %d, wire/sparkplug says %d", q, qualityCode(q), spb.QualityCode(q))
		}
	}
	if metricBdSeq != spb.MetricBdSeq || metricRebirth != spb.MetricRebirth || maxNCMD != spb.MaxPayload {
		t.Error("metric names or the payload limit differ from wire/sparkplug's")
	}
	// The property keys are written as literals in properties().
	m := metric{quality: wire.Bad, unit: "x"}
	pm := &pb.Payload_Metric{}
	if err := proto.Unmarshal(m.append(nil), pm); err != nil {
		t.Fatal(err)
	}
	if _, ok := spb.Property(pm, spb.PropQuality); !ok {
		t.Errorf("no property %q in %v", spb.PropQuality, pm)
	}
	if _, ok := spb.Property(pm, spb.PropUnit); !ok {
		t.Errorf("no property %q in %v", spb.PropUnit, pm)
	}
}

// ncmdWant is what the generated code makes of an NCMD payload: whether it
// decodes, and whether one of its metrics is Node Control/Rebirth = true.
func ncmdWant(b []byte) (rebirth bool, err error) {
	p, err := spb.Decode(b)
	if err != nil {
		return false, err
	}
	for _, m := range p.GetMetrics() {
		if m.GetName() == spb.MetricRebirth && m.GetBooleanValue() {
			rebirth = true
		}
	}
	return rebirth, nil
}

func encodePB(t testing.TB, p *pb.Payload) []byte {
	b, err := proto.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rebirthMetricPB(v bool) *pb.Payload_Metric {
	return &pb.Payload_Metric{Name: proto.String(spb.MetricRebirth), Datatype: proto.Uint32(uint32(pb.DataType_Boolean)),
		Value: &pb.Payload_Metric_BooleanValue{BooleanValue: v}}
}

// ncmdSeeds are NCMD payloads made with the generated code (and a few made
// by hand where it cannot make them), for the tests and the fuzz corpus.
func ncmdSeeds(t testing.TB) map[string][]byte {
	ts := proto.Uint64(1700000000000)
	tag := func(b []byte, num protowire.Number, typ protowire.Type) []byte {
		return protowire.AppendTag(b, num, typ)
	}
	// A rebirth metric whose name comes as a varint first (an unknown
	// field for the generated code), then for real; and one whose
	// boolean_value comes as fixed32 (unknown: the value stays unset).
	var oddName, oddBool []byte
	oddName = protowire.AppendVarint(tag(oddName, 1, protowire.VarintType), 5)
	oddName = protowire.AppendString(tag(oddName, 1, protowire.BytesType), spb.MetricRebirth)
	oddName = protowire.AppendVarint(tag(oddName, 14, protowire.VarintType), 2)
	oddBool = protowire.AppendString(tag(oddBool, 1, protowire.BytesType), spb.MetricRebirth)
	oddBool = protowire.AppendFixed32(tag(oddBool, 14, protowire.Fixed32Type), 1)
	// The value oneof set twice: boolean true, then long 0 (the last wins).
	var twice []byte
	twice = protowire.AppendString(tag(twice, 1, protowire.BytesType), spb.MetricRebirth)
	twice = protowire.AppendVarint(tag(twice, 14, protowire.VarintType), 1)
	twice = protowire.AppendVarint(tag(twice, 11, protowire.VarintType), 0)
	wrap := func(metric []byte) []byte {
		b := encodePB(t, &pb.Payload{Timestamp: ts})
		return protowire.AppendBytes(tag(b, 2, protowire.BytesType), metric)
	}
	full := encodePB(t, &pb.Payload{Timestamp: ts, Seq: proto.Uint64(3), Uuid: proto.String("u"), Body: []byte{1, 2}, Metrics: []*pb.Payload_Metric{
		{Name: proto.String("ds"), Value: &pb.Payload_Metric_DatasetValue{DatasetValue: &pb.Payload_DataSet{NumOfColumns: proto.Uint64(1), Columns: []string{"a"}, Types: []uint32{3}}}},
		{Name: proto.String("x"), Properties: &pb.Payload_PropertySet{Keys: []string{"engUnit"}, Values: []*pb.Payload_PropertyValue{spb.StringProperty("m")}},
			Metadata: &pb.Payload_MetaData{IsMultiPart: proto.Bool(false)}, Value: &pb.Payload_Metric_TemplateValue{TemplateValue: &pb.Payload_Template{Version: proto.String("1")}}},
		rebirthMetricPB(true),
	}})
	return map[string][]byte{
		"rebirth":          encodePB(t, &pb.Payload{Timestamp: ts, Metrics: []*pb.Payload_Metric{rebirthMetricPB(true)}}),
		"rebirth false":    encodePB(t, &pb.Payload{Timestamp: ts, Metrics: []*pb.Payload_Metric{rebirthMetricPB(false)}}),
		"rebirth as long":  encodePB(t, &pb.Payload{Timestamp: ts, Metrics: []*pb.Payload_Metric{{Name: proto.String(spb.MetricRebirth), Value: &pb.Payload_Metric_LongValue{LongValue: 1}}}}),
		"other metric":     encodePB(t, &pb.Payload{Timestamp: ts, Metrics: []*pb.Payload_Metric{{Name: proto.String("Node Control/Reboot"), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: true}}}}),
		"by alias":         encodePB(t, &pb.Payload{Timestamp: ts, Metrics: []*pb.Payload_Metric{{Alias: proto.Uint64(1), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: true}}}}),
		"second of three":  encodePB(t, &pb.Payload{Metrics: []*pb.Payload_Metric{rebirthMetricPB(false), rebirthMetricPB(true), {Name: proto.String("a")}}}),
		"everything":       full,
		"empty":            {},
		"odd name":         wrap(oddName),
		"odd bool":         wrap(oddBool),
		"oneof twice":      wrap(twice),
		"truncated":        full[:len(full)-1],
		"bad length":       {0x12, 0x05, 0x0a},
		"field zero":       {0x00, 0x01},
		"long varint":      {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"unmatched group":  {0x0c},
		"number too large": protowire.AppendVarint(tag(nil, protowire.MaxValidNumber+1, protowire.VarintType), 1),
	}
}

// TestDecodeNCMD: NCMD payloads made with the generated code, and malformed
// ones, read as the generated code reads them.
func TestDecodeNCMD(t *testing.T) {
	want := map[string]bool{"rebirth": true, "second of three": true, "everything": true, "odd name": true}
	bad := map[string]bool{"truncated": true, "bad length": true, "field zero": true, "long varint": true, "unmatched group": true, "number too large": true}
	for name, b := range ncmdSeeds(t) {
		t.Run(name, func(t *testing.T) {
			got, err := decodeNCMD(b)
			gen, genErr := ncmdWant(b)
			if bad[name] {
				if err == nil || !errors.Is(err, errNCMD) || genErr == nil {
					t.Fatalf("decodeNCMD = %v, %v; generated code: %v; want both to refuse it", got, err, genErr)
				}
				return
			}
			if err != nil || genErr != nil {
				t.Fatalf("decodeNCMD: %v; generated code: %v", err, genErr)
			}
			if got != want[name] || gen != want[name] {
				t.Fatalf("rebirth = %v, generated code says %v, want %v", got, gen, want[name])
			}
		})
	}
	if _, err := decodeNCMD(make([]byte, maxNCMD+1)); !errors.Is(err, errNCMD) || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized NCMD: %v", err)
	}
}

// FuzzDecodeNCMD: never panics, and whatever the generated code decodes,
// decodeNCMD decodes too, with the same answer. (It may accept more: it
// does not look inside the fields it skips.)
func FuzzDecodeNCMD(f *testing.F) {
	for _, b := range ncmdSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeNCMD(b)
		if err != nil && !errors.Is(err, errNCMD) {
			t.Fatalf("error %v does not wrap errNCMD", err)
		}
		want, genErr := ncmdWant(b)
		if genErr != nil {
			return
		}
		if err != nil {
			t.Fatalf("generated code decodes % x, decodeNCMD: %v", b, err)
		}
		if got != want {
			t.Fatalf("% x: rebirth = %v, generated code says %v", b, got, want)
		}
	})
}

// ddata100 is a DDATA of 100 Double metrics, as the node writes for a
// device of 100 points.
func ddata100(b *testing.B) *payload {
	p := &payload{timestamp: 1700000000000, seq: 7, hasSeq: true}
	for i := range 100 {
		p.metrics = append(p.metrics, mustSet(b, metric{alias: uint64(i + 1), timestamp: 1700000000000 + uint64(i), hasTS: true}, dtDouble, wire.FloatValue(float64(i)*1.5)))
	}
	return p
}

// BenchmarkEncodeDDATA: the edge node's encoding of a 100-metric DDATA.
func BenchmarkEncodeDDATA(b *testing.B) {
	p := ddata100(b)
	b.ReportAllocs()
	for b.Loop() {
		p.encode()
	}
}

// BenchmarkEncodeDDATAGenerated: the same message with the generated code
// (building the message and proto.Marshal), for comparison.
func BenchmarkEncodeDDATAGenerated(b *testing.B) {
	p := ddata100(b)
	b.ReportAllocs()
	for b.Loop() {
		proto.Marshal(toPB(b, p))
	}
}

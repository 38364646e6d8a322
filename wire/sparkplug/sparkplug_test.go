package sparkplug

import (
	"errors"
	"math"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/weftiot/weft/wire"
	pb "github.com/weftiot/weft/wire/sparkplug/sparkplugpb"
)

func TestParseTopic(t *testing.T) {
	good := []struct {
		in   string
		want Topic
	}{
		{"spBv1.0/plant1/NBIRTH/agent-1", Topic{Group: "plant1", Type: NBIRTH, EdgeNode: "agent-1"}},
		{"spBv1.0/plant1/NDEATH/agent-1", Topic{Group: "plant1", Type: NDEATH, EdgeNode: "agent-1"}},
		{"spBv1.0/plant1/NDATA/agent-1", Topic{Group: "plant1", Type: NDATA, EdgeNode: "agent-1"}},
		{"spBv1.0/plant1/NCMD/agent-1", Topic{Group: "plant1", Type: NCMD, EdgeNode: "agent-1"}},
		{"spBv1.0/plant1/DBIRTH/agent-1/dyer 3", Topic{Group: "plant1", Type: DBIRTH, EdgeNode: "agent-1", Device: "dyer 3"}},
		{"spBv1.0/plant1/DDEATH/a/d", Topic{Group: "plant1", Type: DDEATH, EdgeNode: "a", Device: "d"}},
		{"spBv1.0/plant1/DDATA/a/d", Topic{Group: "plant1", Type: DDATA, EdgeNode: "a", Device: "d"}},
		{"spBv1.0/plant1/DCMD/a/d", Topic{Group: "plant1", Type: DCMD, EdgeNode: "a", Device: "d"}},
		{"spBv1.0/STATE/weft-gw", Topic{Type: STATE, HostID: "weft-gw"}},
		{"spBv1.0/车间/DDATA/节点/设备", Topic{Group: "车间", Type: DDATA, EdgeNode: "节点", Device: "设备"}},
	}
	for _, c := range good {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseTopic(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
			if s := got.String(); s != c.in {
				t.Fatalf("String() = %q, want %q", s, c.in)
			}
		})
	}
	bad := []string{
		"", "spBv1.0", "spBv1.0/", "spBv2.0/g/NDATA/n", "spAv1.0/g/NDATA/n",
		"spBv1.0/g/NDATA", "spBv1.0/g/NDATA/n/d", "spBv1.0/g/DDATA/n", "spBv1.0/g/DDATA/n/d/x",
		"spBv1.0/g/NFOO/n", "spBv1.0//NDATA/n", "spBv1.0/g/NDATA/", "spBv1.0/g/DDATA/n/",
		"spBv1.0/STATE", "spBv1.0/STATE/", "spBv1.0/STATE/a/b", "spBv1.0/g/NDATA/+", "spBv1.0/#/NDATA/n",
		"spBv1.0/g/ndata/n", "spBv1.0/g/NDATA/\xff",
	}
	for _, in := range bad {
		t.Run("bad "+in, func(t *testing.T) {
			if got, err := ParseTopic(in); err == nil {
				t.Fatalf("ParseTopic(%q) = %+v, want an error", in, got)
			} else if !errors.Is(err, ErrTopic) {
				t.Fatalf("error %v does not wrap ErrTopic", err)
			}
		})
	}
}

// TestFieldNumbers builds a payload by hand with protowire, using the field
// numbers of the specification's payload definition, and checks the
// generated code reads it: the .proto and the specification agree.
func TestFieldNumbers(t *testing.T) {
	var prop []byte // PropertySet{keys: ["engUnit"], values: [{type: 12, string_value: "°C"}]}
	prop = protowire.AppendTag(prop, 1, protowire.BytesType)
	prop = protowire.AppendString(prop, "engUnit")
	var pv []byte
	pv = protowire.AppendTag(pv, 1, protowire.VarintType)
	pv = protowire.AppendVarint(pv, 12)
	pv = protowire.AppendTag(pv, 8, protowire.BytesType)
	pv = protowire.AppendString(pv, "°C")
	prop = protowire.AppendTag(prop, 2, protowire.BytesType)
	prop = protowire.AppendBytes(prop, pv)

	var m []byte
	m = protowire.AppendTag(m, 1, protowire.BytesType) // name
	m = protowire.AppendString(m, "temp")
	m = protowire.AppendTag(m, 2, protowire.VarintType) // alias
	m = protowire.AppendVarint(m, 7)
	m = protowire.AppendTag(m, 3, protowire.VarintType) // timestamp
	m = protowire.AppendVarint(m, 1700000000123)
	m = protowire.AppendTag(m, 4, protowire.VarintType) // datatype
	m = protowire.AppendVarint(m, 10)
	m = protowire.AppendTag(m, 5, protowire.VarintType) // is_historical
	m = protowire.AppendVarint(m, 1)
	m = protowire.AppendTag(m, 9, protowire.BytesType) // properties
	m = protowire.AppendBytes(m, prop)
	m = protowire.AppendTag(m, 13, protowire.Fixed64Type) // double_value
	m = protowire.AppendFixed64(m, math.Float64bits(81.5))

	var m2 []byte
	m2 = protowire.AppendTag(m2, 2, protowire.VarintType)
	m2 = protowire.AppendVarint(m2, 8)
	m2 = protowire.AppendTag(m2, 4, protowire.VarintType)
	m2 = protowire.AppendVarint(m2, 2) // Int16
	m2 = protowire.AppendTag(m2, 10, protowire.VarintType)
	m2 = protowire.AppendVarint(m2, 0xFFFFFFFE) // -2 sign-extended into uint32

	var p []byte
	p = protowire.AppendTag(p, 1, protowire.VarintType) // timestamp
	p = protowire.AppendVarint(p, 1700000000999)
	p = protowire.AppendTag(p, 2, protowire.BytesType) // metrics
	p = protowire.AppendBytes(p, m)
	p = protowire.AppendTag(p, 2, protowire.BytesType)
	p = protowire.AppendBytes(p, m2)
	p = protowire.AppendTag(p, 3, protowire.VarintType) // seq
	p = protowire.AppendVarint(p, 42)
	p = protowire.AppendTag(p, 4, protowire.BytesType) // uuid
	p = protowire.AppendString(p, "u-1")

	got, err := Decode(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetTimestamp() != 1700000000999 || got.GetSeq() != 42 || got.GetUuid() != "u-1" || len(got.GetMetrics()) != 2 {
		t.Fatalf("payload header: %v", got)
	}
	mt := got.GetMetrics()[0]
	if mt.GetName() != "temp" || mt.GetAlias() != 7 || mt.GetTimestamp() != 1700000000123 ||
		mt.GetDatatype() != uint32(pb.DataType_Double) || !mt.GetIsHistorical() || mt.GetDoubleValue() != 81.5 {
		t.Fatalf("metric: %v", mt)
	}
	if pv, ok := Property(mt, PropUnit); !ok || pv.GetStringValue() != "°C" || pv.GetType() != 12 {
		t.Fatalf("engUnit property: %v %v", pv, ok)
	}
	v, err := Value(got.GetMetrics()[1], pb.DataType(got.GetMetrics()[1].GetDatatype()))
	if err != nil || v.Kind() != wire.Int || v.Int() != -2 {
		t.Fatalf("Int16 -2: %v %v", v, err)
	}
	// And our encoder writes the same bytes back for the same message.
	again, err := Encode(got)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(mustDecode(t, again), got) {
		t.Fatal("re-encoded payload differs")
	}
}

func mustDecode(t *testing.T, b []byte) *Payload {
	t.Helper()
	p, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValueRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		v    wire.Value
		dt   DataType
		want wire.Value // "" kind = same as v
	}{
		{"double", wire.FloatValue(3.25), pb.DataType_Double, wire.Value{}},
		{"double -0", wire.FloatValue(math.Copysign(0, -1)), pb.DataType_Double, wire.Value{}},
		{"double nan", wire.FloatValue(math.NaN()), pb.DataType_Double, wire.Value{}},
		{"int64 min", wire.IntValue(math.MinInt64), pb.DataType_Int64, wire.Value{}},
		{"int64 -1", wire.IntValue(-1), pb.DataType_Int64, wire.Value{}},
		{"uint64 max", wire.UintValue(math.MaxUint64), pb.DataType_UInt64, wire.Value{}},
		{"bool true", wire.BoolValue(true), pb.DataType_Boolean, wire.Value{}},
		{"bool false", wire.BoolValue(false), pb.DataType_Boolean, wire.Value{}},
		{"string", wire.StringValue("染缸 3 \"ok\""), pb.DataType_String, wire.Value{}},
		{"empty string", wire.StringValue(""), pb.DataType_String, wire.Value{}},
		{"null", wire.Value{}, pb.DataType_Double, wire.Value{}},
		{"int into double", wire.IntValue(-5), pb.DataType_Double, wire.FloatValue(-5)},
		{"float32", wire.Float32Value(0.1), pb.DataType_Float, wire.Float32Value(0.1)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := &Metric{Name: proto.String("p")}
			if err := SetValue(m, c.dt, c.v); err != nil {
				t.Fatal(err)
			}
			b, err := Encode(&Payload{Metrics: []*Metric{m}})
			if err != nil {
				t.Fatal(err)
			}
			got, err := Value(mustDecode(t, b).GetMetrics()[0], c.dt)
			if err != nil {
				t.Fatal(err)
			}
			want := c.v
			if c.want.Kind() != wire.Null {
				want = c.want
			}
			if !got.Equal(want) {
				t.Fatalf("got %#v, want %#v", got, want)
			}
		})
	}
}

func TestValueSigned(t *testing.T) {
	// Int8/16/32 arrive sign-extended (Tahu Java, 3.0) or zero-extended
	// (older encoders); both read as the same number.
	cases := []struct {
		dt   DataType
		raw  uint32
		want int64
	}{
		{pb.DataType_Int8, 0xFFFFFFFF, -1},
		{pb.DataType_Int8, 0xFF, -1},
		{pb.DataType_Int8, 0x7F, 127},
		{pb.DataType_Int16, 0xFFFF8000, -32768},
		{pb.DataType_Int16, 0x8000, -32768},
		{pb.DataType_Int32, 0x80000000, math.MinInt32},
	}
	for _, c := range cases {
		m := &Metric{Value: &pb.Payload_Metric_IntValue{IntValue: c.raw}}
		v, err := Value(m, c.dt)
		if err != nil || v.Kind() != wire.Int || v.Int() != c.want {
			t.Errorf("%v %#x: got %#v %v, want %d", c.dt, c.raw, v, err, c.want)
		}
	}
	for dt, want := range map[DataType]uint64{pb.DataType_UInt8: 0xFE, pb.DataType_UInt16: 0xFFFE, pb.DataType_UInt32: 0xFFFFFFFE} {
		v, err := Value(&Metric{Value: &pb.Payload_Metric_IntValue{IntValue: 0xFFFFFFFE}}, dt)
		if err != nil || v.Kind() != wire.Uint || v.Uint() != want {
			t.Errorf("%v: got %#v %v, want %d", dt, v, err, want)
		}
	}
}

func TestValueUnsupported(t *testing.T) {
	cases := []struct {
		name string
		m    *Metric
		dt   DataType
	}{
		{"bytes", &Metric{Value: &pb.Payload_Metric_BytesValue{BytesValue: []byte{1}}}, pb.DataType_Bytes},
		{"dataset", &Metric{Value: &pb.Payload_Metric_DatasetValue{DatasetValue: &pb.Payload_DataSet{}}}, pb.DataType_DataSet},
		{"string as int", &Metric{Value: &pb.Payload_Metric_StringValue{StringValue: "1"}}, pb.DataType_Int32},
		{"bool as string", &Metric{Value: &pb.Payload_Metric_BooleanValue{BooleanValue: true}}, pb.DataType_String},
		{"int array", &Metric{Value: &pb.Payload_Metric_BytesValue{BytesValue: []byte{1, 0, 0, 0}}}, pb.DataType_Int32Array},
		{"unknown type", &Metric{Value: &pb.Payload_Metric_IntValue{IntValue: 1}}, pb.DataType_Unknown},
	}
	for _, c := range cases {
		if v, err := Value(c.m, c.dt); !errors.Is(err, ErrType) {
			t.Errorf("%s: got %#v %v, want ErrType", c.name, v, err)
		}
	}
	if err := SetValue(&Metric{}, pb.DataType_Boolean, wire.FloatValue(1)); !errors.Is(err, ErrType) {
		t.Errorf("float into Boolean: %v, want ErrType", err)
	}
}

func TestQuality(t *testing.T) {
	for _, q := range []wire.Quality{wire.Good, wire.Uncertain, wire.Bad} {
		m := &Metric{}
		AddProperty(m, PropQuality, Int32Property(QualityCode(q)))
		b, _ := Encode(&Payload{Metrics: []*Metric{m}})
		if got := QualityOf(mustDecode(t, b).GetMetrics()[0]); got != q {
			t.Errorf("quality %v came back as %v", q, got)
		}
	}
	if QualityOf(&Metric{}) != wire.Good {
		t.Error("a metric without a Quality property is not good")
	}
}

func TestState(t *testing.T) {
	s := State{Online: true, Timestamp: 1700000000123}
	b := EncodeState(s)
	if string(b) != `{"online":true,"timestamp":1700000000123}` {
		t.Fatalf("EncodeState = %s", b)
	}
	got, err := DecodeState(b)
	if err != nil || got != s {
		t.Fatalf("DecodeState = %+v %v", got, err)
	}
	if got, err := DecodeState([]byte(`{"timestamp":5,"online":false,"extra":"x"}`)); err != nil || got != (State{Timestamp: 5}) {
		t.Fatalf("extra key: %+v %v", got, err)
	}
	for _, in := range []string{``, `null`, `{}`, `{"online":true}`, `{"timestamp":1}`, `{"online":"true","timestamp":1}`,
		`{"online":true,"timestamp":-1}`, `{"online":true,"timestamp":1.5}`, `ONLINE`, `{"online":true,"timestamp":1e300}`} {
		if _, err := DecodeState([]byte(in)); !errors.Is(err, ErrPayload) {
			t.Errorf("DecodeState(%q): %v, want ErrPayload", in, err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	if _, err := Decode([]byte{0x0a, 0xff}); !errors.Is(err, ErrPayload) {
		t.Errorf("truncated: %v", err)
	}
	if _, err := Decode(make([]byte, MaxPayload+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too large: %v", err)
	}
}

package sparkplug

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/weftiot/weft/wire"
	pb "github.com/weftiot/weft/wire/sparkplug/sparkplugpb"
)

// FuzzDecode feeds arbitrary bytes to the payload decoder and every metric's
// value reader: they may refuse, never panic.
func FuzzDecode(f *testing.F) {
	m := &Metric{Name: proto.String("temp"), Alias: proto.Uint64(3), Datatype: proto.Uint32(uint32(pb.DataType_Double))}
	_ = SetValue(m, pb.DataType_Double, wire.FloatValue(1.5))
	AddProperty(m, PropUnit, StringProperty("°C"))
	seed, _ := Encode(&Payload{Timestamp: proto.Uint64(1), Seq: proto.Uint64(4), Metrics: []*Metric{m,
		{Name: proto.String(MetricBdSeq), Datatype: proto.Uint32(uint32(pb.DataType_Int64)), Value: &pb.Payload_Metric_LongValue{LongValue: 9}},
		{Name: proto.String("ds"), Value: &pb.Payload_Metric_DatasetValue{DatasetValue: &pb.Payload_DataSet{Columns: []string{"a"}}}},
	}})
	f.Add(seed)
	f.Add([]byte{})
	f.Add([]byte{0x12, 0x02, 0x50, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			return
		}
		for _, m := range p.GetMetrics() {
			_, _ = Value(m, pb.DataType(m.GetDatatype()))
			_ = QualityOf(m)
			_, _ = Int(m)
			_, _ = Property(m, PropUnit)
		}
		if _, err := Encode(p); err != nil {
			t.Fatalf("a decoded payload does not encode: %v", err)
		}
	})
}

// FuzzParseTopic: any topic either parses into one that prints back the
// same, or is refused.
func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{"spBv1.0/g/NBIRTH/n", "spBv1.0/g/DDATA/n/d", "spBv1.0/STATE/h", "spBv1.0/g/DDATA/n/", "spBv1.0//NDATA/n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tp, err := ParseTopic(s)
		if err != nil {
			return
		}
		if tp.String() != s {
			t.Fatalf("ParseTopic(%q) = %+v, which prints as %q", s, tp, tp.String())
		}
	})
}

// FuzzDecodeState: the STATE decoder refuses or returns a sane state.
func FuzzDecodeState(f *testing.F) {
	f.Add([]byte(`{"online":true,"timestamp":1700000000000}`))
	f.Add([]byte(`{"online":false,"timestamp":0}`))
	f.Add([]byte(`{"online":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeState(b)
		if err == nil && s.Timestamp < 0 {
			t.Fatalf("negative timestamp from %q", b)
		}
	})
}

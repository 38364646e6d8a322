package sparkplug

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/weftiot/weft/wire"
	pb "github.com/weftiot/weft/wire/sparkplug/sparkplugpb"
)

// ddata100 is a DDATA as the edge node writes it: 100 metrics by alias,
// each with a timestamp and a double.
func ddata100() *Payload {
	p := &Payload{Timestamp: proto.Uint64(1700000000000), Seq: proto.Uint64(7)}
	for i := range 100 {
		m := &Metric{Alias: proto.Uint64(uint64(i + 1)), Timestamp: proto.Uint64(1700000000000 + uint64(i))}
		_ = SetValue(m, pb.DataType_Double, wire.FloatValue(float64(i)*1.5))
		p.Metrics = append(p.Metrics, m)
	}
	return p
}

func BenchmarkEncodeDDATA100(b *testing.B) {
	p := ddata100()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "metrics/s")
}

func BenchmarkDecodeDDATA100(b *testing.B) {
	raw, _ := Encode(ddata100())
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		p, err := Decode(raw)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range p.Metrics {
			if _, err := Value(m, pb.DataType_Double); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "metrics/s")
}

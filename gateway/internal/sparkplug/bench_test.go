package sparkplug

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/weftiot/weft/wire"
	spb "github.com/weftiot/weft/wire/sparkplug"
	pb "github.com/weftiot/weft/wire/sparkplug/sparkplugpb"
)

// BenchmarkHostDDATA100: decode one DDATA of 100 metrics by alias and turn
// it into samples against the device's birth (what the host does per
// message before the store).
func BenchmarkHostDDATA100(b *testing.B) {
	tr := newTracker()
	tr.handle(top(spb.NBIRTH, ""), nbirth(0, 1), now)
	birth := pay(1)
	data := pay(2)
	for i := range 100 {
		birth.Metrics = append(birth.Metrics, met("p"+string(rune('A'+i%26))+string(rune('a'+i/26)), uint64(i+1), pb.DataType_Double, wire.FloatValue(0)))
		m := met("", uint64(i+1), pb.DataType_Double, wire.FloatValue(float64(i)))
		m.Timestamp = proto.Uint64(1_700_000_000_000 + uint64(i))
		data.Metrics = append(data.Metrics, m)
	}
	tr.handle(top(spb.DBIRTH, "d"), birth, now)
	raw, _ := spb.Encode(data)
	tp := top(spb.DDATA, "d")
	b.ReportAllocs()
	seq := uint64(2)
	for b.Loop() {
		p, err := spb.Decode(raw)
		if err != nil {
			b.Fatal(err)
		}
		p.Seq = proto.Uint64(seq)
		seq = (seq + 1) % 256
		if out := tr.handle(tp, p, now); out.batch == nil || len(out.batch.Samples) != 100 || out.rebirth != "" {
			b.Fatalf("outcome %+v", out)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "samples/s")
}

package modbus

import (
	"fmt"
	"testing"

	"github.com/weftiot/weft/wire"
)

// BenchmarkDecodeSample measures decoding one answer of 125 registers into
// samples (the numeric types of a typical map); allocs/sample must stay 0.
func BenchmarkDecodeSample(b *testing.B) {
	types := []string{"uint16", "int16", "float32", "int32", "uint32", "float64", "int64", "uint16"}
	var pts []Point
	addr := 0
	for addr < 121 {
		typ := types[len(pts)%len(types)]
		a := addr
		pts = append(pts, Point{Name: fmt.Sprint("p", len(pts)), PointConfig: PointConfig{Table: "holding", Address: &a, Type: typ, Order: Orders[len(pts)%4]}})
		addr += RegisterCount(typ, 0)
	}
	pool := NewPool(nil)
	d, err := pool.Driver("bench", DeviceConfig{Target: "tcp://127.0.0.1:1"}, pts)
	if err != nil {
		b.Fatal(err)
	}
	if len(d.plan) != 1 {
		b.Fatalf("plan %d requests", len(d.plan))
	}
	r := d.plan[0]
	data := make([]byte, 2*r.count)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var sink wire.Sample
	emit := func(s wire.Sample) { sink = s }
	allocs := testing.AllocsPerRun(100, func() { d.emitData(r, data, 1, emit) })
	b.ResetTimer()
	for b.Loop() {
		d.emitData(r, data, 1, emit)
	}
	_ = sink
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(r.points)), "ns/sample")
	b.ReportMetric(allocs/float64(len(r.points)), "allocs/sample")
}

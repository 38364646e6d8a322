package opcua

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	sim "github.com/weftiot/weft/sim/opcua"
	"github.com/weftiot/weft/wire"
)

// BenchmarkPoll1000 times one poll of 1,000 nodes: one Read when the server
// sets no limit, ceil(1000/32)=32 Reads when it advertises gopcua's default
// MaxNodesPerRead of 32.
func BenchmarkPoll1000(b *testing.B) {
	for _, limit := range []uint32{0, 32} {
		b.Run(fmt.Sprintf("max_nodes_per_read=%d", limit), func(b *testing.B) {
			s := startSim(b, sim.Options{Bulk: 1000, MaxNodesPerRead: limit, UpdateInterval: time.Hour})
			points := make([]Point, 1000)
			for i := range points {
				points[i] = Point{Name: fmt.Sprintf("v%d", i), PointConfig: PointConfig{Node: fmt.Sprintf("ns=1;s=Bulk.V%05d", i), Mode: "poll"}}
			}
			d := newDriver(b, DeviceConfig{Endpoint: s.Endpoint()}, points)
			ctx := context.Background()
			if err := d.Connect(ctx); err != nil {
				b.Fatal(err)
			}
			n := 0
			b.ResetTimer()
			for b.Loop() {
				if err := d.Poll(ctx, func(wire.Sample) { n++ }); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// benchItems is the size of the subscription benchmark: the 5,000
// monitored items, spread by the driver over five subscriptions of 1,000.
var benchItems = 5000

// BenchmarkSubscribe counts samples per second through benchItems
// monitored items whose values all change every 100 ms (the full change rate
// is benchItems × 10 per second).
func BenchmarkSubscribe(b *testing.B) {
	if testing.Short() {
		b.Skip("long")
	}
	s := startSim(b, sim.Options{Bulk: benchItems, UpdateInterval: 100 * time.Millisecond})
	points := make([]Point, benchItems)
	for i := range points {
		points[i] = Point{Name: fmt.Sprintf("v%d", i), PointConfig: PointConfig{Node: fmt.Sprintf("ns=1;s=Bulk.V%05d", i)}}
	}
	d := newDriver(b, DeviceConfig{Endpoint: s.Endpoint(), PublishingInterval: 100 * time.Millisecond, Timeout: 20 * time.Second}, points)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := d.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	done := make(chan error, 1)
	go func() { done <- d.Subscribe(ctx, func(wire.Sample) { n.Add(1) }) }()
	// wait for the initial values of all items
	for deadline := time.Now().Add(60 * time.Second); n.Load() < int64(benchItems); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("only %d initial values", n.Load())
		}
	}
	b.ResetTimer()
	start, from := time.Now(), n.Load()
	for b.Loop() {
		time.Sleep(100 * time.Millisecond)
	}
	b.ReportMetric(float64(n.Load()-from)/time.Since(start).Seconds(), "samples/s")
	b.ReportMetric(float64(s.Dropped()), "sim-dropped")
	cancel()
	<-done
}

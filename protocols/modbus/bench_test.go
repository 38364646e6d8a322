package modbus_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/weftiot/weft/protocols/modbus"
	sim "github.com/weftiot/weft/sim/modbus"
	"github.com/weftiot/weft/wire"
)

// realisticMap is a 2,000-point holding-register map as PLC programs lay
// them out: runs of 5..30 adjacent values (uint16, int16, float32, uint32
// mixed), separated by unused gaps of 1..40 registers.
func realisticMap(n int) ([]modbus.Point, int) {
	rng := rand.New(rand.NewPCG(42, 42))
	types := []string{"uint16", "int16", "float32", "uint32", "uint16", "int16"}
	var pts []modbus.Point
	addr := 0
	for len(pts) < n {
		run := 5 + rng.IntN(26)
		for i := 0; i < run && len(pts) < n; i++ {
			typ := types[rng.IntN(len(types))]
			pts = append(pts, modbus.Point{Name: fmt.Sprint("p", len(pts)), PointConfig: modbus.PointConfig{Table: "holding", Address: intp(addr), Type: typ}})
			addr += modbus.RegisterCount(typ, 0)
		}
		addr += 1 + rng.IntN(40)
	}
	return pts, addr
}

// BenchmarkScan2000Points polls a 2,000-point map against the simulator
// with 2 ms of latency per request: planned (one driver, merged requests)
// against one request per point (the baseline a naive poller issues).
func BenchmarkScan2000Points(b *testing.B) {
	pts, size := realisticMap(2000)
	s, err := sim.Start(sim.Options{TCP: "127.0.0.1:0", Profile: "counter", Registers: size + 4, Fault: sim.Fault{Latency: 2 * time.Millisecond}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	target := "tcp://" + s.Addr()
	ctx := context.Background()
	count := func(n *int) func(wire.Sample) {
		return func(smp wire.Sample) {
			if smp.Quality != wire.Good {
				b.Fatalf("%s: %v", smp.Point, smp.Quality)
			}
			*n++
		}
	}

	b.Run("planned", func(b *testing.B) {
		pool := modbus.NewPool(nil)
		defer pool.Close()
		d, err := pool.Driver("plc", modbus.DeviceConfig{Target: target}, pts)
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		before := d.Requests()
		for b.Loop() {
			n := 0
			if err := d.Poll(ctx, count(&n)); err != nil || n != len(pts) {
				b.Fatalf("poll: %v, %d samples", err, n)
			}
		}
		b.ReportMetric(float64(d.Requests()-before)/float64(b.N), "requests/scan")
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/scan")
	})

	b.Run("per_point", func(b *testing.B) {
		pool := modbus.NewPool(nil)
		defer pool.Close()
		var drivers []*modbus.Driver
		for _, p := range pts {
			d, err := pool.Driver(p.Name, modbus.DeviceConfig{Target: target}, []modbus.Point{p})
			if err != nil {
				b.Fatal(err)
			}
			drivers = append(drivers, d)
		}
		b.ResetTimer()
		var reqs uint64
		for b.Loop() {
			n := 0
			for _, d := range drivers {
				before := d.Requests()
				if err := d.Poll(ctx, count(&n)); err != nil {
					b.Fatal(err)
				}
				reqs += d.Requests() - before
			}
			if n != len(pts) {
				b.Fatalf("%d samples", n)
			}
		}
		b.ReportMetric(float64(reqs)/float64(b.N), "requests/scan")
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/scan")
	})
}

// BenchmarkPollAllocs polls 1,000 uint16 holding registers (8 requests of
// 125) against the simulator without added latency and reports what one
// Poll allocates (B/op, allocs/op): the driver's share of the agent's
// garbage at 10,000 points per second.
func BenchmarkPollAllocs(b *testing.B) {
	s, err := sim.Start(sim.Options{TCP: "127.0.0.1:0", Profile: "counter", Registers: 1000})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	pts := make([]modbus.Point, 1000)
	for i := range pts {
		pts[i] = modbus.Point{Name: fmt.Sprintf("r%04d", i), PointConfig: modbus.PointConfig{Table: "holding", Address: intp(i), Type: "uint16"}}
	}
	pool := modbus.NewPool(nil)
	defer pool.Close()
	d, err := pool.Driver("plc", modbus.DeviceConfig{Target: "tcp://" + s.Addr()}, pts)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	n := 0
	emit := func(smp wire.Sample) {
		if smp.Quality != wire.Good {
			b.Fatalf("%s: %v", smp.Point, smp.Quality)
		}
		n++
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Poll(ctx, emit); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/float64(b.N), "samples/op")
}

package sparkplug

import (
	"fmt"
	"testing"
	"time"

	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
)

// BenchmarkEdgeNodeDrain: a spool backlog of b.N batches of 100 samples
// (10 devices × 10 points) drained as DDATA to a real Mosquitto.
func BenchmarkEdgeNodeDrain(b *testing.B) {
	mq := testservers.Mosquitto(b)
	dir := b.TempDir()
	sp := openSpool(b, dir)
	var devs devices
	for d := range 10 {
		dev := Device{ID: fmt.Sprintf("dev%d", d)}
		for p := range 10 {
			dev.Points = append(dev.Points, Point{Name: fmt.Sprintf("p%d", p)})
		}
		devs.list = append(devs.list, dev)
	}
	ts := time.Now().UnixMilli()
	for i := range b.N {
		samples := make([]wire.Sample, 0, 100)
		for d := range 10 {
			for p := range 10 {
				samples = append(samples, wire.Sample{Device: fmt.Sprintf("dev%d", d), Point: fmt.Sprintf("p%d", p), Value: wire.FloatValue(float64(i)), TS: ts + int64(i)})
			}
		}
		appendBatch(b, sp, samples...)
	}
	b.ResetTimer()
	start := time.Now()
	n := startNode(b, mq.URL, sp, dir, "", &devs)
	for sp.Stats().Batches > 0 {
		time.Sleep(2 * time.Millisecond)
	}
	b.StopTimer()
	n.stop()
	b.ReportMetric(float64(b.N*100)/time.Since(start).Seconds(), "samples/s")
}

package influx

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
)

// BenchmarkWriteInflux stores points in a real influxd 1.8.3 the way the
// gateway drains a backlog: groups of size points (the gateway's
// batch_size) written by writers goroutines at once, 200 devices × 50
// points of the e2e load, every point new. It reports points/s. One op is
// one group.
//
//	go test -run '^$' -bench WriteInflux -benchtime 200x ./gateway/internal/influx
func BenchmarkWriteInflux(b *testing.B) {
	for _, size := range []int{5000, 20000} {
		for _, writers := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("size=%d/writers=%d", size, writers), func(b *testing.B) {
				benchWrite(b, size, writers, false)
			})
		}
	}
	b.Run("size=5000/writers=2/gzip", func(b *testing.B) { benchWrite(b, 5000, 2, true) })
}

func benchWrite(b *testing.B, size, writers int, gzip bool) {
	db := testservers.Influx(b)
	w := New(Options{URL: db.URL, Bucket: db.Bucket, Gzip: gzip}, quiet())
	defer w.Close()
	// Groups made in advance: 200 devices × 50 points, a batch per device
	// poll of 50 samples, timestamps 1 ms apart per device so that every
	// point is new.
	base := time.Now().Add(-time.Hour).UnixMilli()
	groups := make([][]*wire.Batch, b.N)
	var ts int64
	for g := range groups {
		for len(groups[g])*50 < size {
			dev := len(groups[g]) % 200
			if dev == 0 {
				ts++
			}
			bt := &wire.Batch{Site: "site1", Agent: "e2e-agent", Seq: uint64(g*1000 + len(groups[g]))}
			for p := range 50 {
				bt.Samples = append(bt.Samples, wire.Sample{Device: fmt.Sprintf("dev%03d", dev), Point: fmt.Sprintf("r%03d", p),
					Value: wire.IntValue(int64(g*size + p)), TS: base + ts})
			}
			groups[g] = append(groups[g], bt)
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range writers {
		wg.Go(func() {
			for {
				g := int(next.Add(1)) - 1
				if g >= len(groups) {
					return
				}
				if _, err := w.Write(context.Background(), groups[g]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N*size)/time.Since(start).Seconds(), "points/s")
}

package spool

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Batch shapes: ~50 bytes per sample on the wire, as the JSON codec writes.
var benchShapes = []struct {
	samples, bytes int
}{
	{100, 5_000},
	{1000, 50_000},
}

// BenchmarkAppend measures durable appends (fsync on, bbolt defaults) from
// many goroutines: appended samples per second, fsyncs per append, appends
// per commit, and bytes on disk per stored sample.
func BenchmarkAppend(b *testing.B) {
	for _, shape := range benchShapes {
		for _, par := range []int{1, 8, 32} {
			b.Run(fmt.Sprintf("samples=%d/writers=%d", shape.samples, par), func(b *testing.B) {
				dir := b.TempDir()
				path := filepath.Join(dir, "spool.db")
				s, err := Open(path, Options{Logger: quietLogger()})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				data := payload(0, shape.bytes)
				encode := func(uint64) ([]byte, error) { return data, nil }
				b.SetParallelism(max(par/runtime.GOMAXPROCS(0), 1)) // par goroutines in all
				b.SetBytes(int64(shape.bytes))
				b.ResetTimer()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := s.Append(context.Background(), shape.samples, encode); err != nil {
							b.Error(err)
							return
						}
					}
				})
				elapsed := time.Since(start)
				b.StopTimer()
				st := s.Stats()
				b.ReportMetric(float64(st.Appended)*float64(shape.samples)/elapsed.Seconds(), "samples/s")
				b.ReportMetric(2*float64(st.Commits)/float64(st.Appended), "fsyncs/append")
				b.ReportMetric(float64(st.Appended)/float64(st.Commits), "appends/commit")
				if st.Samples > 0 {
					b.ReportMetric(float64(st.FileBytes)/float64(st.Samples), "disk-bytes/sample")
				}
			})
		}
	}
}

// BenchmarkAppendAsync measures one caller that keeps up to window batches
// in flight (AppendAsync), as a pipeline appending batches in order can.
func BenchmarkAppendAsync(b *testing.B) {
	for _, shape := range benchShapes {
		for _, window := range []int{1, 4, 16} {
			b.Run(fmt.Sprintf("samples=%d/window=%d", shape.samples, window), func(b *testing.B) {
				s, err := Open(filepath.Join(b.TempDir(), "spool.db"), Options{Logger: quietLogger()})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				data := payload(0, shape.bytes)
				encode := func(uint64) ([]byte, error) { return data, nil }
				b.SetBytes(int64(shape.bytes))
				inflight := make(chan (<-chan error), window)
				b.ResetTimer()
				start := time.Now()
				for range b.N {
					if len(inflight) == window {
						if err := <-<-inflight; err != nil {
							b.Fatal(err)
						}
					}
					_, done, err := s.AppendAsync(shape.samples, encode)
					if err != nil {
						b.Fatal(err)
					}
					inflight <- done
				}
				for len(inflight) > 0 {
					if err := <-<-inflight; err != nil {
						b.Fatal(err)
					}
				}
				elapsed := time.Since(start)
				st := s.Stats()
				b.ReportMetric(float64(st.Appended)*float64(shape.samples)/elapsed.Seconds(), "samples/s")
				b.ReportMetric(2*float64(st.Commits)/float64(st.Appended), "fsyncs/append")
			})
		}
	}
}

// BenchmarkDrain measures the forwarder's side: Peek up to 1000 entries past
// the last one read, Ack them in one call (fsync'd), repeat. The spool is
// refilled in rounds of 20,000 batches with the timer stopped, so that disk
// use stays bounded whatever b.N is.
func BenchmarkDrain(b *testing.B) {
	for _, shape := range benchShapes {
		b.Run(fmt.Sprintf("samples=%d", shape.samples), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "spool.db"), Options{Logger: quietLogger()})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			data := payload(0, shape.bytes)
			encode := func(uint64) ([]byte, error) { return data, nil }
			b.SetBytes(int64(shape.bytes))
			b.ResetTimer()
			var elapsed time.Duration
			var after uint64
			for drained := 0; drained < b.N; {
				b.StopTimer()
				fill := min(20_000, b.N-drained)
				var wg sync.WaitGroup
				for w := range 32 {
					wg.Go(func() {
						for i := w; i < fill; i += 32 {
							if _, err := s.Append(context.Background(), shape.samples, encode); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StartTimer()
				start := time.Now()
				for left := fill; left > 0; {
					es, err := s.Peek(after, 1000)
					if err != nil || len(es) == 0 {
						b.Fatalf("Peek after %d: %d entries, %v", after, len(es), err)
					}
					seqs := make([]uint64, len(es))
					for i, e := range es {
						seqs[i] = e.Seq
					}
					after = seqs[len(seqs)-1]
					if err := s.Ack(seqs...); err != nil {
						b.Fatal(err)
					}
					left -= len(es)
				}
				elapsed += time.Since(start)
				drained += fill
			}
			b.ReportMetric(float64(b.N)*float64(shape.samples)/elapsed.Seconds(), "samples/s")
		})
	}
}

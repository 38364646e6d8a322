package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/weftiot/weft/wire"
)

// memAppender stands in for the spool in these unit tests: it numbers and
// keeps what it is given, in memory. The spool's own tests prove durability;
// the agent's end-to-end tests use the real spool.
type memAppender struct {
	mu      sync.Mutex
	seq     uint64
	msgs    [][]byte
	counts  []int
	at      []time.Time
	fail    error
	appends chan struct{}
}

func newMemAppender() *memAppender { return &memAppender{appends: make(chan struct{}, 1000)} }

func (m *memAppender) Append(ctx context.Context, samples int, encode func(uint64) ([]byte, error)) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return 0, m.fail
	}
	m.seq++
	data, err := encode(m.seq)
	if err != nil {
		return 0, err
	}
	m.msgs = append(m.msgs, bytes.Clone(data)) // Append copies (Appender)
	m.counts = append(m.counts, samples)
	m.at = append(m.at, time.Now())
	m.appends <- struct{}{}
	return m.seq, nil
}

func (m *memAppender) batches(t *testing.T) []wire.Batch {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []wire.Batch
	for i, data := range m.msgs {
		var b wire.Batch
		if err := wire.DecodeBatch(data, &b); err != nil {
			t.Fatalf("batch %d does not decode: %v\n%s", i, err, data)
		}
		if len(b.Samples) != m.counts[i] {
			t.Errorf("batch %d: Append was told %d samples, message has %d", i, m.counts[i], len(b.Samples))
		}
		out = append(out, b)
	}
	return out
}

func TestBatcherSplitsByMaxSamples(t *testing.T) {
	app := newMemAppender()
	b := NewBatcher(app, Options{Agent: "a1", Site: "s1", MaxSamples: 100, FlushInterval: time.Hour})
	const n = 1050
	for i := 0; i < n; i++ {
		b.Add(wire.Sample{Device: "d", Point: "p", Value: wire.IntValue(int64(i)), TS: int64(i)})
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	batches := app.batches(t)
	if len(batches) != 11 {
		t.Fatalf("got %d batches, want 10 full ones and 1 of 50", len(batches))
	}
	next := int64(0)
	for i, bt := range batches {
		if bt.Agent != "a1" || bt.Site != "s1" || bt.Seq != uint64(i+1) {
			t.Errorf("batch %d: agent %q site %q seq %d", i, bt.Agent, bt.Site, bt.Seq)
		}
		want := 100
		if i == 10 {
			want = 50
		}
		if len(bt.Samples) != want {
			t.Errorf("batch %d has %d samples, want %d", i, len(bt.Samples), want)
		}
		for _, s := range bt.Samples {
			if s.Value.Int() != next {
				t.Fatalf("batch %d: sample %d where %d was next: order lost", i, s.Value.Int(), next)
			}
			next++
		}
	}
	st := b.Stats()
	if st.Samples != n || st.Appended != n || st.Batches != 11 || st.Lost != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestBatcherFlushesByInterval(t *testing.T) {
	app := newMemAppender()
	const interval = 100 * time.Millisecond
	b := NewBatcher(app, Options{Agent: "a", Site: "s", MaxSamples: 1000, FlushInterval: interval})
	defer b.Close(context.Background())
	start := time.Now()
	b.Add(wire.Sample{Device: "d", Point: "p", Value: wire.IntValue(1)})
	b.Add(wire.Sample{Device: "d", Point: "p", Value: wire.IntValue(2)})
	select {
	case <-app.appends:
	case <-time.After(5 * time.Second):
		t.Fatal("a partial batch was not flushed after the flush interval")
	}
	if waited := time.Since(start); waited < interval {
		t.Errorf("flushed after %v, before the flush interval %v", waited, interval)
	}
	if got := app.batches(t); len(got) != 1 || len(got[0].Samples) != 2 {
		t.Fatalf("want one batch of 2 samples, got %+v", got)
	}
	// Nothing more is written while nothing arrives.
	select {
	case <-app.appends:
		t.Fatal("an empty batch was appended")
	case <-time.After(3 * interval):
	}
}

func TestBatcherCloseFlushesAndDropsLateSamples(t *testing.T) {
	app := newMemAppender()
	b := NewBatcher(app, Options{Agent: "a", Site: "s", MaxSamples: 10, FlushInterval: time.Hour})
	for i := 0; i < 25; i++ {
		b.Add(wire.Sample{Device: "d", Point: "p", Value: wire.IntValue(int64(i))})
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, bt := range app.batches(t) {
		total += len(bt.Samples)
	}
	if total != 25 {
		t.Fatalf("after Close the spool holds %d samples, want 25", total)
	}
	b.Add(wire.Sample{Device: "d", Point: "late"})
	if st := b.Stats(); st.Lost != 1 || st.Samples != 25 {
		t.Errorf("a sample added after Close: stats %+v, want 1 lost", st)
	}
}

func TestBatcherCountsAppendErrors(t *testing.T) {
	app := newMemAppender()
	app.fail = errors.New("disk on fire")
	b := NewBatcher(app, Options{Agent: "a", Site: "s", MaxSamples: 5, FlushInterval: time.Hour})
	for i := 0; i < 12; i++ {
		b.Add(wire.Sample{Device: "d", Point: "p"})
	}
	b.Close(context.Background())
	if st := b.Stats(); st.AppendErrors != 3 || st.Lost != 12 || st.Appended != 0 {
		t.Errorf("stats %+v, want 3 failed appends and 12 lost", st)
	}
}

// Samples from many devices at once keep each device's order.
func TestBatcherConcurrentDevicesKeepOrder(t *testing.T) {
	app := newMemAppender()
	b := NewBatcher(app, Options{Agent: "a", Site: "s", MaxSamples: 64, FlushInterval: 5 * time.Millisecond})
	const devices, per = 8, 2000
	var wg sync.WaitGroup
	for d := 0; d < devices; d++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := NewFilter(map[string]Rule{"p": {}})
			emit := b.Emitter(f)
			for i := 0; i < per; i++ {
				emit(wire.Sample{Device: fmt.Sprint("dev", d), Point: "p", Value: wire.IntValue(int64(i)), TS: int64(i)})
			}
		}()
	}
	wg.Wait()
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	next := map[string]int64{}
	for _, bt := range app.batches(t) {
		for _, s := range bt.Samples {
			if s.Value.Int() != next[s.Device] {
				t.Fatalf("%s: got sample %d, want %d", s.Device, s.Value.Int(), next[s.Device])
			}
			next[s.Device]++
		}
	}
	for d := 0; d < devices; d++ {
		if got := next[fmt.Sprint("dev", d)]; got != per {
			t.Errorf("dev%d: %d samples arrived, want %d", d, got, per)
		}
	}
}

// BenchmarkPipeline measures the path from a driver's emit to an encoded
// batch handed to the spool: filter (scale + deadband), batching, encoding.
// The appender keeps nothing, so the figure excludes the spool's fsync
// (see the spool's BenchmarkAppend for that).
func BenchmarkPipeline(b *testing.B) {
	app := &discardAppender{}
	bt := NewBatcher(app, Options{Agent: "agent-01", Site: "weihai-textile-park", MaxSamples: 1000, FlushInterval: time.Hour})
	rules := map[string]Rule{}
	names := make([]string, 100)
	for i := range names {
		names[i] = fmt.Sprintf("reg_%03d", i)
		rules[names[i]] = Rule{Scale: f64(0.1)}
	}
	emit := bt.Emitter(NewFilter(rules))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		emit(wire.Sample{Device: "dye-01", Point: names[i%100], Value: wire.IntValue(int64(i % 5000)), TS: 1732540800123 + int64(i)})
	}
	bt.Close(context.Background())
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "samples/s")
	if app.samples != b.N {
		b.Fatalf("%d samples reached the appender, want %d", app.samples, b.N)
	}
}

type discardAppender struct {
	seq     uint64
	samples int
}

func (d *discardAppender) Append(ctx context.Context, n int, encode func(uint64) ([]byte, error)) (uint64, error) {
	d.seq++
	d.samples += n
	_, err := encode(d.seq)
	return d.seq, err
}

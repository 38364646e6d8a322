package ingest_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/weftiot/weft/gateway/internal/influx"
	"github.com/weftiot/weft/gateway/internal/ingest"
	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
)

// influxSink is the InfluxDB writer as an ingest.Sink, as the gateway
// wires it.
type influxSink struct{ w *influx.Writer }

func (s influxSink) Write(ctx context.Context, b []*wire.Batch) (int, int, int, error) {
	r, err := s.w.Write(ctx, b)
	return r.Points, r.Rejected, r.Skipped, err
}

// failures records WriteUntilStored's failed calls.
type failures struct {
	t     *testing.T
	mu    sync.Mutex
	waits []time.Duration
	first chan struct{} // closed at the first failure
}

func newFailures(t *testing.T) *failures { return &failures{t: t, first: make(chan struct{})} }

func (f *failures) failed(attempt int, err error, wait time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil || attempt != len(f.waits)+1 {
		f.t.Errorf("failed(attempt %d, %v) after %d failures", attempt, err, len(f.waits))
	}
	f.waits = append(f.waits, wait)
	if attempt == 1 {
		close(f.first)
	}
}

func (f *failures) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waits)
}

// TestWriteUntilStoredOutage stops a real influxd, writes, and starts it
// again: the write is retried with growing waits until it lands, and the
// points are in the database. With influxd down and ctx ending, it gives up.
func TestWriteUntilStoredOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("stops and restarts influxd")
	}
	db := testservers.Influx(t)
	w := influx.New(influx.Options{URL: db.URL, Bucket: db.Bucket, Token: db.Token, Timeout: time.Second}, slog.New(slog.DiscardHandler))
	defer w.Close()
	sink := influxSink{w}
	ts := time.Now().Add(-time.Hour).UnixMilli()
	b := &wire.Batch{Site: "s", Agent: "a1", Seq: 1}
	for i := range 10 {
		b.Samples = append(b.Samples, wire.Sample{Device: "d", Point: "p", TS: ts + int64(i), Quality: wire.Good, Value: wire.FloatValue(float64(i))})
	}

	db.Stop()
	f := newFailures(t)
	type result struct {
		w  ingest.Written
		ok bool
	}
	done := make(chan result, 1)
	go func() {
		w, ok := ingest.WriteUntilStored(context.Background(), sink, []*wire.Batch{b}, f.failed)
		done <- result{w, ok}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for f.count() < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := f.count(); n < 3 {
		t.Fatalf("%d failed writes in 20s with influxd down; want 3 or more", n)
	}
	db.Start()
	var r result
	select {
	case r = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("no successful write within 60s of influxd's return")
	}
	if !r.ok || r.w.Stored != 10 || r.w.Attempts != f.count()+1 {
		t.Errorf("WriteUntilStored = %+v, %v; want 10 stored on attempt %d", r.w, r.ok, f.count()+1)
	}
	f.mu.Lock()
	for i, wait := range f.waits {
		if want := min(100*time.Millisecond<<i, 30*time.Second); wait != want {
			t.Errorf("wait after failure %d = %v, want %v", i+1, wait, want)
		}
	}
	f.mu.Unlock()
	rows := db.Query(t, `SELECT count("value") FROM "weft"`)
	if len(rows) != 1 || len(rows[0].Values) != 1 || fmt.Sprint(rows[0].Values[0][1]) != "10" {
		t.Errorf("count in influxd: %+v, want 10", rows)
	}

	// Down, and ctx ends: it gives up without storing.
	db.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	f = newFailures(t)
	go func() {
		<-f.first
		cancel()
	}()
	res := make(chan bool, 1)
	go func() { _, ok := ingest.WriteUntilStored(ctx, sink, []*wire.Batch{b}, f.failed); res <- ok }()
	select {
	case ok := <-res:
		if ok {
			t.Error("WriteUntilStored reported success with influxd down")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WriteUntilStored went on after ctx ended")
	}
}

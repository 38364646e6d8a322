package ingest

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftiot/weft/wire"
)

// ackMsg is a received message that records when it is acknowledged. A
// stand-in for paho's message: the order of PUBACKs is not observable
// from outside a real client.
type ackMsg struct {
	id    uint16
	acked *[]uint16
	mu    *sync.Mutex
}

func (m ackMsg) Duplicate() bool   { return false }
func (m ackMsg) Qos() byte         { return 1 }
func (m ackMsg) Retained() bool    { return false }
func (m ackMsg) Topic() string     { return "weft/v1/s/a/data" }
func (m ackMsg) MessageID() uint16 { return m.id }
func (m ackMsg) Payload() []byte   { return nil }
func (m ackMsg) Ack() {
	m.mu.Lock()
	*m.acked = append(*m.acked, m.id)
	m.mu.Unlock()
}

// slowSink takes its time on some writes (a write that waits for the
// store's fsync, or lands on a busy moment) and counts writes at once. It
// stands in for InfluxDB, whose timing cannot be chosen.
type slowSink struct {
	slow   func(seq uint64) time.Duration
	now    atomic.Int32
	most   atomic.Int32
	stored atomic.Int32
	block  bool // a write of seq 0 waits for ctx to end
}

func (s *slowSink) Write(ctx context.Context, batches []*wire.Batch) (int, int, int, error) {
	n := s.now.Add(1)
	defer s.now.Add(-1)
	for {
		m := s.most.Load()
		if n <= m || s.most.CompareAndSwap(m, n) {
			break
		}
	}
	if s.block && batches[0].Seq == 0 {
		<-ctx.Done()
		return 0, 0, 0, ctx.Err()
	}
	time.Sleep(s.slow(batches[0].Seq))
	s.stored.Add(int32(len(batches)))
	return len(batches), 0, 0, nil
}

func writersIngest(sink Sink, writers int) *Ingest {
	return New(Options{Writers: writers, Sink: sink, Metrics: NewMetrics(prometheus.NewRegistry()),
		DrainTimeout: 100 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// feed hands n one-message groups (message id = batch seq = i) to the
// writer and returns the acknowledgement order.
func feed(t *testing.T, in *Ingest, ctx context.Context, n int) []uint16 {
	t.Helper()
	var mu sync.Mutex
	var acked []uint16
	done := make(chan struct{})
	go func() { defer close(done); in.write(ctx) }()
	for i := range n {
		in.groups <- &group{msgs: []mqtt.Message{ackMsg{id: uint16(i), acked: &acked, mu: &mu}},
			batches: []*wire.Batch{{Seq: uint64(i)}}, points: 1}
	}
	close(in.groups)
	<-done
	mu.Lock()
	defer mu.Unlock()
	return acked
}

// With several writers, groups are written at once, later ones may finish
// first, and every message is still acknowledged in the order received.
func TestWritersAcknowledgeInOrder(t *testing.T) {
	sink := &slowSink{slow: func(seq uint64) time.Duration {
		return time.Duration(seq%4) * 5 * time.Millisecond // 0, 5, 10, 15 ms: later groups finish first
	}}
	in := writersIngest(sink, 4)
	acked := feed(t, in, context.Background(), 200)
	if len(acked) != 200 || int(sink.stored.Load()) != 200 {
		t.Fatalf("%d acknowledged, %d stored; want 200 each", len(acked), sink.stored.Load())
	}
	if !slices.IsSorted(acked) {
		t.Errorf("acknowledged out of order: %v", acked[:20])
	}
	if sink.most.Load() < 2 {
		t.Errorf("at most %d writes at once with 4 writers", sink.most.Load())
	}
	if sink.most.Load() > 4 {
		t.Errorf("%d writes at once with 4 writers", sink.most.Load())
	}
}

// At shutdown, a group that could not be stored is not acknowledged, and
// neither is any group after it, even one that was stored: the broker
// redelivers them all, in order.
func TestWritersStopAtTheFirstUnstored(t *testing.T) {
	sink := &slowSink{slow: func(uint64) time.Duration { return 0 }, block: true}
	in := writersIngest(sink, 4)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the writer drains for DrainTimeout (100 ms), then gives up
	acked := feed(t, in, ctx, 10)
	if len(acked) != 0 {
		t.Errorf("acknowledged %v behind group 0, which was never stored", acked)
	}
	if sink.stored.Load() == 0 {
		t.Error("no later group was stored: the writers did not run at once")
	}
}

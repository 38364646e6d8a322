// Package spooltest is the conformance suite every spool.Queue passes: the
// bbolt spool and the in-memory queue alike.
package spooltest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/weftiot/weft/agent/internal/spool"
)

// Open returns a new, empty queue configured by opts. The suite closes it.
type Open func(t *testing.T, opts spool.Options) spool.Queue

// Run runs the suite against queues made by open.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, Open)
	}{
		{"FIFOAndSeq", testFIFO},
		{"PeekAfter", testPeekAfter},
		{"AckAnyOrder", testAck},
		{"EncodeErrorSkipsSeq", testEncodeError},
		{"DropOldest", testDropOldest},
		{"DropOldestInFlight", testDropInFlight},
		{"DropOldestWhileSending", testDropWhileSending},
		{"DropNewest", testDropNewest},
		{"TooLarge", testTooLarge},
		{"MaxAge", testMaxAge},
		{"Notify", testNotify},
		{"AppendAsyncOrder", testAppendAsync},
		{"ConcurrentExact", testConcurrent},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// Payload is the message the suite stores for seq: recognisable, size bytes.
func Payload(seq uint64, size int) []byte {
	b := bytes.Repeat([]byte{byte(seq)}, max(size, 20))
	copy(b, fmt.Sprintf("seq %016d", seq))
	return b
}

func add(t *testing.T, q spool.Queue, samples, size int) uint64 {
	t.Helper()
	seq, err := q.Append(context.Background(), samples, func(seq uint64) ([]byte, error) { return Payload(seq, size), nil })
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return seq
}

func all(t *testing.T, q spool.Queue) []spool.Entry {
	t.Helper()
	es, err := q.Peek(0, 1<<30)
	if err != nil {
		t.Fatalf("Peek: %v", err)
	}
	for i, e := range es {
		if !bytes.Equal(e.Data, Payload(e.Seq, len(e.Data))) {
			t.Fatalf("entry %d (seq %d) holds the wrong data", i, e.Seq)
		}
		if i > 0 && e.Seq <= es[i-1].Seq {
			t.Fatalf("Peek out of order: %d after %d", e.Seq, es[i-1].Seq)
		}
	}
	return es
}

func seqs(es []spool.Entry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func open(t *testing.T, o Open, opts spool.Options) spool.Queue {
	q := o(t, opts)
	t.Cleanup(func() { q.Close() })
	return q
}

func testFIFO(t *testing.T, o Open) {
	q := open(t, o, spool.Options{})
	first := add(t, q, 1, 50)
	for i := 1; i < 20; i++ {
		if seq := add(t, q, 1, 50); seq != first+uint64(i) {
			t.Fatalf("append %d got seq %d, want %d", i, seq, first+uint64(i))
		}
	}
	es := all(t, q)
	if len(es) != 20 || es[0].Seq != first || es[19].Seq != first+19 {
		t.Fatalf("stored %v", seqs(es))
	}
	if st := q.Stats(); st.LastSeq != first+19 || st.Batches != 20 || st.Bytes != 1000 || st.Samples != 20 || st.Appended != 20 {
		t.Fatalf("stats %+v", st)
	}
}

func testPeekAfter(t *testing.T, o Open) {
	q := open(t, o, spool.Options{})
	for range 10 {
		add(t, q, 2, 30)
	}
	es := all(t, q)
	base := es[0].Seq
	got, err := q.Peek(base+3, 4)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seqs(got)) != fmt.Sprint([]uint64{base + 4, base + 5, base + 6, base + 7}) {
		t.Fatalf("Peek(%d, 4) = %v", base+3, seqs(got))
	}
	// Entries are copies: changing one changes nothing stored.
	got[0].Data[0] ^= 0xff
	again, _ := q.Peek(base+3, 1)
	if !bytes.Equal(again[0].Data, Payload(base+4, 30)) {
		t.Fatal("Peek handed out the stored bytes, not a copy")
	}
	if got, _ := q.Peek(base+9, 5); len(got) != 0 {
		t.Fatalf("Peek past the end = %v", seqs(got))
	}
	if got, _ := q.Peek(0, 0); len(got) != 0 {
		t.Fatalf("Peek(0, 0) = %v", seqs(got))
	}
}

func testAck(t *testing.T, o Open) {
	q := open(t, o, spool.Options{})
	for range 6 {
		add(t, q, 5, 40)
	}
	b := all(t, q)[0].Seq
	if err := q.Ack(b+4, b, b+2, b+2, b+100); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if err := q.Ack(); err != nil {
		t.Fatalf("empty Ack: %v", err)
	}
	if got := seqs(all(t, q)); fmt.Sprint(got) != fmt.Sprint([]uint64{b + 1, b + 3, b + 5}) {
		t.Fatalf("after acks %v", got)
	}
	st := q.Stats()
	if st.Acked != 3 || st.Batches != 3 || st.Samples != 15 || st.Bytes != 120 {
		t.Fatalf("stats %+v", st)
	}
}

func testEncodeError(t *testing.T, o Open) {
	q := open(t, o, spool.Options{})
	a := add(t, q, 1, 20)
	boom := errors.New("boom")
	seq, err := q.Append(context.Background(), 1, func(uint64) ([]byte, error) { return nil, boom })
	if !errors.Is(err, boom) || seq != a+1 {
		t.Fatalf("Append = %d, %v; want seq %d and boom", seq, err, a+1)
	}
	if c := add(t, q, 1, 20); c != a+2 {
		t.Fatalf("next seq %d, want %d (a failed seq is never reused)", c, a+2)
	}
	if got := seqs(all(t, q)); fmt.Sprint(got) != fmt.Sprint([]uint64{a, a + 2}) {
		t.Fatalf("stored %v", got)
	}
}

func testDropOldest(t *testing.T, o Open) {
	q := open(t, o, spool.Options{MaxBytes: 500})
	for range 5 {
		add(t, q, 3, 100)
	}
	first := all(t, q)[0].Seq
	add(t, q, 7, 250) // evicts three
	es := all(t, q)
	st := q.Stats()
	if len(es) != 3 || es[0].Seq != first+3 || st.Bytes != 450 || st.Samples != 13 || st.DroppedOldest != 9 || st.DroppedNewest != 0 {
		t.Fatalf("stored %v, stats %+v", seqs(es), st)
	}
}

// A batch evicted by drop_oldest while Peek had handed it out (on its way
// to the broker) is not counted as dropped if its Ack comes: the broker
// has it. Without its Ack it counts as dropped when the next pass starts
// (a Peek from a lower sequence number, as after a reconnect). A batch
// evicted before it was handed out counts at once.
func testDropInFlight(t *testing.T, o Open) {
	q := open(t, o, spool.Options{MaxBytes: 300})
	a, b, c := add(t, q, 3, 100), add(t, q, 3, 100), add(t, q, 3, 100)
	if es, _ := q.Peek(0, 2); fmt.Sprint(seqs(es)) != fmt.Sprint([]uint64{a, b}) {
		t.Fatalf("Peek(0, 2) = %v", seqs(es))
	}
	add(t, q, 5, 100) // evicts a, in flight
	if st := q.Stats(); st.DroppedOldest != 0 {
		t.Fatalf("evicted in flight, counted as dropped at once: %+v", st)
	}
	if err := q.Ack(a); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.DroppedOldest != 0 || st.Acked != 1 {
		t.Fatalf("evicted in flight, then acknowledged: %+v, want nothing dropped, 1 acked", st)
	}
	add(t, q, 5, 100) // evicts b, in flight
	if st := q.Stats(); st.DroppedOldest != 0 {
		t.Fatalf("evicted in flight: %+v", st)
	}
	if es, _ := q.Peek(0, 1); len(es) != 1 || es[0].Seq != c { // a new pass: b's Ack is not coming
		t.Fatalf("Peek(0, 1) = %v", seqs(es))
	}
	if st := q.Stats(); st.DroppedOldest != 3 || st.Acked != 1 {
		t.Fatalf("after the next pass: %+v, want b's 3 samples dropped", st)
	}
	q.Ack(b)               // too late: already counted, and not counted twice
	d := add(t, q, 7, 100) // evicts c (handed out again) …
	e := add(t, q, 7, 100) // … and the first 5-sample batch, never handed out: counted at once
	if st := q.Stats(); st.DroppedOldest != 3+5 || st.Acked != 1 {
		t.Fatalf("after evicting one never handed out: %+v, want 8 dropped", st)
	}
	if es := all(t, q); len(es) != 3 || es[1].Seq != d || es[2].Seq != e {
		t.Fatalf("stored %v", seqs(es))
	}
	if st := q.Stats(); st.DroppedOldest != 3+5+3 {
		t.Fatalf("c was never acknowledged: %+v, want 11 dropped", st)
	}
}

// A sender slower than the writers: drop_oldest keeps evicting the head,
// which is what the sender has in flight. Every sample is exactly one of
// delivered (acknowledged by the sender), dropped, or still stored.
func testDropWhileSending(t *testing.T, o Open) {
	q := open(t, o, spool.Options{MaxBytes: 8_000})
	const writers, each, samples = 4, 100, 10
	const batches = writers * each
	var wg, ww sync.WaitGroup
	stop := make(chan struct{})
	for range writers {
		ww.Go(func() {
			for range each {
				add(t, q, samples, 500)
			}
		})
	}
	wg.Go(func() {
		ww.Wait()
		close(stop)
	})
	var delivered int
	wg.Go(func() {
		var after uint64
		for {
			es, err := q.Peek(after, 2)
			if err != nil {
				t.Errorf("Peek: %v", err)
				return
			}
			var ids []uint64
			for _, e := range es {
				ids = append(ids, e.Seq)
				after = e.Seq
			}
			time.Sleep(2 * time.Millisecond) // the PUBACK round trip
			if err := q.Ack(ids...); err != nil {
				t.Errorf("Ack: %v", err)
				return
			}
			delivered += len(ids)
			select {
			case <-stop:
				if len(es) == 0 {
					return
				}
			default:
			}
		}
	})
	wg.Wait()
	stored := len(all(t, q)) // a new pass: settles what is in limbo
	st := q.Stats()
	if want := uint64(batches-delivered-stored) * samples; st.DroppedOldest != want {
		t.Fatalf("delivered %d batches, %d stored, so %d samples dropped; the queue counts %d (%+v)", delivered, stored, want, st.DroppedOldest, st)
	}
	if st.Acked != uint64(delivered) {
		t.Fatalf("Acked %d, the sender delivered %d", st.Acked, delivered)
	}
	if st.DroppedOldest == 0 {
		t.Fatalf("nothing dropped: the sender kept up, the test tested nothing")
	}
}

func testDropNewest(t *testing.T, o Open) {
	q := open(t, o, spool.Options{MaxBytes: 500, Overflow: spool.DropNewest})
	for range 4 {
		add(t, q, 3, 100)
	}
	_, err := q.Append(context.Background(), 8, func(seq uint64) ([]byte, error) { return Payload(seq, 101), nil })
	if !errors.Is(err, spool.ErrFull) {
		t.Fatalf("Append over the bound = %v, want ErrFull", err)
	}
	add(t, q, 3, 100) // exactly full
	if _, err := q.Append(context.Background(), 4, func(seq uint64) ([]byte, error) { return Payload(seq, 20), nil }); !errors.Is(err, spool.ErrFull) {
		t.Fatalf("Append when full = %v, want ErrFull", err)
	}
	st := q.Stats()
	if st.Batches != 5 || st.Bytes != 500 || st.DroppedNewest != 12 || st.DroppedOldest != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func testTooLarge(t *testing.T, o Open) {
	for _, ov := range []spool.Overflow{spool.DropOldest, spool.DropNewest} {
		q := open(t, o, spool.Options{MaxBytes: 100, Overflow: ov})
		add(t, q, 1, 60)
		if _, err := q.Append(context.Background(), 9, func(seq uint64) ([]byte, error) { return Payload(seq, 101), nil }); !errors.Is(err, spool.ErrTooLarge) {
			t.Fatalf("%v: Append = %v, want ErrTooLarge", ov, err)
		}
		if st := q.Stats(); st.Batches != 1 || st.DroppedNewest != 9 {
			t.Fatalf("%v: stats %+v", ov, st)
		}
	}
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func testMaxAge(t *testing.T, o Open) {
	c := &clock{now: time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)}
	q := open(t, o, spool.Options{MaxAge: time.Hour, Now: c.Now, ExpireInterval: 10 * time.Millisecond})
	add(t, q, 4, 20)
	c.add(30 * time.Minute)
	add(t, q, 6, 20)
	if st := q.Stats(); st.OldestAge != 30*time.Minute || st.Batches != 2 {
		t.Fatalf("stats %+v", st)
	}
	c.add(31 * time.Minute) // the first expires, with no Append to trigger it
	deadline := time.Now().Add(5 * time.Second)
	for q.Stats().Batches != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("not expired: %+v", q.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	st := q.Stats()
	if st.DroppedExpired != 4 || st.DroppedOldest != 4 || st.Samples != 6 || st.OldestAge != 31*time.Minute {
		t.Fatalf("stats %+v", st)
	}
}

func testNotify(t *testing.T, o Open) {
	q := open(t, o, spool.Options{})
	select {
	case <-q.Notify():
		t.Fatal("notified before any append")
	default:
	}
	add(t, q, 1, 20)
	add(t, q, 1, 20)
	select {
	case <-q.Notify():
	case <-time.After(time.Second):
		t.Fatal("no notification after an append")
	}
}

func testAppendAsync(t *testing.T, o Open) {
	q := open(t, o, spool.Options{})
	var dones []<-chan error
	var prev uint64
	for range 30 {
		seq, done, err := q.AppendAsync(2, func(seq uint64) ([]byte, error) { return Payload(seq, 40), nil })
		if err != nil || (prev != 0 && seq != prev+1) {
			t.Fatalf("AppendAsync = %d, %v after %d", seq, err, prev)
		}
		prev = seq
		dones = append(dones, done)
	}
	for _, d := range dones {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
	if es := all(t, q); len(es) != 30 || es[29].Seq != prev {
		t.Fatalf("stored %v", seqs(es))
	}
}

// Writers and an acker at once: the backlog figures match what Peek finds,
// and stored + acked + dropped accounts for every sample.
func testConcurrent(t *testing.T, o Open) {
	q := open(t, o, spool.Options{MaxBytes: 20_000})
	const writers, each, samples = 4, 100, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				size := 50 + (w*each+i)%200
				if _, err := q.Append(context.Background(), samples, func(seq uint64) ([]byte, error) { return Payload(seq, size), nil }); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		var after uint64
		for range 60 {
			es, err := q.Peek(after, 9)
			if err != nil {
				t.Errorf("Peek: %v", err)
				return
			}
			var ids []uint64
			for _, e := range es {
				ids = append(ids, e.Seq)
				after = e.Seq
			}
			if err := q.Ack(ids...); err != nil {
				t.Errorf("Ack: %v", err)
				return
			}
		}
	})
	wg.Wait()
	es := all(t, q)
	var bytes, samp int64
	for _, e := range es {
		bytes += int64(len(e.Data))
		samp += int64(e.Samples)
	}
	st := q.Stats()
	if st.Batches != int64(len(es)) || st.Bytes != bytes || st.Samples != samp || st.Bytes > 20_000 {
		t.Fatalf("stats %+v; Peek finds %d batches, %d bytes, %d samples", st, len(es), bytes, samp)
	}
	if len(es) > 0 && !st.OldestAppended.Equal(es[0].Appended) {
		t.Fatalf("OldestAppended %v, head appended %v", st.OldestAppended, es[0].Appended)
	}
	if got := uint64(st.Samples) + st.DroppedOldest + st.Acked*samples; got != writers*each*samples {
		t.Fatalf("stored %d + dropped %d + acked %d samples != %d appended", st.Samples, st.DroppedOldest, st.Acked*samples, writers*each*samples)
	}
}

func testClosed(t *testing.T, o Open) {
	q := o(t, spool.Options{})
	add(t, q, 1, 20)
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := q.Append(context.Background(), 1, func(uint64) ([]byte, error) { return []byte("x"), nil }); !errors.Is(err, spool.ErrClosed) {
		t.Fatalf("Append after Close = %v", err)
	}
	if _, err := q.Peek(0, 1); !errors.Is(err, spool.ErrClosed) {
		t.Fatalf("Peek after Close = %v", err)
	}
	if err := q.Ack(1); !errors.Is(err, spool.ErrClosed) {
		t.Fatalf("Ack after Close = %v", err)
	}
	if err := q.Close(); !errors.Is(err, spool.ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
}

package spool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for MaxAge tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestDropOldestAtMaxBytes(t *testing.T) {
	s, _ := openT(t, Options{MaxBytes: 1000})
	appendN(t, s, 10, 3, 100) // exactly full
	if st := s.Stats(); st.Bytes != 1000 || st.DroppedOldest != 0 {
		t.Fatalf("full: %+v", st)
	}
	appendN(t, s, 3, 5, 100) // evicts 1, 2, 3
	st := s.Stats()
	if st.Batches != 10 || st.Bytes != 1000 || st.Samples != 7*3+3*5 || st.DroppedOldest != 9 || st.DroppedNewest != 0 {
		t.Fatalf("after overflow: %+v", st)
	}
	if got := seqsOf(peekAll(t, s)); fmt.Sprint(got) != "[4 5 6 7 8 9 10 11 12 13]" {
		t.Fatalf("stored %v", got)
	}
	// A bigger batch evicts as many as it needs. The peekAll above handed
	// 4…13 out (in flight, for all the spool knows), so the four evicted
	// count as dropped only when the next pass starts without their Acks.
	appendN(t, s, 1, 100, 350) // evicts 4, 5, 6, 7 (400 bytes)
	st = s.Stats()
	if st.Batches != 7 || st.Bytes != 950 || st.DroppedOldest != 9 {
		t.Fatalf("after big batch: %+v", st)
	}
	if got := seqsOf(peekAll(t, s)); fmt.Sprint(got) != "[8 9 10 11 12 13 14]" {
		t.Fatalf("stored %v", got)
	}
	if st = s.Stats(); st.DroppedOldest != 9+4*3 {
		t.Fatalf("after the next pass: %+v", st)
	}
}

func TestDropNewestAtMaxBytes(t *testing.T) {
	s, path := openT(t, Options{MaxBytes: 1000, Overflow: DropNewest})
	appendN(t, s, 9, 3, 100)
	// 950 would not fit: refused, a sequence number is spent.
	_, err := s.Append(context.Background(), 4, func(seq uint64) ([]byte, error) { return payload(seq, 150), nil })
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Append over max_bytes = %v, want ErrFull", err)
	}
	appendN(t, s, 1, 3, 100) // exactly full now
	// Full: refused before encode is even called.
	called := false
	_, err = s.Append(context.Background(), 6, func(seq uint64) ([]byte, error) { called = true; return payload(seq, 10), nil })
	if !errors.Is(err, ErrFull) || called {
		t.Fatalf("Append when full = %v (encode called %v), want ErrFull without encoding", err, called)
	}
	st := s.Stats()
	if st.Batches != 10 || st.Bytes != 1000 || st.Samples != 30 || st.DroppedNewest != 10 || st.DroppedOldest != 0 {
		t.Fatalf("stats = %+v", st)
	}
	got := seqsOf(peekAll(t, s))
	if fmt.Sprint(got) != "[1 2 3 4 5 6 7 8 9 11]" {
		t.Fatalf("stored %v", got)
	}
	// Room again after an ack.
	s.Ack(1)
	appendN(t, s, 1, 1, 100)
	// Restart: the backlog accounting is rebuilt from the file.
	s.Close()
	s = reopenT(t, path, Options{MaxBytes: 1000, Overflow: DropNewest})
	if st := s.Stats(); st.Batches != 10 || st.Bytes != 1000 || st.Samples != 28 || st.LastSeq != 12 {
		t.Fatalf("after reopen: %+v", st)
	}
}

func TestTooLarge(t *testing.T) {
	for _, o := range []Overflow{DropOldest, DropNewest} {
		t.Run(o.String(), func(t *testing.T) {
			s, _ := openT(t, Options{MaxBytes: 100, Overflow: o})
			appendN(t, s, 1, 1, 50)
			_, err := s.Append(context.Background(), 9, func(seq uint64) ([]byte, error) { return payload(seq, 101), nil })
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Append = %v, want ErrTooLarge", err)
			}
			if st := s.Stats(); st.Batches != 1 || st.DroppedNewest != 9 || st.DroppedOldest != 0 {
				t.Fatalf("stats = %+v", st)
			}
		})
	}
}

func TestMaxAge(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	s, _ := openT(t, Options{MaxAge: time.Hour, Now: clock.Now, ExpireInterval: 10 * time.Millisecond})
	appendN(t, s, 3, 2, 10)
	clock.Add(40 * time.Minute)
	appendN(t, s, 2, 5, 10)
	if st := s.Stats(); st.OldestAge != 40*time.Minute {
		t.Fatalf("OldestAge = %v, want 40m", st.OldestAge)
	}
	// On Append: the first three expire.
	clock.Add(21 * time.Minute)
	appendN(t, s, 1, 1, 10)
	st := s.Stats()
	if st.Batches != 3 || st.DroppedOldest != 6 || st.DroppedExpired != 6 || st.OldestAge != 21*time.Minute {
		t.Fatalf("after expiry on append: %+v", st)
	}
	// On the timer, with no Append.
	clock.Add(time.Hour + time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Batches != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("timer did not expire: %+v", s.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	st = s.Stats()
	if st.DroppedExpired != 6+11 || st.DroppedOldest != 17 || st.Samples != 0 || st.Bytes != 0 || !st.OldestAppended.IsZero() {
		t.Fatalf("after timer: %+v", st)
	}
}

// An edge box without a battery-backed clock boots in 1970; when NTP sets
// the clock, its backlog must not all expire at once.
func TestMaxAgeIgnoresUnsetClock(t *testing.T) {
	clock := &fakeClock{now: time.Unix(3600, 0)}
	s, _ := openT(t, Options{MaxAge: time.Hour, Now: clock.Now})
	appendN(t, s, 2, 1, 10)
	clock.now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	appendN(t, s, 1, 1, 10)
	if st := s.Stats(); st.Batches != 3 || st.DroppedExpired != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestStatsExactUnderConcurrency(t *testing.T) {
	s, _ := openT(t, Options{MaxBytes: 50_000})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				size := 100 + (w*200+i)%400
				s.Append(context.Background(), 10, func(seq uint64) ([]byte, error) { return payload(seq, size), nil })
			}
		})
	}
	wg.Go(func() {
		var after uint64
		for range 100 {
			es, _ := s.Peek(after, 7)
			var seqs []uint64
			for _, e := range es {
				seqs = append(seqs, e.Seq)
				after = e.Seq
			}
			s.Ack(seqs...)
		}
	})
	wg.Wait()
	st := s.Stats()
	es := peekAll(t, s)
	var bytes, samples int64
	for _, e := range es {
		bytes += int64(len(e.Data))
		samples += int64(e.Samples)
	}
	if st.Batches != int64(len(es)) || st.Bytes != bytes || st.Samples != samples || !st.OldestAppended.Equal(es[0].Appended) {
		t.Fatalf("stats %+v, file holds %d batches %d bytes %d samples", st, len(es), bytes, samples)
	}
	if st.Bytes > 50_000 {
		t.Fatalf("bytes %d over max_bytes", st.Bytes)
	}
	if total := uint64(st.Samples) + st.DroppedOldest + st.Acked*10; total != 800*10 {
		t.Fatalf("samples stored %d + dropped %d + acked %d != appended %d", st.Samples, st.DroppedOldest, st.Acked*10, 8000)
	}
}

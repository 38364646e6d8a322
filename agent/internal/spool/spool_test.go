package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openT opens a spool in a fresh temp dir; opts.Logger defaults to quiet.
func openT(t testing.TB, opts Options) (*Spool, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data", "spool.db")
	return reopenT(t, path, opts), path
}

func reopenT(t testing.TB, path string, opts Options) *Spool {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// payload makes a recognisable message for seq.
func payload(seq uint64, size int) []byte {
	b := make([]byte, max(size, 24))
	copy(b, fmt.Sprintf("batch %020d", seq))
	for i := 24; i < len(b); i++ {
		b[i] = byte(seq) + byte(i)
	}
	return b
}

func appendN(t testing.TB, s *Spool, n, samples, size int) []uint64 {
	t.Helper()
	seqs := make([]uint64, 0, n)
	for range n {
		seq, err := s.Append(context.Background(), samples, func(seq uint64) ([]byte, error) { return payload(seq, size), nil })
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		seqs = append(seqs, seq)
	}
	return seqs
}

func peekAll(t testing.TB, s *Spool) []Entry {
	t.Helper()
	es, err := s.Peek(0, 1<<30)
	if err != nil {
		t.Fatalf("Peek: %v", err)
	}
	return es
}

func seqsOf(es []Entry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func TestAppendPeekAckOrder(t *testing.T) {
	now := time.Date(2026, 11, 25, 19, 30, 0, 0, time.UTC)
	s, _ := openT(t, Options{Now: func() time.Time { return now }})
	seqs := appendN(t, s, 10, 7, 100)
	for i, seq := range seqs {
		if seq != uint64(i+1) {
			t.Fatalf("seq %d = %d, want %d", i, seq, i+1)
		}
	}
	es := peekAll(t, s)
	if len(es) != 10 {
		t.Fatalf("Peek: %d entries, want 10", len(es))
	}
	for i, e := range es {
		if e.Seq != seqs[i] || string(e.Data) != string(payload(e.Seq, 100)) || e.Samples != 7 || !e.Appended.Equal(now) {
			t.Fatalf("entry %d = seq %d samples %d appended %v data %q", i, e.Seq, e.Samples, e.Appended, e.Data[:24])
		}
	}
	es, _ = s.Peek(4, 3)
	if got := seqsOf(es); fmt.Sprint(got) != "[5 6 7]" {
		t.Fatalf("Peek(4, 3) = %v, want [5 6 7]", got)
	}
	// Acks in any order, repeated, and for missing seqs.
	if err := s.Ack(3, 1, 99, 3); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if err := s.Ack(2); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if got := seqsOf(peekAll(t, s)); fmt.Sprint(got) != "[4 5 6 7 8 9 10]" {
		t.Fatalf("after acks = %v", got)
	}
	st := s.Stats()
	if st.Batches != 7 || st.Bytes != 700 || st.Samples != 49 || st.Acked != 3 || st.Appended != 10 || st.LastSeq != 10 {
		t.Fatalf("stats = %+v", st)
	}
	if !st.OldestAppended.Equal(now) {
		t.Fatalf("OldestAppended = %v", st.OldestAppended)
	}
}

func TestSeqPersistsAcrossRestart(t *testing.T) {
	s, path := openT(t, Options{})
	appendN(t, s, 5, 1, 10)
	if err := s.Ack(1, 2, 3, 4, 5); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopenT(t, path, Options{})
	if st := s.Stats(); st.LastSeq != 5 || st.Batches != 0 {
		t.Fatalf("after reopen: %+v", st)
	}
	if got := appendN(t, s, 1, 1, 10)[0]; got != 6 {
		t.Fatalf("first seq after restart = %d, want 6", got)
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	s, path := openT(t, Options{})
	appendN(t, s, 1, 1, 10)
	start := time.Now()
	_, err := Open(path, Options{Logger: quietLogger()})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("second Open took %v; it must fail fast", d)
	}
	// The first one still works.
	if got := len(peekAll(t, s)); got != 1 {
		t.Fatalf("first spool holds %d entries", got)
	}
}

func TestGroupCommit(t *testing.T) {
	s, _ := openT(t, Options{})
	const writers, each = 16, 50
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() { appendN(t, s, each, 10, 1000) })
	}
	wg.Wait()
	st := s.Stats()
	if st.Appended != writers*each || st.Batches != writers*each {
		t.Fatalf("stats = %+v", st)
	}
	if st.Commits >= writers*each {
		t.Fatalf("%d commits for %d appends: no group commit", st.Commits, writers*each)
	}
	got := seqsOf(peekAll(t, s))
	for i, seq := range got {
		if seq != uint64(i+1) {
			t.Fatalf("entry %d has seq %d: not contiguous", i, seq)
		}
	}
	t.Logf("%d appends in %d commits", st.Appended, st.Commits)
}

func TestNotify(t *testing.T) {
	s, _ := openT(t, Options{})
	select {
	case <-s.Notify():
		t.Fatal("notified before any append")
	default:
	}
	appendN(t, s, 3, 1, 10)
	select {
	case <-s.Notify():
	default:
		t.Fatal("no notification after append")
	}
}

func TestEncodeErrorSkipsSeq(t *testing.T) {
	s, _ := openT(t, Options{})
	boom := errors.New("boom")
	if _, err := s.Append(context.Background(), 1, func(uint64) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("Append = %v, want boom", err)
	}
	if got := appendN(t, s, 1, 1, 10)[0]; got != 2 {
		t.Fatalf("seq after a failed encode = %d, want 2", got)
	}
	if got := seqsOf(peekAll(t, s)); fmt.Sprint(got) != "[2]" {
		t.Fatalf("stored %v", got)
	}
}

func TestClosed(t *testing.T) {
	s, _ := openT(t, Options{})
	s.Close()
	if _, err := s.Append(context.Background(), 1, func(seq uint64) ([]byte, error) { return []byte("x"), nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v", err)
	}
	if _, err := s.Peek(0, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Peek after Close = %v", err)
	}
	if err := s.Ack(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ack after Close = %v", err)
	}
}

func TestAppendAsyncInFlight(t *testing.T) {
	s, _ := openT(t, Options{})
	var dones []<-chan error
	for i := range 50 {
		seq, done, err := s.AppendAsync(3, func(seq uint64) ([]byte, error) { return payload(seq, 100), nil })
		if err != nil || seq != uint64(i+1) {
			t.Fatalf("AppendAsync %d = %d, %v", i, seq, err)
		}
		dones = append(dones, done)
	}
	for i, d := range dones {
		if err := <-d; err != nil {
			t.Fatalf("batch %d: %v", i+1, err)
		}
	}
	st := s.Stats()
	if st.Batches != 50 || st.Commits >= 50 {
		t.Fatalf("stats %+v: 50 batches in flight should share commits", st)
	}
	if got := seqsOf(peekAll(t, s)); len(got) != 50 || got[49] != 50 {
		t.Fatalf("stored %v", got)
	}
}

// Close commits the appends already under way: each Append returns either
// nil (and the batch is in the file after reopening) or ErrClosed.
func TestCloseCommitsInFlight(t *testing.T) {
	s, path := openT(t, Options{})
	var mu sync.Mutex
	var ok []uint64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				seq, err := s.Append(context.Background(), 1, func(seq uint64) ([]byte, error) { return payload(seq, 100), nil })
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				mu.Lock()
				ok = append(ok, seq)
				mu.Unlock()
			}
		})
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(ok)
		mu.Unlock()
		if n >= 10 || time.Now().After(deadline) {
			break
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	s = reopenT(t, path, Options{})
	stored := map[uint64]bool{}
	for _, e := range peekAll(t, s) {
		stored[e.Seq] = true
	}
	for _, seq := range ok {
		if !stored[seq] {
			t.Fatalf("seq %d: Append returned nil before Close, but it is not in the file", seq)
		}
	}
	if len(ok) == 0 {
		t.Fatal("no append succeeded before Close")
	}
	t.Logf("%d appends before Close, %d stored", len(ok), len(stored))
}

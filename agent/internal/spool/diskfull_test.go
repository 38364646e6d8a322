package spool

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// tmpfs mounts a small tmpfs for a real ENOSPC. It needs root (or
// CAP_SYS_ADMIN); elsewhere the test is skipped, saying so.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a %s tmpfs to fill (needs root): %v: %s", size, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func TestDiskFullDropOldest(t *testing.T) {
	dir := tmpfs(t, "2m")
	path := filepath.Join(dir, "spool.db")
	s := reopenT(t, path, Options{})
	var ok, failed int
	var lastSeq uint64
	for range 1000 { // 8 MB into 2 MB
		seq, err := s.Append(context.Background(), 10, func(seq uint64) ([]byte, error) { return payload(seq, 8000), nil })
		if err != nil {
			failed++
			if !errors.Is(err, ErrDiskFull) {
				t.Fatalf("Append: %v, want ErrDiskFull", err)
			}
			continue
		}
		ok++
		lastSeq = seq
	}
	st := s.Stats()
	t.Logf("%d stored, %d failed; stats %+v", ok, failed, st)
	if st.WriteErrors == 0 || st.DroppedOldest == 0 {
		t.Fatalf("a full disk went unreported: %+v", st)
	}
	if ok < 900 {
		t.Fatalf("only %d of 1000 appends succeeded: drop_oldest should make room", ok)
	}
	es := peekAll(t, s)
	if len(es) == 0 || es[len(es)-1].Seq != lastSeq || int64(len(es)) != st.Batches {
		t.Fatalf("stored %d entries (last %v), stats %d, last appended %d", len(es), seqsOf(es[len(es)-1:]), st.Batches, lastSeq)
	}
	if total := uint64(st.Samples) + st.DroppedOldest + st.DroppedNewest; total != 10000 {
		t.Fatalf("samples: %d stored + %d dropped oldest + %d dropped newest != 10000", st.Samples, st.DroppedOldest, st.DroppedNewest)
	}
	// Reopens intact.
	s.Close()
	s = reopenT(t, path, Options{})
	if got := s.Stats(); got.Batches != st.Batches || got.CorruptResets != 0 {
		t.Fatalf("after reopen: %+v", got)
	}
}

func TestDiskFullDropNewest(t *testing.T) {
	dir := tmpfs(t, "2m")
	path := filepath.Join(dir, "spool.db")
	s := reopenT(t, path, Options{Overflow: DropNewest})
	var full int
	for range 400 {
		_, err := s.Append(context.Background(), 10, func(seq uint64) ([]byte, error) { return payload(seq, 8000), nil })
		if err != nil {
			if !errors.Is(err, ErrFull) || !errors.Is(err, ErrDiskFull) {
				t.Fatalf("Append: %v, want ErrFull and ErrDiskFull", err)
			}
			full++
		}
	}
	st := s.Stats()
	if full == 0 || st.DroppedNewest != uint64(full*10) || !st.DiskFull || st.DroppedOldest != 0 {
		t.Fatalf("%d refused; stats %+v", full, st)
	}
	// Draining makes room again.
	es := peekAll(t, s)
	var seqs []uint64
	for _, e := range es[:len(es)/2] {
		seqs = append(seqs, e.Seq)
	}
	if err := s.Ack(seqs...); err != nil {
		t.Fatalf("Ack on a full disk: %v", err)
	}
	appendN(t, s, 5, 10, 8000)
	if st := s.Stats(); st.DiskFull {
		t.Fatalf("still full after draining: %+v", st)
	}
}

// An agent restarted on a full disk must come up (and report), not fail to
// open its spool and restart in a loop.
func TestOpenOnFullDisk(t *testing.T) {
	dir := tmpfs(t, "2m")
	path := filepath.Join(dir, "spool.db")
	s := reopenT(t, path, Options{})
	appendN(t, s, 50, 10, 8000)
	s.Close()
	// Fill what is left.
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := filler.Write(buf); err != nil {
			break
		}
	}
	filler.Close()

	s, err = Open(path, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Open on a full disk: %v", err)
	}
	defer s.Close()
	if st := s.Stats(); st.Batches != 50 {
		t.Fatalf("stats %+v", st)
	}
	if got := len(peekAll(t, s)); got != 50 {
		t.Fatalf("Peek found %d", got)
	}
	// Appending uses the file's free pages, then evicts the oldest to make
	// room, or reports the full disk; never anything else.
	var appendErr error
	for range 100 {
		_, err := s.Append(context.Background(), 10, func(seq uint64) ([]byte, error) { return payload(seq, 8000), nil })
		if err != nil && !errors.Is(err, ErrDiskFull) {
			t.Fatalf("Append on a full disk: %v", err)
		}
		if err != nil {
			appendErr = err
		}
	}
	st := s.Stats()
	if st.WriteErrors == 0 {
		t.Fatalf("the full disk went unreported: %+v", st)
	}
	t.Logf("last append error %v; stats %+v", appendErr, st)
}

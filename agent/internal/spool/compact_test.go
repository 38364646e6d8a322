package spool

import (
	"os"
	"testing"
	"time"
)

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// Steady churn: bbolt reuses the pages acks free, so the file does not grow
// with the number of batches that went through it. Compaction is off here
// to show that page reuse alone bounds it.
func TestChurnFileBounded(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	// NoSync: the file's growth, not durability, is under test.
	s, path := openT(t, Options{NoSync: true, CompactMinBytes: -1})
	var after uint64
	var peak int64
	for i := 0; i < n; i += 10 {
		appendN(t, s, 10, 100, 1000)
		es, err := s.Peek(after, 100)
		if err != nil {
			t.Fatal(err)
		}
		seqs := make([]uint64, len(es))
		for j, e := range es {
			seqs[j] = e.Seq
			after = e.Seq
		}
		if err := s.Ack(seqs...); err != nil {
			t.Fatal(err)
		}
		if i%5000 == 0 {
			peak = max(peak, fileSize(t, path))
		}
	}
	size := fileSize(t, path)
	st := s.Stats()
	t.Logf("%d batches through, file %d bytes (peak %d), %d stored", n, size, peak, st.Batches)
	if st.Appended != uint64(n) || st.Acked != uint64(n) || st.Batches != 0 {
		t.Fatalf("stats %+v", st)
	}
	if size > 1<<20 {
		t.Fatalf("file grew to %d bytes for a backlog of at most 10 KB", size)
	}
}

// After a long outage the file has grown; once the backlog drains, the
// spool compacts it and keeps the live entries and the sequence.
func TestCompactAfterDrain(t *testing.T) {
	opts := Options{NoSync: true, CompactMinBytes: 4 << 20}
	s, path := openT(t, opts)
	seqs := appendN(t, s, 2000, 100, 10_000) // 20 MB backlog
	big := fileSize(t, path)
	if err := s.Ack(seqs[:1990]...); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 1, 1, 10) // the committer checks after a commit
	// ... after it has answered the append: wait for the check to run.
	st := s.Stats()
	for deadline := time.Now().Add(10 * time.Second); st.Compactions == 0 && time.Now().Before(deadline); st = s.Stats() {
		time.Sleep(10 * time.Millisecond)
	}
	small := fileSize(t, path)
	t.Logf("file %d bytes with the backlog, %d after draining and compacting", big, small)
	if st.Compactions != 1 || small > big/10 {
		t.Fatalf("not compacted: %d -> %d bytes, stats %+v", big, small, st)
	}
	es := peekAll(t, s)
	if len(es) != 11 || es[0].Seq != 1991 || es[10].Seq != 2001 || string(es[0].Data) != string(payload(1991, 10_000)) {
		t.Fatalf("after compaction: %v", seqsOf(es))
	}
	if seq := appendN(t, s, 1, 1, 10)[0]; seq != 2002 {
		t.Fatalf("seq after compaction = %d, want 2002", seq)
	}
	s.Close()
	s = reopenT(t, path, opts)
	if st := s.Stats(); st.Batches != 12 || st.LastSeq != 2002 {
		t.Fatalf("after reopen: %+v", st)
	}
	if _, err := os.Stat(path + ".compact"); !os.IsNotExist(err) {
		t.Fatalf("compaction left its temporary file: %v", err)
	}
}

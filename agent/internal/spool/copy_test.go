package spool

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
)

// The spool copies what encode returns before Append returns: the pipeline
// encodes every batch into one reused buffer.
func TestAppendCopiesTheEncodedBatch(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "spool.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	buf := make([]byte, 0, 64)
	want := map[uint64][]byte{}
	for i := range 3 {
		seq, err := s.Append(context.Background(), 1, func(seq uint64) ([]byte, error) {
			buf = append(buf[:0], "batch "...)
			buf = append(buf, byte('a'+i))
			return buf, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want[seq] = bytes.Clone(buf)
		// The caller reuses its buffer at once.
		for j := range buf {
			buf[j] = 'x'
		}
	}
	got, err := s.Peek(0, 10)
	if err != nil || len(got) != 3 {
		t.Fatalf("peek: %d entries, %v", len(got), err)
	}
	for _, e := range got {
		if !bytes.Equal(e.Data, want[e.Seq]) {
			t.Errorf("seq %d: stored %q, want %q", e.Seq, e.Data, want[e.Seq])
		}
	}
	if st := s.Stats(); st.Bytes != int64(3*len("batch a")) {
		t.Errorf("Stats().Bytes = %d, want %d (the batches' own length, not the records')", st.Bytes, 3*len("batch a"))
	}
}

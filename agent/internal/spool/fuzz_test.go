package spool

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FuzzOpen writes arbitrary bytes as spool.db: Open must not panic or hang,
// and must end with a working spool (the file set aside when bbolt or the
// checks reject it, the entries that survive intact).
func FuzzOpen(f *testing.F) {
	// Seeds: a real spool file with a backlog, and damaged copies of it.
	dir := f.TempDir()
	s, err := Open(filepath.Join(dir, "seed.db"), Options{Logger: quietLogger()})
	if err != nil {
		f.Fatal(err)
	}
	for i := range 40 {
		s.Append(context.Background(), i, func(seq uint64) ([]byte, error) { return payload(seq, 100), nil })
	}
	s.Ack(1, 2, 3)
	s.Close()
	good, err := os.ReadFile(filepath.Join(dir, "seed.db"))
	if err != nil {
		f.Fatal(err)
	}
	// bbolt grows its file ahead of use; the tail past the high-water mark
	// is zeros that only slow the fuzzer down.
	if fd, err := os.Open(filepath.Join(dir, "seed.db")); err == nil {
		m0, err0 := readMeta(fd, 0)
		m1, err1 := readMeta(fd, int64(m0.pageSize))
		fd.Close()
		if err0 == nil && err1 == nil {
			hwm := int(max(m0.pgid, m1.pgid)) * int(m0.pageSize)
			good = good[:min(hwm, len(good))]
		}
	}
	f.Logf("seed file: %d bytes", len(good))
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte("not a bbolt file"))
	f.Add(good[:len(good)/2])
	f.Add(good[:3*4096])
	for _, off := range []int{2*4096 + 40, 3*4096 + 16, 4*4096 + 100, len(good) - 4096} {
		if off >= 0 && off < len(good) {
			b := append([]byte(nil), good...)
			for j := off; j < off+8 && j < len(b); j++ {
				b[j] ^= 0xA5
			}
			f.Add(b)
		}
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "spool.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path, Options{Logger: quietLogger(), NoSync: true, OpenTimeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		es, err := s.Peek(0, 1000)
		if err != nil {
			t.Fatalf("Peek: %v", err)
		}
		var last uint64
		var half []uint64
		for i, e := range es {
			if e.Seq <= last {
				t.Fatalf("Peek out of order: %d after %d", e.Seq, last)
			}
			last = e.Seq
			if i%2 == 0 {
				half = append(half, e.Seq)
			}
		}
		// Deleting rewrites the damaged tree's pages: the commit path
		// must cope as well as the read path.
		if err := s.Ack(half...); err != nil {
			t.Fatalf("Ack: %v", err)
		}
		seq, err := s.Append(context.Background(), 1, func(seq uint64) ([]byte, error) { return []byte("x"), nil })
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if seq <= last {
			t.Fatalf("Append got seq %d, not above the stored %d", seq, last)
		}
		if err := s.Ack(seq); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	})
}

// A file locked by something other than a Weft spool (a bbolt tool left
// open) makes Open fail after OpenTimeout, not hang, and not set it aside.
func TestOpenLockedByOtherTimesOut(t *testing.T) {
	s, path := openT(t, Options{})
	appendN(t, s, 3, 1, 10)
	s.Close()
	other, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, err = Open(path, Options{Logger: quietLogger(), OpenTimeout: 200 * time.Millisecond})
	if err == nil || !errors.Is(err, ErrLocked) {
		t.Fatalf("Open = %v, want ErrLocked", err)
	}
	if aside := setAsideFiles(t, path); len(aside) != 0 {
		t.Fatalf("a locked file was set aside: %v", aside)
	}
}

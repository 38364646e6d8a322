package spool

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftiot/weft/internal/testlog"
)

// textLogger logs text lines into b, which the test reads while the spool
// may still write.
func textLogger(b *testlog.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

// corruptFile builds a spool with a backlog, closes it, and lets damage
// change the file.
func corruptFile(t *testing.T, damage func(t *testing.T, path string)) (path string, lastSeq uint64) {
	t.Helper()
	s, path := openT(t, Options{NoSync: true}) // durability is not under test here
	seqs := appendN(t, s, 300, 10, 200)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	damage(t, path)
	return path, seqs[len(seqs)-1]
}

func setAsideFiles(t *testing.T, path string) []string {
	t.Helper()
	m, err := filepath.Glob(path + ".corrupt-*")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkFreshAndWorking asserts that Open set the damaged file aside loudly
// and that the new spool works and continues the sequence.
func checkFreshAndWorking(t *testing.T, path string, lastSeq uint64) {
	t.Helper()
	var logs testlog.Buffer
	s := reopenT(t, path, Options{Logger: textLogger(&logs)})
	aside := setAsideFiles(t, path)
	if len(aside) != 1 {
		t.Fatalf("set-aside files %v, want one", aside)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "moved_to="+aside[0]) {
		t.Fatalf("no loud log line naming %s:\n%s", aside[0], logs.String())
	}
	st := s.Stats()
	if st.CorruptResets != 1 {
		t.Fatalf("stats after reset = %+v", st)
	}
	seq := appendN(t, s, 1, 1, 10)[0]
	if seq <= lastSeq {
		t.Fatalf("first seq after reset = %d, not above %d: the gateway would see duplicates", seq, lastSeq)
	}
	got := peekAll(t, s)
	if len(got) != int(st.Batches)+1 || got[len(got)-1].Seq != seq {
		t.Fatalf("fresh spool holds %v, stats said %d salvaged", seqsOf(got), st.Batches)
	}
	for _, e := range got[:len(got)-1] {
		if string(e.Data) != string(payload(e.Seq, 200)) {
			t.Fatalf("salvaged entry %d is damaged", e.Seq)
		}
	}
	t.Logf("salvaged %d entries", st.Batches)
}

func TestCorruptRandomBytes(t *testing.T) {
	path, last := corruptFile(t, func(t *testing.T, path string) {
		b := make([]byte, 64<<10)
		r := rand.NewChaCha8([32]byte{1})
		r.Read(b)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	})
	checkFreshAndWorking(t, path, last)
}

func TestCorruptTruncated(t *testing.T) {
	for _, keep := range []int64{0, 100, 4096, 3 * 4096, -1} {
		t.Run(strings.ReplaceAll(strings.TrimPrefix(formatInt(keep), "-"), "-", "m"), func(t *testing.T) {
			path, last := corruptFile(t, func(t *testing.T, path string) {
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				size := keep
				if keep < 0 { // cut through the live pages
					size = fi.Size() / 2
				}
				if err := os.Truncate(path, size); err != nil {
					t.Fatal(err)
				}
			})
			if keep == 0 {
				// An empty file is a new bbolt file: nothing to set aside,
				// the floor file still keeps the sequence going up.
				s := reopenT(t, path, Options{})
				if seq := appendN(t, s, 1, 1, 10)[0]; seq <= last {
					t.Fatalf("seq %d after an emptied file, not above %d", seq, last)
				}
				return
			}
			checkFreshAndWorking(t, path, last)
		})
	}
}

func formatInt(n int64) string {
	if n < 0 {
		return "minus" + formatInt(-n)
	}
	return strings.TrimSpace(strings.Repeat(" ", 0) + itoa(n))
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// Scribbling over data pages leaves bbolt's meta pages valid: the damage is
// found by bbolt's check at Open (structure) or by the entry CRC at Peek
// (contents). Either way no panic, no hang, and what Peek returns is intact.
func TestCorruptScribble(t *testing.T) {
	for i := range 20 {
		t.Run(itoa(int64(i)), func(t *testing.T) {
			path, last := corruptFile(t, func(t *testing.T, path string) {
				f, err := os.OpenFile(path, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				fi, _ := f.Stat()
				r := rand.New(rand.NewPCG(uint64(i), 7))
				for range 1 + i%4 {
					// Skip the two meta pages: damage there is the
					// random-bytes and truncation cases.
					off := 2*4096 + r.Int64N(fi.Size()-2*4096-64)
					junk := make([]byte, 1+r.IntN(64))
					for j := range junk {
						junk[j] = byte(r.Uint32())
					}
					f.WriteAt(junk, off)
				}
			})
			s := reopenT(t, path, Options{})
			es, err := s.Peek(0, 1000)
			if err != nil {
				t.Fatalf("Peek: %v", err)
			}
			for _, e := range es {
				if !bytes.Equal(e.Data, payload(e.Seq, 200)) {
					t.Fatalf("Peek returned damaged data for seq %d", e.Seq)
				}
			}
			seq, err := s.Append(context.Background(), 1, func(seq uint64) ([]byte, error) { return payload(seq, 10), nil })
			if err != nil || seq <= last {
				t.Fatalf("Append after scribble = %d, %v (last seq before %d)", seq, err, last)
			}
			st := s.Stats()
			t.Logf("kept %d of 300, corrupt entries %d, resets %d", len(es), st.CorruptEntries, st.CorruptResets)
		})
	}
}

// A spool.db removed by hand must not restart the sequence at 1.
func TestFloorSurvivesDeletedFile(t *testing.T) {
	path, last := corruptFile(t, func(t *testing.T, path string) { os.Remove(path) })
	s := reopenT(t, path, Options{})
	if seq := appendN(t, s, 1, 1, 10)[0]; seq <= last {
		t.Fatalf("seq %d after the file was deleted, not above %d", seq, last)
	}
}

// The floor file is rewritten once per seqBlock batches, always ahead of
// every stored sequence number.
func TestFloorRunsAhead(t *testing.T) {
	old := seqBlock
	seqBlock = 8
	t.Cleanup(func() { seqBlock = old })
	s, path := openT(t, Options{})
	for range 30 {
		seq := appendN(t, s, 1, 1, 10)[0]
		f := seqFloor{path: path + ".seq"}
		v, err := f.read()
		if err != nil || v < seq {
			t.Fatalf("floor %d (%v) below stored seq %d", v, err, seq)
		}
	}
	os.WriteFile(path+".seq", []byte("garbage"), 0o600)
	s.Close()
	s = reopenT(t, path, Options{}) // an unreadable floor is ignored, rewritten
	if seq := appendN(t, s, 1, 1, 10)[0]; seq != 31 {
		t.Fatalf("seq after reopen = %d, want 31", seq)
	}
}

// Damage that appears while the spool is open (here: every page but the
// meta pages zeroed behind its back, which the shared memory map shows at
// once) is found by Peek; the file is set aside, a fresh one continues.
func TestCorruptWhileRunning(t *testing.T) {
	var logs testlog.Buffer
	s, path := openT(t, Options{Logger: textLogger(&logs)})
	last := appendN(t, s, 200, 10, 300)[199]
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	f.WriteAt(make([]byte, fi.Size()-2*4096), 2*4096)
	f.Close()

	es, err := s.Peek(0, 100)
	if err != nil {
		t.Fatalf("Peek after the damage: %v", err)
	}
	st := s.Stats()
	if st.CorruptResets != 1 || len(setAsideFiles(t, path)) != 1 || !strings.Contains(logs.String(), "SPOOL FILE CORRUPT") {
		t.Fatalf("not reset: %d entries, stats %+v\n%s", len(es), st, logs.String())
	}
	if uint64(st.Samples)+st.DroppedCorrupt != 2000 {
		t.Fatalf("samples: %d kept + %d counted lost != 2000", st.Samples, st.DroppedCorrupt)
	}
	if seq := appendN(t, s, 1, 1, 10)[0]; seq <= last {
		t.Fatalf("seq %d after the reset, not above %d", seq, last)
	}
}

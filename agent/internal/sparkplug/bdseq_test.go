package sparkplug

import (
	"os"
	"path/filepath"
	"testing"
)

func TestBdSeqPersists(t *testing.T) {
	dir := t.TempDir()
	for want := range uint64(3) {
		if got, err := nextBdSeq(dir); err != nil || got != want {
			t.Fatalf("connect %d: bdSeq %d %v", want, got, err)
		}
	}
	// It wraps after 255.
	if err := os.WriteFile(filepath.Join(dir, BdSeqFile), []byte("255\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, want := range []uint64{255, 0} {
		if got, err := nextBdSeq(dir); err != nil || got != want {
			t.Fatalf("bdSeq %d %v, want %d", got, err, want)
		}
	}
	// A damaged file starts again at 0 rather than stopping the agent.
	for _, junk := range []string{"", "x", "300", "-1"} {
		if err := os.WriteFile(filepath.Join(dir, BdSeqFile), []byte(junk), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := nextBdSeq(dir); err != nil || got != 0 {
			t.Fatalf("after %q: bdSeq %d %v, want 0", junk, got, err)
		}
	}
	// An unwritable directory is an error, not a silent reuse.
	if _, err := nextBdSeq(filepath.Join(dir, "missing", "dir")); err == nil {
		t.Fatal("no error for a directory that does not exist")
	}
}

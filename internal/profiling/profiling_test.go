package profiling

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestWriteProfiles(t *testing.T) {
	dir := t.TempDir() + "/made"
	paths, err := Write(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 3 {
		t.Fatalf("files %v; want heap, goroutine, memstats", paths)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			t.Errorf("%s: %d bytes, %v", p, len(b), err)
		}
		if strings.Contains(p, "memstats") && !strings.Contains(string(b), "HeapAlloc ") {
			t.Errorf("%s has no HeapAlloc: %q", p, b)
		}
	}
}

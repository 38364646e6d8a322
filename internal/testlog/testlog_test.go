package testlog

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// Loggers on several goroutines write while the test reads: every line
// arrives whole (go test -race checks the locking).
func TestBufferConcurrent(t *testing.T) {
	var b Buffer
	log := slog.New(slog.NewTextHandler(&b, nil))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				log.Info("line", "g", g, "i", i)
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 400 {
		t.Fatalf("%d lines, want 400", len(lines))
	}
	for g := range 4 {
		if want := fmt.Sprintf("msg=line g=%d i=99", g); !strings.Contains(b.String(), want) {
			t.Errorf("no %q in the buffer", want)
		}
	}
}

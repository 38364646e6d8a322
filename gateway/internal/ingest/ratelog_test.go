package ingest

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRateLog(t *testing.T) {
	var buf bytes.Buffer
	r := NewRateLog(slog.New(slog.NewTextHandler(&buf, nil)), 50*time.Millisecond)
	for range 5 {
		r.Warn("a", "bad a")
	}
	r.Warn("b", "bad b")
	if got := strings.Count(buf.String(), "bad a"); got != 1 {
		t.Fatalf("within the interval: %d lines of key a, want 1:\n%s", got, buf.String())
	}
	if !strings.Contains(buf.String(), "bad b") {
		t.Fatalf("key b held back by key a:\n%s", buf.String())
	}
	time.Sleep(60 * time.Millisecond)
	buf.Reset()
	r.Warn("a", "bad a")
	if !strings.Contains(buf.String(), "similar_suppressed=4") {
		t.Fatalf("after the interval: want the 4 held back counted, got:\n%s", buf.String())
	}
}

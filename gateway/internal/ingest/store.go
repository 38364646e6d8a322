package ingest

import (
	"context"
	"time"

	"github.com/weftiot/weft/internal/backoff"
	"github.com/weftiot/weft/wire"
)

// Written is what the write that worked stored.
type Written struct {
	Stored, Rejected, Skipped int
	Attempts                  int           // 1 when the first write worked
	Took                      time.Duration // of the write that worked
}

// Store write retry: the first wait after a failed write, and the most.
const (
	retryFirst = 100 * time.Millisecond
	// A gateway or two retrying a write every 5 s costs a recovering
	// InfluxDB nothing, and the backlog starts draining within 5 s of its
	// return (with 30 s it took up to 30 s: scenario 4 in
	// docs/benchmarks.md).
	retryMost = 5 * time.Second
)

// WriteUntilStored writes batches to sink until a write works. After each
// failed write it calls failed (attempt counts from 1; wait is the pause
// before the next try: 100 ms, doubled after each failure, at most 5 s).
// It returns false, with nothing stored, when ctx ends first. The native
// ingest and the Sparkplug host both store through it.
func WriteUntilStored(ctx context.Context, sink Sink, batches []*wire.Batch, failed func(attempt int, err error, wait time.Duration)) (Written, bool) {
	wait := retryFirst
	for attempt := 1; ; attempt++ {
		start := time.Now()
		stored, rejected, skipped, err := sink.Write(ctx, batches)
		if err == nil {
			return Written{Stored: stored, Rejected: rejected, Skipped: skipped, Attempts: attempt, Took: time.Since(start)}, true
		}
		failed(attempt, err, wait)
		if !backoff.Sleep(ctx, wait) {
			return Written{}, false
		}
		wait = min(wait*2, retryMost)
	}
}

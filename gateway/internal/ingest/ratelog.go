package ingest

import (
	"log/slog"
	"sync"
	"time"
)

// rateLog logs at most one message per key and interval, and says how many
// it held back. Bad input from the network can come thousands a second; the
// counters have the totals.
type rateLog struct {
	log      *slog.Logger
	interval time.Duration
	mu       sync.Mutex
	last     map[string]time.Time
	held     map[string]int
}

func newRateLog(log *slog.Logger, interval time.Duration) *rateLog {
	return &rateLog{log: log, interval: interval, last: map[string]time.Time{}, held: map[string]int{}}
}

func (r *rateLog) Warn(key, msg string, args ...any) {
	r.mu.Lock()
	now := time.Now()
	if t, ok := r.last[key]; ok && now.Sub(t) < r.interval {
		r.held[key]++
		r.mu.Unlock()
		return
	}
	held := r.held[key]
	r.last[key] = now
	r.held[key] = 0
	r.mu.Unlock()
	if held > 0 {
		args = append(args, "similar_suppressed", held)
	}
	r.log.Warn(msg, args...)
}

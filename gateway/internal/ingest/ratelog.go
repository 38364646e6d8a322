package ingest

import (
	"log/slog"
	"sync"
	"time"
)

// RateLog logs at most one message per key and interval, and says how many
// it held back. Bad input from the network can come thousands a second; the
// counters have the totals. The native ingest and the Sparkplug host both
// log through one.
type RateLog struct {
	log      *slog.Logger
	interval time.Duration
	mu       sync.Mutex
	last     map[string]time.Time
	held     map[string]int
}

// NewRateLog makes a RateLog writing to log.
func NewRateLog(log *slog.Logger, interval time.Duration) *RateLog {
	return &RateLog{log: log, interval: interval, last: map[string]time.Time{}, held: map[string]int{}}
}

// Warn logs msg with args at warning level unless a message of the same key
// was logged less than the interval ago. The next one logged says how many
// were held back (similar_suppressed).
func (r *RateLog) Warn(key, msg string, args ...any) {
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

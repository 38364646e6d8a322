// Package backoff is the wait between reconnect attempts that every Weft
// connection loop uses (a device driver, the agent's broker connection, the
// gateway's Sparkplug host): doubling from a floor to a cap, with jitter so
// that clients restarting together spread out.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Delay is the wait before attempt n+1 (n ≥ 1): lo·2^(n-1), capped at hi,
// with jitter in [½, 1] of it.
func Delay(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}

// Sleep waits d or until ctx ends; it reports whether the full time passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

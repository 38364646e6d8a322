// Package series is what the API needs to draw a small chart of one point:
// recent samples, from InfluxDB or from the gateway's own window store.
package series

import (
	"context"
	"time"
)

// Point is one stored sample of one point.
type Point struct {
	TS      int64  `json:"ts"`              // ms since epoch
	Value   any    `json:"value,omitempty"` // number, bool or string; absent for a bad sample without value
	Quality string `json:"quality"`         // good, uncertain or bad
}

// Source reads the samples of one point since a time, oldest first, at most
// limit of them (the newest ones).
type Source interface {
	Series(ctx context.Context, site, agent, device, point string, since time.Time, limit int) ([]Point, error)
}

// Package pipeline turns what drivers read into data messages in the spool:
// scale and offset, report by exception (deadband and heartbeat), and
// batching. A Filter belongs to one device; the Batcher is shared by all of
// them and appends encoded batches to the spool.
package pipeline

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftiot/weft/wire"
)

// DefaultHeartbeat is the heartbeat of a point that sets none: an unchanged
// value is still reported this often, so a flat line is distinguishable
// from a dead link.
const DefaultHeartbeat = 60 * time.Second

// Rule conditions and filters the samples of one point.
type Rule struct {
	// Scale and Offset: a numeric value v is reported as v*Scale + Offset
	// (a float). Nil Scale means 1. Bool and string values are not scaled.
	Scale  *float64
	Offset float64
	// Deadband reports a change only when |Δ| exceeds it; DeadbandPercent
	// when |Δ| exceeds that percent of the last reported value. With neither,
	// the point is reported on every poll.
	Deadband        *float64
	DeadbandPercent *float64
	// Heartbeat reports an unchanged value at least this often (by source
	// time); 0 means DefaultHeartbeat.
	Heartbeat time.Duration
}

// Filter applies the Rules of one device's points. It is safe for
// concurrent use (a device's poll and subscription goroutines share it).
type Filter struct {
	points map[string]*pointState // fixed by NewFilter
	mu     sync.Mutex             // guards the pointStates

	passed     atomic.Uint64
	suppressed atomic.Uint64
}

type pointState struct {
	rule        Rule
	heartbeatMs int64
	reported    bool
	last        wire.Value
	lastQ       wire.Quality
	lastTS      int64
}

// NewFilter makes the filter of one device from its points' rules, by point
// name. Samples of points without a rule pass unchanged, every time.
// A rule that neither scales nor has a deadband changes nothing and reports
// every sample, so the filter keeps no state for it: most points of a large
// register map are like that, and their state was the biggest part of an
// agent's live heap (about 300 bytes a point).
func NewFilter(rules map[string]Rule) *Filter {
	n := 0
	for _, r := range rules {
		if !r.passesAll() {
			n++
		}
	}
	f := &Filter{points: make(map[string]*pointState, n)}
	for name, r := range rules {
		if r.passesAll() {
			continue
		}
		hb := r.Heartbeat
		if hb <= 0 {
			hb = DefaultHeartbeat
		}
		f.points[name] = &pointState{rule: r, heartbeatMs: hb.Milliseconds()}
	}
	return f
}

// Apply scales s in place and reports whether it is to be published.
func (f *Filter) Apply(s *wire.Sample) bool {
	p := f.points[s.Point] // read-only after NewFilter: no lock
	if p == nil {
		f.passed.Add(1)
		return true
	}
	f.mu.Lock()
	s.Value = scale(s.Value, p.rule)
	ok := p.report(s)
	f.mu.Unlock()
	if ok {
		f.passed.Add(1)
	} else {
		f.suppressed.Add(1)
	}
	return ok
}

// passesAll reports whether r reports every sample unchanged: no scale, no
// offset and no deadband (a heartbeat means nothing without a deadband).
func (r Rule) passesAll() bool {
	return (r.Scale == nil || *r.Scale == 1) && r.Offset == 0 && r.Deadband == nil && r.DeadbandPercent == nil
}

// Passed and Suppressed count the samples Apply let through and held back.
func (f *Filter) Passed() uint64     { return f.passed.Load() }
func (f *Filter) Suppressed() uint64 { return f.suppressed.Load() }

func scale(v wire.Value, r Rule) wire.Value {
	if (r.Scale == nil || *r.Scale == 1) && r.Offset == 0 {
		return v // keeps integers integers
	}
	switch v.Kind() {
	case wire.Float, wire.Int, wire.Uint:
	default:
		return v
	}
	x, _ := v.Float()
	m := 1.0
	if r.Scale != nil {
		m = *r.Scale
	}
	if d, ok := decimalDivisor(m); ok {
		return wire.FloatValue(x/d + r.Offset)
	}
	return wire.FloatValue(x*m + r.Offset)
}

// decimalDivisor reports whether scale is 1/d for a whole d > 1 (0.1, 0.01,
// 0.5, 0.001 ...). A register holding 274 with scale 0.1 is 27.4; 274*0.1 in
// binary floating point is 27.400000000000002, and that noise would reach the
// dashboard and InfluxDB. 274/10 is the float nearest 27.4, so dividing by d
// gives the value the register map means.
func decimalDivisor(scale float64) (float64, bool) {
	if scale == 0 || math.Abs(scale) >= 1 {
		return 0, false
	}
	inv := 1 / scale
	d := math.Round(inv)
	if math.Abs(inv-d) > 1e-9*math.Abs(inv) {
		return 0, false
	}
	return d, true
}

// report decides whether s is published and, if so, remembers it as the
// last reported sample.
func (p *pointState) report(s *wire.Sample) bool {
	if !p.reported || p.changed(s) {
		p.reported = true
		p.last, p.lastQ, p.lastTS = s.Value, s.Quality, s.TS
		return true
	}
	return false
}

func (p *pointState) changed(s *wire.Sample) bool {
	switch {
	case s.Quality != p.lastQ:
		return true
	case s.TS < p.lastTS || s.TS-p.lastTS >= p.heartbeatMs:
		// Heartbeat due, or the source clock stepped back: report rather
		// than hold a value back for an unknown time.
		return true
	case p.rule.Deadband == nil && p.rule.DeadbandPercent == nil:
		return true
	case s.Value.Kind() != p.last.Kind():
		return true
	}
	v, vok := s.Value.Float()
	l, lok := p.last.Float()
	if !vok || !lok || s.Value.Kind() == wire.Bool {
		return !s.Value.Equal(p.last) // strings, booleans, nulls: any change
	}
	if math.IsNaN(v) || math.IsNaN(l) || math.IsInf(v, 0) || math.IsInf(l, 0) {
		return !s.Value.Equal(p.last)
	}
	d := math.Abs(v - l)
	if p.rule.Deadband != nil && d > *p.rule.Deadband {
		return true
	}
	if p.rule.DeadbandPercent != nil && d > math.Abs(l)**p.rule.DeadbandPercent/100 {
		return true
	}
	return false
}

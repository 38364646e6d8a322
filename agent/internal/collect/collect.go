// Package collect runs the devices: one goroutine per device connects its
// driver with backoff, polls it on a fixed schedule, runs its subscription,
// demotes it while it keeps failing, and keeps the figures of its health.
// Devices share nothing here, so a failing device never stalls the others
// (devices on one serial line are serialised by their driver's pool).
package collect

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/weftiot/weft/internal/backoff"
	"github.com/weftiot/weft/protocols"
	"github.com/weftiot/weft/wire"
)

// Device is one device to run.
type Device struct {
	ID       string
	Protocol string
	// Interval is the poll interval (default 1s).
	Interval time.Duration
	Driver   protocols.Driver
	// Emit receives every sample the driver reads (polled or subscribed).
	Emit protocols.Emit
	// Explain, when set, turns a connect, poll or subscription error into
	// the text health shows as the device's last_error; else the error's.
	Explain func(error) string
}

// Options tune the schedule; the zero value is the production setting.
type Options struct {
	Logger *slog.Logger
	// DemoteAfter is how many polls in a row must fail before the device is
	// demoted (state down, polled every DemotedInterval). Default 3.
	DemoteAfter int
	// DemotedInterval is the poll interval of a demoted device: default ten
	// times its interval, at least 10s and at most 60s (never below its own).
	DemotedInterval time.Duration
	// BackoffMin and BackoffMax bound the wait between connect attempts,
	// which doubles from min to max, with jitter. Defaults 1s and 30s.
	BackoffMin, BackoffMax time.Duration
	// Observe, when set, is called after every poll (for metrics).
	Observe func(device string, took time.Duration, err error)
}

// Collector runs a set of devices until Stop.
type Collector struct {
	devices []*device
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// Start starts one goroutine per device. Collection starts at once and
// does not wait for anything else (the broker in particular).
func Start(ctx context.Context, devices []Device, opts Options) *Collector {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DemoteAfter <= 0 {
		opts.DemoteAfter = 3
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = time.Second
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 30 * time.Second
	}
	if opts.BackoffMax < opts.BackoffMin {
		opts.BackoffMax = opts.BackoffMin
	}
	ctx, cancel := context.WithCancel(ctx)
	c := &Collector{cancel: cancel}
	for _, d := range devices {
		if d.Interval <= 0 {
			d.Interval = time.Second
		}
		dev := &device{Device: d, opts: opts, log: opts.Logger.With("device", d.ID)}
		dev.demoted = demotedInterval(d.Interval, opts.DemotedInterval)
		dev.health = wire.DeviceHealth{ID: d.ID, Protocol: d.Protocol, State: wire.DeviceDown}
		c.devices = append(c.devices, dev)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			dev.run(ctx)
		}()
	}
	return c
}

// Stop stops polling and subscriptions, closes every driver, and returns
// when every device goroutine has ended. No sample is emitted after Stop.
func (c *Collector) Stop() {
	c.cancel()
	c.wg.Wait()
}

// Health returns every device's figures, in the order they were given.
func (c *Collector) Health() []wire.DeviceHealth {
	out := make([]wire.DeviceHealth, len(c.devices))
	for i, d := range c.devices {
		out[i] = d.snapshot()
	}
	return out
}

func demotedInterval(interval, set time.Duration) time.Duration {
	d := set
	if d <= 0 {
		d = min(max(10*interval, 10*time.Second), time.Minute)
	}
	return max(d, interval)
}

type device struct {
	Device
	opts    Options
	log     *slog.Logger
	demoted time.Duration

	// lastPollEnd is the wall-clock millisecond the last poll ended in;
	// the next one waits until it is over (waitPastMs). Device goroutine
	// only.
	lastPollEnd int64

	mu        sync.Mutex
	health    wire.DeviceHealth
	connected bool
	failures  int  // polls failed in a row
	lastBad   bool // the last poll emitted a non-good sample
	sessionOK bool // a poll succeeded or a sample arrived since Connect
}

func (d *device) run(ctx context.Context) {
	defer func() {
		if err := d.Driver.Close(); err != nil {
			d.log.Debug("closing the driver", "err", err)
		}
	}()
	attempt := 0
	for ctx.Err() == nil {
		if attempt > 0 && !backoff.Sleep(ctx, backoff.Delay(attempt, d.opts.BackoffMin, d.opts.BackoffMax)) {
			return
		}
		if err := d.Driver.Connect(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			attempt++
			d.fail(err)
			if attempt == 1 || attempt%10 == 0 {
				d.log.Warn("device: connect failed; retrying with backoff", "attempt", attempt, "err", err)
			}
			continue
		}
		d.setConnected(true)
		d.log.Debug("device: connected")
		ok := d.session(ctx)
		d.setConnected(false)
		if ok {
			attempt = 0
		} else {
			attempt++
		}
	}
}

// session polls (and runs the subscription) until the connection is lost
// or ctx ends. It reports whether anything succeeded on this connection.
func (d *device) session(ctx context.Context) bool {
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	if sub, ok := d.Driver.(protocols.Subscriber); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := sub.Subscribe(sctx, d.emitSubscribed)
			if err != nil && sctx.Err() == nil {
				d.fail(err)
				d.log.Warn("device: subscription lost; reconnecting", "err", err)
			}
			cancel()
		}()
	}
	tick := time.Now()
	for {
		if !waitPastMs(sctx, d.lastPollEnd) {
			return d.succeeded()
		}
		err := d.poll(sctx)
		d.lastPollEnd = time.Now().UnixMilli()
		if sctx.Err() != nil {
			return d.succeeded()
		}
		if errors.Is(err, protocols.ErrNotConnected) {
			d.log.Warn("device: connection lost; reconnecting", "err", err)
			return d.succeeded()
		}
		interval := d.interval()
		tick = tick.Add(interval)
		if now := time.Now(); !tick.After(now) {
			// Overrun: the poll took longer than the interval. Skip the
			// missed ticks rather than poll twice in a row.
			d.mu.Lock()
			d.health.Overruns++
			d.mu.Unlock()
			missed := now.Sub(tick)/interval + 1
			tick = tick.Add(missed * interval)
		}
		if !backoff.Sleep(sctx, time.Until(tick)) {
			return d.succeeded()
		}
	}
}

// waitPastMs returns once the wall clock has left millisecond ms, false if
// ctx ended first. Drivers stamp samples with the wall-clock time in
// milliseconds (wire.Sample.TS) when they read them, and the store keeps
// one point per series and millisecond: a poll that ended just before its
// slot and the next one, started at once and answered quickly, could carry
// the same timestamp, and the later would silently overwrite the earlier
// in InfluxDB (issue 10's lost poll). Starting each poll in a later
// millisecond than the previous one ended in gives every poll of a device
// timestamps of its own. The wait is under a millisecond and only ever
// needed at the edge of a slot; a clock stepped back is not waited for.
func waitPastMs(ctx context.Context, ms int64) bool {
	for {
		now := time.Now()
		if now.UnixMilli() != ms {
			return ctx.Err() == nil
		}
		if !backoff.Sleep(ctx, time.UnixMilli(ms+1).Sub(now)) {
			return false
		}
	}
}

func (d *device) poll(ctx context.Context) error {
	var n, bad uint64
	emit := func(s wire.Sample) {
		if s.Quality != wire.Good && ctx.Err() != nil {
			// The poll was cut short because the agent is stopping or
			// reconnecting: a point marked bad for that says nothing
			// about the device.
			return
		}
		n++
		if s.Quality != wire.Good {
			bad++
		}
		d.Emit(s)
	}
	start := time.Now()
	err := d.Driver.Poll(ctx, emit)
	took := time.Since(start)
	if ctx.Err() != nil && err != nil {
		return err // stopping: not a device failure
	}
	if d.opts.Observe != nil {
		d.opts.Observe(d.ID, took, err)
	}
	d.mu.Lock()
	h := &d.health
	h.Reads++
	h.Samples += n
	h.LatencyMs = float64(took.Microseconds()) / 1000
	if err == nil {
		if d.failures >= d.opts.DemoteAfter {
			d.log.Info("device: answering again; back to its interval", "interval", d.Interval)
		}
		d.failures = 0
		d.lastBad = bad > 0
		d.sessionOK = true
		h.LastOK = start.UnixMilli()
		d.setState()
		d.mu.Unlock()
		return nil
	}
	d.failures++
	if d.failures == d.opts.DemoteAfter {
		d.log.Warn("device: failing; demoted to a longer interval until it answers",
			"failures", d.failures, "interval", d.demoted, "err", err)
	}
	d.mu.Unlock()
	d.fail(err)
	return err
}

func (d *device) emitSubscribed(s wire.Sample) {
	d.mu.Lock()
	d.health.Samples++
	if !d.sessionOK || d.health.State != wire.DeviceOK {
		d.sessionOK = true
		d.health.LastOK = time.Now().UnixMilli()
		d.setState()
	}
	d.mu.Unlock()
	d.Emit(s)
}

// fail records an error of the device (connect, poll or subscription).
func (d *device) fail(err error) {
	msg := err.Error()
	if d.Explain != nil {
		msg = d.Explain(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.health.Errors++
	d.health.LastError = msg
	d.setState()
}

func (d *device) setConnected(c bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.connected = c
	if c {
		d.sessionOK = false
	}
	d.setState()
}

func (d *device) succeeded() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sessionOK
}

// setState derives the state; d.mu is held.
func (d *device) setState() {
	switch {
	case !d.connected || d.failures >= d.opts.DemoteAfter:
		d.health.State = wire.DeviceDown
	case d.failures > 0 || d.lastBad || !d.sessionOK:
		d.health.State = wire.DeviceDegraded
	default:
		d.health.State = wire.DeviceOK
	}
}

func (d *device) interval() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failures >= d.opts.DemoteAfter {
		return d.demoted
	}
	return d.Interval
}

func (d *device) snapshot() wire.DeviceHealth {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.health
	if c, ok := d.Driver.(protocols.Counter); ok {
		h.Requests = c.Requests()
	}
	if k, ok := d.Driver.(protocols.ErrorKinds); ok {
		if m := k.ErrorsByKind(); len(m) > 0 {
			h.ErrorsByKind = m
		}
	}
	return h
}

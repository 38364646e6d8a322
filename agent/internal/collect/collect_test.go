package collect

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftiot/weft/protocols"
	"github.com/weftiot/weft/wire"
)

// scripted is a fake driver for the scheduler's unit tests: it decides how
// long each call takes and whether it fails, which no real device can be
// told to do call by call. The end-to-end tests run the real Modbus driver
// against the simulator.
type scripted struct {
	mu         sync.Mutex
	connects   int
	polls      []time.Time
	closes     int
	connectErr func(n int) error                  // n counts from 1
	pollFn     func(n int) (time.Duration, error) // how long poll n takes, and its error
	requests   atomic.Uint64
}

func (s *scripted) Connect(ctx context.Context) error {
	s.mu.Lock()
	s.connects++
	n := s.connects
	s.mu.Unlock()
	if s.connectErr != nil {
		return s.connectErr(n)
	}
	return nil
}

func (s *scripted) Poll(ctx context.Context, emit protocols.Emit) error {
	s.mu.Lock()
	s.polls = append(s.polls, time.Now())
	n := len(s.polls)
	s.mu.Unlock()
	s.requests.Add(1)
	var took time.Duration
	var err error
	if s.pollFn != nil {
		took, err = s.pollFn(n)
	}
	if took > 0 {
		select {
		case <-time.After(took):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err == nil {
		emit(wire.Sample{Device: "d", Point: "p", Value: wire.IntValue(int64(n)), TS: time.Now().UnixMilli()})
	}
	return err
}

func (s *scripted) Close() error {
	s.mu.Lock()
	s.closes++
	s.mu.Unlock()
	return nil
}

func (s *scripted) Requests() uint64 { return s.requests.Load() }

func (s *scripted) pollTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.polls...)
}

func (s *scripted) connectCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connects
}

type sink struct{ n atomic.Int64 }

func (k *sink) emit(wire.Sample) { k.n.Add(1) }

func startOne(t *testing.T, drv protocols.Driver, interval time.Duration, opts Options) (*Collector, *sink) {
	t.Helper()
	k := &sink{}
	c := Start(context.Background(), []Device{{ID: "d", Protocol: "test", Interval: interval, Driver: drv, Emit: k.emit}}, opts)
	t.Cleanup(c.Stop)
	return c, k
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Polls stay on the grid start + k·interval: a poll's duration does not push
// the following ones later. Each poll takes 30ms of a 100ms interval; a
// scheduler that sleeps "interval after the poll" would start poll k at
// 130ms·k, wandering around the grid, while ours stays near it however
// loaded the machine is.
func TestScheduleDoesNotDrift(t *testing.T) {
	const interval = 100 * time.Millisecond
	drv := &scripted{pollFn: func(n int) (time.Duration, error) { return 30 * time.Millisecond, nil }}
	c, k := startOne(t, drv, interval, Options{})
	waitFor(t, "11 polls", func() bool { return len(drv.pollTimes()) >= 11 })
	c.Stop()
	ts := drv.pollTimes()
	var late []time.Duration
	for i := 1; i < len(ts); i++ {
		late = append(late, ts[i].Sub(ts[0])%interval)
	}
	slices.Sort(late)
	if med := late[len(late)/2]; med > 25*time.Millisecond {
		t.Errorf("median lateness against the grid %v (all: %v): the schedule drifts", med, late)
	}
	if h := c.Health()[0]; h.State != wire.DeviceDown || h.Reads < 10 || h.LastOK == 0 {
		t.Errorf("health after stop %+v: want state down (disconnected), >= 10 reads (the 11th was cut by Stop)", h)
	}
	if k.n.Load() < 10 {
		t.Errorf("%d samples emitted", k.n.Load())
	}
}

// A poll longer than the interval is counted as an overrun and the next poll
// waits for the next slot of the grid: no two polls back to back.
// A loaded machine (make test runs packages in parallel on 2 cores) can only
// make the poll late, never early: a late one is tried again, up to three
// times, while an early or doubled one fails at once.
func TestOverrunSkipsTicks(t *testing.T) {
	const interval = 50 * time.Millisecond
	var off time.Duration
	for attempt := 1; attempt <= 3; attempt++ {
		drv := &scripted{pollFn: func(n int) (time.Duration, error) {
			if n == 2 {
				return 120 * time.Millisecond, nil // overruns slots 2 and 3
			}
			return 0, nil
		}}
		c := Start(context.Background(), []Device{{ID: "d", Protocol: "test", Interval: interval, Driver: drv, Emit: (&sink{}).emit}}, Options{})
		waitFor(t, "4 polls", func() bool { return len(drv.pollTimes()) >= 4 })
		c.Stop()
		ts := drv.pollTimes()
		// Poll 2 starts at 50ms and ends at 170ms; the next slot is 200ms.
		if gap := ts[2].Sub(ts[1]); gap < 20*time.Millisecond {
			t.Fatalf("poll after the overrun started %v after the slow one began: doubled", gap-120*time.Millisecond)
		}
		off = ts[2].Sub(ts[0])
		if off < 190*time.Millisecond {
			t.Fatalf("poll after the overrun at %v from the first, before the 200ms slot", off)
		}
		if h := c.Health()[0]; h.Overruns != 1 {
			t.Fatalf("overruns = %d, want 1", h.Overruns)
		}
		if off <= 240*time.Millisecond {
			return
		}
		t.Logf("attempt %d: poll after the overrun at %v from the first, late for the 200ms slot; trying again", attempt, off)
	}
	t.Errorf("poll after the overrun at %v from the first in 3 attempts, want the 200ms slot", off)
}

// A device that keeps failing is demoted (polled at the longer interval,
// state down) and promoted again when it answers.
func TestDemotionAndPromotion(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	drv := &scripted{pollFn: func(n int) (time.Duration, error) {
		if failing.Load() {
			return 0, fmt.Errorf("device %q: read holding 0..9: i/o timeout", "d")
		}
		return 0, nil
	}}
	c, _ := startOne(t, drv, 20*time.Millisecond, Options{DemoteAfter: 3, DemotedInterval: 300 * time.Millisecond})
	waitFor(t, "3 failed polls", func() bool { return len(drv.pollTimes()) >= 3 })
	time.Sleep(10 * time.Millisecond)
	h := c.Health()[0]
	if h.State != wire.DeviceDown || h.Errors < 3 || h.LastError == "" {
		t.Errorf("after 3 failures: %+v, want down with errors and last error", h)
	}
	before := len(drv.pollTimes())
	time.Sleep(450 * time.Millisecond)
	// Demoted: one or two polls in 450ms, where the interval would give 22.
	if n := len(drv.pollTimes()) - before; n > 2 {
		t.Errorf("%d polls in 450ms while demoted to 300ms", n)
	}
	failing.Store(false)
	waitFor(t, "promotion", func() bool { return c.Health()[0].State == wire.DeviceOK })
	before = len(drv.pollTimes())
	time.Sleep(300 * time.Millisecond)
	if n := len(drv.pollTimes()) - before; n < 4 {
		t.Errorf("%d polls in 300ms after promotion, want about 15 at 20ms", n)
	}
	if h := c.Health()[0]; h.LastOK == 0 || h.Reads == 0 || h.Requests == 0 {
		t.Errorf("health %+v", h)
	}
}

// A one-off failure makes the device degraded, not down.
func TestSingleFailureIsDegraded(t *testing.T) {
	drv := &scripted{pollFn: func(n int) (time.Duration, error) {
		if n == 2 {
			return 0, errors.New("exception 4")
		}
		if n > 2 {
			return time.Hour, nil // hold still so the state can be read
		}
		return 0, nil
	}}
	c, _ := startOne(t, drv, 10*time.Millisecond, Options{})
	waitFor(t, "3 polls", func() bool { return len(drv.pollTimes()) >= 3 })
	if h := c.Health()[0]; h.State != wire.DeviceDegraded || h.Errors != 1 {
		t.Errorf("after one failure: %+v, want degraded with 1 error", h)
	}
}

// Connect is retried with growing backoff; polling starts once it succeeds.
func TestConnectBackoff(t *testing.T) {
	drv := &scripted{connectErr: func(n int) error {
		if n <= 4 {
			return fmt.Errorf("dial tcp 127.0.0.1:1: connection refused")
		}
		return nil
	}}
	start := time.Now()
	c, _ := startOne(t, drv, 10*time.Millisecond, Options{BackoffMin: 20 * time.Millisecond, BackoffMax: 80 * time.Millisecond})
	waitFor(t, "first poll", func() bool { return len(drv.pollTimes()) >= 1 })
	// Waits: [10,20] + [20,40] + [40,80] + [40,80] ms = at least 110ms.
	if took := drv.pollTimes()[0].Sub(start); took < 110*time.Millisecond {
		t.Errorf("first poll after %v: backoff not applied", took)
	}
	if h := c.Health()[0]; h.Errors != 4 {
		t.Errorf("errors = %d, want the 4 failed connects", h.Errors)
	}
}

// ErrNotConnected from Poll makes the agent call Connect again.
func TestReconnectOnNotConnected(t *testing.T) {
	drv := &scripted{pollFn: func(n int) (time.Duration, error) {
		if n == 3 {
			return 0, fmt.Errorf("device %q: read: %w", "d", protocols.ErrNotConnected)
		}
		return 0, nil
	}}
	startOne(t, drv, 10*time.Millisecond, Options{BackoffMin: 10 * time.Millisecond})
	waitFor(t, "6 polls", func() bool { return len(drv.pollTimes()) >= 6 })
	if n := drv.connectCount(); n != 2 {
		t.Errorf("Connect called %d times, want 2", n)
	}
}

// A device whose Poll hangs does not delay the others.
func TestHungDeviceDoesNotStallOthers(t *testing.T) {
	hung := &scripted{pollFn: func(int) (time.Duration, error) { return time.Hour, nil }}
	fine := &scripted{}
	k := &sink{}
	c := Start(context.Background(), []Device{
		{ID: "hung", Interval: 10 * time.Millisecond, Driver: hung, Emit: k.emit},
		{ID: "fine", Interval: 10 * time.Millisecond, Driver: fine, Emit: k.emit},
	}, Options{})
	waitFor(t, "20 polls of the healthy device", func() bool { return len(fine.pollTimes()) >= 20 })
	c.Stop() // must return although a Poll is blocked: it is cancelled
	if hung.closes != 1 || fine.closes != 1 {
		t.Errorf("Close called %d and %d times, want once each", hung.closes, fine.closes)
	}
}

// subscriber is a scripted Subscriber: its first subscription fails after
// sending two samples, the second runs until cancelled.
type subscriber struct {
	scripted
	subs atomic.Int32
}

func (s *subscriber) Subscribe(ctx context.Context, emit protocols.Emit) error {
	n := s.subs.Add(1)
	emit(wire.Sample{Device: "d", Point: "sub"})
	emit(wire.Sample{Device: "d", Point: "sub"})
	if n == 1 {
		return errors.New("subscription lost: BadSessionIdInvalid")
	}
	<-ctx.Done()
	return nil
}

func TestSubscriptionLostReconnects(t *testing.T) {
	drv := &subscriber{}
	c, k := startOne(t, drv, time.Hour, Options{BackoffMin: 10 * time.Millisecond})
	waitFor(t, "second subscription", func() bool { return drv.subs.Load() >= 2 })
	waitFor(t, "4 subscribed samples", func() bool { return k.n.Load() >= 4 })
	if n := drv.connectCount(); n != 2 {
		t.Errorf("Connect called %d times, want 2", n)
	}
	waitFor(t, "state ok", func() bool { return c.Health()[0].State == wire.DeviceOK })
	if h := c.Health()[0]; h.Errors != 1 || h.Samples < 4 {
		t.Errorf("health %+v", h)
	}
}

// cutShort emits a bad sample for its point when its poll is cancelled, as
// the Modbus driver does for a request that did not complete.
type cutShort struct{ scripted }

func (c *cutShort) Poll(ctx context.Context, emit protocols.Emit) error {
	emit(wire.Sample{Device: "d", Point: "good"})
	<-ctx.Done()
	emit(wire.Sample{Device: "d", Point: "p", Quality: wire.Bad})
	return ctx.Err()
}

// Stopping the agent cuts a poll short; the points the driver marks bad
// for that are not reported as if the device had failed.
func TestCancelledPollBadSamplesDropped(t *testing.T) {
	drv := &cutShort{}
	c, k := startOne(t, drv, time.Hour, Options{})
	waitFor(t, "the good sample", func() bool { return k.n.Load() == 1 })
	c.Stop()
	if n := k.n.Load(); n != 1 {
		t.Errorf("%d samples emitted, want only the good one", n)
	}
	if h := c.Health()[0]; h.Errors != 0 {
		t.Errorf("a poll cut short by Stop counted as an error: %+v", h)
	}
}

// edgeOfSlot is a fake driver whose odd polls end just before the next slot
// of the schedule, as a poll that waited its turn on a busy shared Modbus
// link does now and then; the even ones answer at once. Each poll stamps
// its sample when it ends, as the Modbus driver stamps a read when the
// answer is in. No real device can be told to answer at such an exact
// moment, hence the fake.
type edgeOfSlot struct {
	interval time.Duration
	mu       sync.Mutex
	first    time.Time
	n        int
	ts       []int64 // the TS of every sample, in emission order
}

// margin is how long before its slot ends an odd poll finishes.
const margin = 300 * time.Microsecond

func (e *edgeOfSlot) Connect(context.Context) error { return nil }
func (e *edgeOfSlot) Close() error                  { return nil }

func (e *edgeOfSlot) Poll(ctx context.Context, emit protocols.Emit) error {
	e.mu.Lock()
	e.n++
	n := e.n
	if n == 1 {
		e.first = time.Now()
	}
	end := e.first.Add(time.Duration(n)*e.interval - margin)
	e.mu.Unlock()
	if n%2 == 1 {
		if d := time.Until(end) - time.Millisecond; d > 0 {
			time.Sleep(d)
		}
		for time.Now().Before(end) { // the last millisecond, exactly
		}
	}
	s := wire.Sample{Device: "d", Point: "p", Value: wire.IntValue(int64(n)), TS: time.Now().UnixMilli()}
	e.mu.Lock()
	e.ts = append(e.ts, s.TS)
	e.mu.Unlock()
	emit(s)
	return nil
}

func (e *edgeOfSlot) stamps() []int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.ts)
}

// Two polls of one device never share a millisecond timestamp, even when a
// poll ends a moment before the next slot and the next one is answered at
// once. Samples are stamped in milliseconds and InfluxDB keeps one point
// per series and timestamp, so two polls stamped alike store as one: the
// earlier poll's samples are silently overwritten (issue 10's lost poll).
func TestPollsNeverShareAMillisecond(t *testing.T) {
	// A busy agent (hundreds of device goroutines) keeps its Ps
	// scheduling, and a scheduling P fires its timers within microseconds;
	// an idle test process sleeps in epoll with millisecond resolution and
	// would always wake in the next millisecond. One P and a goroutine
	// yielding in a loop make the timer as prompt as in the busy agent.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	busy, stopBusy := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(busy)
		for {
			select {
			case <-stopBusy:
				return
			default:
				runtime.Gosched()
			}
		}
	}()
	defer func() { close(stopBusy); <-busy }()
	// Not a whole number of milliseconds, so that the slots fall at every
	// phase of the millisecond.
	drv := &edgeOfSlot{interval: 10*time.Millisecond + 370*time.Microsecond}
	c, _ := startOne(t, drv, drv.interval, Options{})
	waitFor(t, "40 polls", func() bool { return len(drv.stamps()) >= 40 })
	c.Stop()
	ts := drv.stamps()
	same := 0
	for i := 1; i < len(ts); i++ {
		if ts[i] <= ts[i-1] {
			same++
			t.Errorf("poll %d stamped %d, poll %d %d: not later", i, ts[i-1], i+1, ts[i])
		}
	}
	if same > 0 {
		t.Logf("%d of %d polls stamped no later than the poll before", same, len(ts))
	}
}

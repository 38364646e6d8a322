// Package modbus is the Modbus driver: TCP, RTU over TCP, RTU and ASCII over
// a serial line, on top of github.com/goburrow/modbus. It plans a device's
// reads into as few requests as the device allows, shares one connection and
// one request queue among the devices of a serial line or a serial server, and
// decodes every common register layout. docs/modbus.md is the field guide.
package modbus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gb "github.com/goburrow/modbus"

	"github.com/weftiot/weft/protocols"
	"github.com/weftiot/weft/wire"
)

// Point is one configured point of a device.
type Point struct {
	Name string
	PointConfig
}

// Defaults the driver applies to zero values (the config loader normally
// applies them first).
const (
	DefaultUnit    = 1
	DefaultTimeout = time.Second
	DefaultRetries = 2
	DefaultMaxGap  = 10 // serial lines; see DefaultMaxGapFor
)

// DefaultMaxGapTCP is the max_gap default of Modbus TCP targets.
const DefaultMaxGapTCP = 50

// DefaultMaxGapFor is the max_gap a target gets when the config leaves it
// out. On Modbus TCP a request costs a network round trip and the device's
// turnaround, while 50 more registers cost 100 bytes of one reply: reading
// through is nearly free, so the default is 50 (Telegraf's max_insert fill;
// measured in docs/benchmarks.md, 3 requests per scan instead of 15 on a
// map with holes of 11 and 29). On a serial line (rtu, ascii, and
// rtuovertcp, which ends on one) every register is 2 bytes on the wire —
// about 2 ms at 9600 baud — against roughly 30 ms for a separate request,
// so the default stays 10. Reading through an unmapped register is safe
// either way: an exception 2 or 3 splits the request and the split is
// remembered.
func DefaultMaxGapFor(scheme string) int {
	if strings.EqualFold(scheme, "tcp") {
		return DefaultMaxGapTCP
	}
	return DefaultMaxGap
}

// busyBackoff is the first pause before retrying an exception 4, 5 or 6; it
// doubles with every retry, capped at the request timeout.
const busyBackoff = 50 * time.Millisecond

// Driver is one Modbus device. It implements protocols.Driver and
// protocols.Counter. Poll and the writes may be called from different
// goroutines; requests to the device are serialised by its link, or
// pipelined by it up to max_inflight.
type Driver struct {
	name    string
	cfg     DeviceConfig
	unit    byte
	timeout time.Duration
	retries int
	lim     limits
	points  []Point
	spans   []span
	codecs  []codec
	byName  map[string]int // point index by name; only with writes (Write)

	pool     *Pool
	link     *link
	packager gb.Packager
	log      *slog.Logger
	closed   sync.Once

	pollMu sync.Mutex // one Poll at a time; guards regs
	regs   [maxRegisters]uint16

	mu    sync.Mutex // guards plan and stats
	plan  []request
	stats Stats

	requests atomic.Uint64
	late     atomic.Uint64
}

// Stats are a device's counters since its Driver was made. Every request is
// counted once per attempt (retries included).
type Stats struct {
	Requests uint64
	// Errors counts failed requests of every kind; the kinds follow.
	Errors     uint64
	Timeouts   uint64
	IO         uint64          // connection refused, reset or closed
	Frames     uint64          // malformed or mismatched answers
	Exceptions map[byte]uint64 // Modbus exceptions by code
	// Splits counts merged requests split after exception 2 or 3.
	Splits uint64
	// BadValues counts NaN or infinite floats read from the device.
	BadValues uint64
	// LateAnswers counts answers that came after their request had timed
	// out, read and dropped (max_inflight above 1 only: the connection is
	// kept when the server answers others meanwhile). The timeout itself
	// is counted in Timeouts.
	LateAnswers uint64
	LastError   string
	LastErrorAt time.Time
	// Round-trip times of answered requests (exceptions included).
	LastRTT time.Duration
	MaxRTT  time.Duration
	MeanRTT time.Duration
	answers uint64
	rttSum  time.Duration
}

// newDriver checks a device's points and plans its reads. It does not dial.
func newDriver(p *Pool, device string, cfg DeviceConfig, points []Point, t Target) (*Driver, error) {
	d := &Driver{
		name: device, cfg: cfg, pool: p,
		unit: DefaultUnit, timeout: cfg.Timeout, retries: DefaultRetries,
		lim:    limits{maxRegs: cfg.MaxRegistersPerRequest, maxBits: cfg.MaxBitsPerRequest, maxGap: DefaultMaxGapFor(t.Scheme)},
		points: points,
		spans:  make([]span, 0, len(points)),
		codecs: make([]codec, 0, len(points)),
	}
	if cfg.Unit != nil {
		if *cfg.Unit < 0 || *cfg.Unit > 255 {
			return nil, fmt.Errorf("device %q: unit %d: want 0..255 (0..247 on serial lines)", device, *cfg.Unit)
		}
		d.unit = byte(*cfg.Unit)
	}
	if d.timeout <= 0 {
		d.timeout = DefaultTimeout
	}
	if cfg.Retries != nil && *cfg.Retries >= 0 {
		d.retries = *cfg.Retries
	}
	if d.lim.maxRegs <= 0 || d.lim.maxRegs > maxRegisters {
		d.lim.maxRegs = maxRegisters
	}
	if d.lim.maxBits <= 0 || d.lim.maxBits > maxBits {
		d.lim.maxBits = maxBits
	}
	if cfg.MaxGap != nil && *cfg.MaxGap >= 0 {
		d.lim.maxGap = *cfg.MaxGap
	}
	if cfg.MaxInflight != nil {
		if msg := maxInflightProblem(*cfg.MaxInflight, t.Scheme); msg != "" {
			return nil, fmt.Errorf("device %q: max_inflight %s", device, msg)
		}
	}
	d.log = p.log.With("device", device)
	switch t.Scheme {
	case "tcp":
		h := &gb.TCPClientHandler{}
		h.SlaveId = d.unit
		d.packager = h
	case "ascii":
		h := &gb.ASCIIClientHandler{}
		h.SlaveId = d.unit
		d.packager = h
	default:
		h := &gb.RTUClientHandler{}
		h.SlaveId = d.unit
		d.packager = h
	}
	byName := make(map[string]int, len(points))
	for i, pt := range points {
		if _, dup := byName[pt.Name]; dup {
			return nil, fmt.Errorf("device %q: point %q is defined twice", device, pt.Name)
		}
		byName[pt.Name] = i
		tb, ok := parseTable(pt.Table)
		if !ok {
			return nil, fmt.Errorf("device %q point %q: table %q: want coil, discrete, input or holding", device, pt.Name, pt.Table)
		}
		if pt.Address == nil || *pt.Address < 0 || *pt.Address > 65535 {
			return nil, fmt.Errorf("device %q point %q: address: want 0..65535", device, pt.Name)
		}
		var c codec
		s := span{table: tb, addr: *pt.Address, width: 1}
		if tb.isBits() {
			if pt.Type != "" && pt.Type != "bool" {
				return nil, fmt.Errorf("device %q point %q: type %q: a %s is a single bit, use type bool", device, pt.Name, pt.Type, tb)
			}
			c = codec{kind: kBool}
		} else {
			typ := pt.Type
			if typ == "" {
				typ = "uint16"
			}
			var err error
			if c, err = newCodec(typ, pt.Order, pt.Bit, pt.Length); err != nil {
				return nil, fmt.Errorf("device %q point %q: %v", device, pt.Name, err)
			}
			s.width = c.registers()
			if s.width > d.lim.maxRegs {
				return nil, fmt.Errorf("device %q point %q: %d registers do not fit one request (max_registers_per_request %d)", device, pt.Name, s.width, d.lim.maxRegs)
			}
		}
		if s.end() > 65536 {
			return nil, fmt.Errorf("device %q point %q: address %d + %d registers passes 65535", device, pt.Name, s.addr, s.width)
		}
		d.spans = append(d.spans, s)
		d.codecs = append(d.codecs, c)
	}
	d.plan = planRequests(d.spans, d.lim)
	if cfg.Writes {
		// Only Write looks points up by name: a device that is only read
		// does not keep the map (about 40 bytes a point).
		d.byName = byName
	}
	return d, nil
}

// Plan is the device's current request plan: the planned requests, with any
// split the device forced by answering exception 2 or 3 to a merged request.
func (d *Driver) Plan() []Request {
	d.mu.Lock()
	defer d.mu.Unlock()
	names := make([]string, len(d.points))
	for i, p := range d.points {
		names[i] = p.Name
	}
	return exported(d.plan, d.spans, names)
}

// window is how many requests the device allows outstanding at once.
func (d *Driver) window() int {
	if d.cfg.MaxInflight == nil || d.cfg.InterRequestDelay > 0 {
		return 1
	}
	return max(*d.cfg.MaxInflight, 1)
}

// Requests is how many requests the driver sent (retries included).
func (d *Driver) Requests() uint64 { return d.requests.Load() }

// Stats returns a copy of the device's counters.
func (d *Driver) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.stats
	s.Requests = d.requests.Load()
	s.LateAnswers = d.late.Load()
	s.Exceptions = make(map[byte]uint64, len(d.stats.Exceptions))
	for k, v := range d.stats.Exceptions {
		s.Exceptions[k] = v
	}
	if s.answers > 0 {
		s.MeanRTT = s.rttSum / time.Duration(s.answers)
	}
	return s
}

// Connect opens the device's connection (shared with the other devices of
// its line) if it is not open. Errors wrap protocols.ErrNotConnected.
func (d *Driver) Connect(ctx context.Context) error {
	if err := d.link.connect(ctx, d.timeout); err != nil {
		return fmt.Errorf("device %q: connect %s: %w", d.name, d.link.target, err)
	}
	return nil
}

// Close leaves the shared connection; the last device to leave closes it.
func (d *Driver) Close() error {
	var err error
	d.closed.Do(func() { err = d.pool.release(d.link) })
	return err
}

// Poll reads every point once, one request of the plan at a time (on a
// pipelined link, max_inflight > 1: the plan's requests sent together,
// their answers handled in plan order with the same outcomes), and emits
// one sample per point: good with the value, or bad (with the exception code
// when there was one) when its request failed. It returns nil when at least
// one request was answered. When the device cannot be reached (connection
// refused or broken, or a request timed out after its retries) it stops,
// emits the points not yet read as bad and returns an error wrapping
// protocols.ErrNotConnected.
func (d *Driver) Poll(ctx context.Context, emit protocols.Emit) error {
	d.pollMu.Lock()
	defer d.pollMu.Unlock()
	d.mu.Lock()
	plan := d.plan
	d.mu.Unlock()

	var (
		answered bool
		firstErr error
		newPlan  []request // made only when a request is split
		pipe     = d.link.pipelined()
		sent     []*call // the plan's first attempts, sent together
	)
	if pipe != nil && len(plan) > 1 {
		sent = d.sendPlan(ctx, pipe, plan)
	}
	for i, r := range plan {
		var first *call
		if sent != nil {
			first = sent[i]
		}
		split, ok, err := d.pollRequest(ctx, r, emit, first)
		if newPlan == nil && split != nil {
			newPlan = append(make([]request, 0, len(plan)+len(split)), plan[:i]...)
		}
		switch {
		case split != nil:
			newPlan = append(newPlan, split...)
		case newPlan != nil:
			newPlan = append(newPlan, r)
		}
		answered = answered || ok
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if err != nil && (errors.Is(err, protocols.ErrNotConnected) || errors.Is(err, ErrTimeout) || ctx.Err() != nil) {
			if sent != nil {
				pipe.cancel(sent[i+1:]...)
			}
			ts := time.Now().UnixMilli()
			for _, rest := range plan[i+1:] {
				d.emitBad(rest, 0, ts, emit)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !errors.Is(err, protocols.ErrNotConnected) {
				err = fmt.Errorf("%w (%w)", err, protocols.ErrNotConnected)
			}
			return err
		}
	}
	if newPlan != nil {
		d.mu.Lock()
		d.plan = newPlan
		d.mu.Unlock()
		d.log.Info("request plan narrowed after illegal-address answers", "requests", len(newPlan))
	}
	if answered || len(plan) == 0 {
		return nil
	}
	return firstErr
}

// pollRequest reads one request, emits its points, and returns the requests
// that replace it in the plan: nil when it stays as it is (the usual case,
// which allocates nothing), or the parts it was split into after exception
// 2 or 3 (split again as deep as needed, within this poll).
//
// first, when not nil, is the request's first attempt, already sent with
// the rest of the plan.
func (d *Driver) pollRequest(ctx context.Context, r request, emit protocols.Emit, first *call) (split []request, answered bool, err error) {
	data, err := d.readFirst(ctx, r, first)
	ts := time.Now().UnixMilli()
	if err == nil {
		d.emitData(r, data, ts, emit)
		return nil, true, nil
	}
	var ex *ExceptionError
	if errors.As(err, &ex) && (ex.Code == 2 || ex.Code == 3) && len(r.points) > 1 {
		d.mu.Lock()
		d.stats.Splits++
		d.mu.Unlock()
		a, b := splitRequest(d.spans, r)
		ka, oka, erra := d.pollRequest(ctx, a, emit, nil)
		ka = orItself(ka, a)
		if erra != nil && (errors.Is(erra, protocols.ErrNotConnected) || errors.Is(erra, ErrTimeout) || ctx.Err() != nil) {
			d.emitBad(b, 0, ts, emit)
			return append(ka, b), oka, erra
		}
		kb, okb, errb := d.pollRequest(ctx, b, emit, nil)
		kb = orItself(kb, b)
		if erra == nil {
			erra = errb
		}
		if oka || okb {
			erra = nil
		}
		return append(ka, kb...), oka || okb, erra
	}
	code := uint32(0)
	if ex != nil {
		code = uint32(ex.Code)
	}
	d.emitBad(r, code, ts, emit)
	return nil, false, err
}

// orItself is what pollRequest's answer for r means: split, or r alone.
func orItself(split []request, r request) []request {
	if split == nil {
		return []request{r}
	}
	return split
}

func (d *Driver) emitBad(r request, code uint32, ts int64, emit protocols.Emit) {
	for _, i := range r.points {
		emit(wire.Sample{Device: d.name, Point: d.points[i].Name, Quality: wire.Bad, Code: code, TS: ts})
	}
}

// emitData decodes the answer to r and emits its points.
func (d *Driver) emitData(r request, data []byte, ts int64, emit protocols.Emit) {
	if r.table.isBits() {
		for _, i := range r.points {
			off := d.spans[i].addr - r.start
			v := data[off/8]>>(off%8)&1 == 1
			emit(wire.Sample{Device: d.name, Point: d.points[i].Name, Value: wire.BoolValue(v), TS: ts})
		}
		return
	}
	regs := d.regs[:r.count]
	for j := range regs {
		regs[j] = binary.BigEndian.Uint16(data[2*j:])
	}
	for _, i := range r.points {
		off := d.spans[i].addr - r.start
		s := wire.Sample{Device: d.name, Point: d.points[i].Name, TS: ts}
		v, err := d.codecs[i].decode(regs[off:])
		if f, isFloat := v.Float(); err != nil || (v.Kind() == wire.Float && isFloat && (math.IsNaN(f) || math.IsInf(f, 0))) {
			s.Quality = wire.Bad
			d.mu.Lock()
			d.stats.BadValues++
			d.mu.Unlock()
		} else {
			s.Value = v
		}
		emit(s)
	}
}

// read performs one planned read with retries and returns the raw data
// bytes (registers big-endian, or packed bits).
func (d *Driver) read(ctx context.Context, r request) ([]byte, error) {
	return d.readFirst(ctx, r, nil)
}

// readFirst is read whose first attempt, when first is not nil, was sent
// already (on a pipelined link).
func (d *Driver) readFirst(ctx context.Context, r request, first *call) ([]byte, error) {
	want := 2 * r.count
	if r.table.isBits() {
		want = (r.count + 7) / 8
	}
	var (
		data []byte
		err  error
	)
	if p := d.link.pipelined(); p != nil {
		data, err = d.readPiped(ctx, p, r, first, want)
	} else {
		start, count := uint16(r.start), uint16(r.count)
		data, err = d.exchange(ctx, func(c gb.Client) ([]byte, error) {
			switch r.table {
			case coil:
				return c.ReadCoils(start, count)
			case discrete:
				return c.ReadDiscreteInputs(start, count)
			case holding:
				return c.ReadHoldingRegisters(start, count)
			default:
				return c.ReadInputRegisters(start, count)
			}
		}, want)
	}
	if err != nil {
		return nil, fmt.Errorf("device %q unit %d: read %s %d..%d: %w", d.name, d.unit, r.table, r.start, r.start+r.count-1, err)
	}
	return data, nil
}

// sendPlan sends the first attempt of every request of plan at once on a
// pipelined link (as many as its window allows at once, the rest as answers
// come back).
func (d *Driver) sendPlan(ctx context.Context, p *pipe, plan []request) []*call {
	calls := make([]*call, len(plan))
	for i, r := range plan {
		calls[i] = newCall(ctx, readADU(d.unit, r), d.timeout)
		calls[i].late = &d.late
	}
	d.requests.Add(uint64(len(plan)))
	p.submit(ctx, d.timeout, calls...)
	return calls
}

// readPiped is one planned read with retries on a pipelined link: the
// request is encoded and its answer checked here rather than by goburrow,
// with the same checks (readData), so that a plan's requests can go out
// together.
func (d *Driver) readPiped(ctx context.Context, p *pipe, r request, first *call, want int) ([]byte, error) {
	backoff := busyBackoff
	for attempt := 0; ; attempt++ {
		c := first
		if attempt > 0 || c == nil {
			c = newCall(ctx, readADU(d.unit, r), d.timeout)
			c.late = &d.late
			d.requests.Add(1)
			p.submit(ctx, d.timeout, c)
		}
		ans, err := p.wait(ctx, c)
		rtt := time.Since(c.start)
		var data []byte
		if err == nil {
			data, err = readData(ans)
		}
		if err = d.attempted(data, err, want, rtt); err == nil {
			return data, nil
		}
		if err = d.retry(ctx, err, attempt, &backoff); err != nil {
			return nil, err
		}
	}
}

// readFunction is the read function code of each table.
var readFunction = [...]byte{coil: 1, discrete: 2, holding: 3, input: 4}

// readADU is the Modbus TCP request of a planned read; the pipe sets its
// transaction id.
func readADU(unit byte, r request) []byte {
	return []byte{0, 0, 0, 0, 0, 6, unit, readFunction[r.table],
		byte(r.start >> 8), byte(r.start), byte(r.count >> 8), byte(r.count)}
}

// readData returns the data bytes of a read answer that checkMBAP passed,
// with the checks goburrow's client makes of the answer it returns for a
// read: an exception answer is an *ExceptionError, and the byte count must
// match the bytes that follow it.
func readData(ans []byte) ([]byte, error) {
	if len(ans) < 9 {
		return nil, fmt.Errorf("%w: answer without data", ErrFrame)
	}
	pdu := ans[7:]
	if pdu[0]&0x80 != 0 {
		return nil, &ExceptionError{Function: pdu[0] &^ 0x80, Code: pdu[1]}
	}
	if int(pdu[1]) != len(pdu)-2 {
		return nil, fmt.Errorf("%w: byte count %d, %d data bytes follow", ErrFrame, pdu[1], len(pdu)-2)
	}
	return pdu[2:], nil
}

// exchange runs one request with retries (see retry); want is the expected
// answer length (-1: any).
func (d *Driver) exchange(ctx context.Context, do func(gb.Client) ([]byte, error), want int) ([]byte, error) {
	client := gb.NewClient2(d.packager, sendFunc(func(adu []byte) ([]byte, error) {
		d.requests.Add(1)
		return d.link.roundTrip(ctx, adu, d.timeout, &d.late)
	}))
	backoff := busyBackoff
	for attempt := 0; ; attempt++ {
		t0 := time.Now()
		data, err := do(client)
		rtt := time.Since(t0)
		if err = d.attempted(data, d.classify(err), want, rtt); err == nil {
			return data, nil
		}
		if err = d.retry(ctx, err, attempt, &backoff); err != nil {
			return nil, err
		}
	}
}

// attempted checks an attempt's answer length against want (-1: any) and
// counts the attempt; it returns the attempt's error.
func (d *Driver) attempted(data []byte, err error, want int, rtt time.Duration) error {
	if err == nil && want >= 0 && len(data) != want {
		err = fmt.Errorf("%w: %d data bytes, want %d", ErrFrame, len(data), want)
	}
	d.record(err, rtt)
	return err
}

// retry decides after attempt (0 first) failed with err whether to try
// again: it returns nil to retry, or the error to end with. Timeouts, bad
// frames and broken connections are retried at once, on a fresh connection
// when the link dropped the old one (on a pipelined link a timeout keeps
// the connection while the server answers other requests, and the retry
// goes on it); exceptions 4, 5 and 6 after a pause that
// doubles each time (capped at the timeout); anything else is final, and so
// is any error after the last retry.
func (d *Driver) retry(ctx context.Context, err error, attempt int, backoff *time.Duration) error {
	var ex *ExceptionError
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case attempt >= d.retries:
		return err
	case errors.As(err, &ex):
		if ex.Code != 4 && ex.Code != 5 && ex.Code != 6 {
			return err
		}
		t := time.NewTimer(*backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		*backoff = min(2**backoff, d.timeout)
		return nil
	case errors.Is(err, ErrTimeout), errors.Is(err, ErrFrame):
		return nil // on a fresh connection, or the kept pipelined one
	case errors.Is(err, protocols.ErrNotConnected):
		// A connection that broke is redialled by the retry; one that
		// cannot be opened is final.
		var de *dialError
		if errors.As(err, &de) {
			return err
		}
		return nil
	}
	return err
}

// classify turns goburrow's errors into this package's.
func (d *Driver) classify(err error) error {
	if err == nil {
		return nil
	}
	var me *gb.ModbusError
	if errors.As(err, &me) {
		return &ExceptionError{Function: me.FunctionCode &^ 0x80, Code: me.ExceptionCode}
	}
	if errors.Is(err, ErrTimeout) || errors.Is(err, ErrFrame) || errors.Is(err, protocols.ErrNotConnected) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	// goburrow's own checks of an answer it was given (length, CRC, count).
	return fmt.Errorf("%w: %v", ErrFrame, err)
}

// record counts one attempt's outcome.
func (d *Driver) record(err error, rtt time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := &d.stats
	if err == nil {
		s.answered(rtt)
		return
	}
	// ex is declared only here: errors.As makes it escape, and a
	// successful request (the hot path) must not pay for it.
	var ex *ExceptionError
	if errors.As(err, &ex) {
		s.answered(rtt)
	}
	s.Errors++
	switch {
	case ex != nil:
		if s.Exceptions == nil {
			s.Exceptions = map[byte]uint64{}
		}
		s.Exceptions[ex.Code]++
	case errors.Is(err, ErrTimeout):
		s.Timeouts++
	case errors.Is(err, ErrFrame):
		s.Frames++
	default:
		s.IO++
	}
	s.LastError = err.Error()
	s.LastErrorAt = time.Now()
}

// answered counts the round-trip time of a request the device answered.
func (s *Stats) answered(rtt time.Duration) {
	s.LastRTT = rtt
	s.MaxRTT = max(s.MaxRTT, rtt)
	s.answers++
	s.rttSum += rtt
}

// sendFunc adapts a function to goburrow's Transporter.
type sendFunc func([]byte) ([]byte, error)

func (f sendFunc) Send(adu []byte) ([]byte, error) { return f(adu) }

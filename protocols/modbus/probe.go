package modbus

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Prober reads raw registers or bits from any unit of one target, once,
// without retries, for the field tools (weft-agent probe modbus and scan
// modbus).
type Prober struct {
	pool    *Pool
	target  string
	timeout time.Duration

	mu      sync.Mutex
	drivers map[int]*Driver
}

// NewProber checks the target; it does not dial.
func NewProber(target string, timeout time.Duration) (*Prober, error) {
	if _, err := ParseTarget(target); err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Prober{pool: NewPool(nil), target: target, timeout: timeout, drivers: map[int]*Driver{}}, nil
}

// Read reads count registers (or bits, for coil and discrete) of table from
// address on unit. It returns the data bytes as the device sent them
// (registers big-endian; bits packed, first bit in the low bit of the first
// byte) and the round-trip time.
func (p *Prober) Read(ctx context.Context, unit int, table string, address, count int) ([]byte, time.Duration, error) {
	tb, ok := parseTable(table)
	if !ok {
		return nil, 0, fmt.Errorf("table %q: want coil, discrete, input or holding", table)
	}
	limit := maxRegisters
	if tb.isBits() {
		limit = maxBits
	}
	if count < 1 || count > limit {
		return nil, 0, fmt.Errorf("count %d: want 1..%d for the %s table", count, limit, tb)
	}
	if address < 0 || address+count > 65536 {
		return nil, 0, fmt.Errorf("address %d + count %d: want inside 0..65535", address, count)
	}
	if unit < 0 || unit > 255 {
		return nil, 0, fmt.Errorf("unit %d: want 0..247", unit)
	}
	p.mu.Lock()
	d := p.drivers[unit]
	if d == nil {
		var err error
		d, err = p.pool.Driver(fmt.Sprint("unit ", unit), DeviceConfig{Target: p.target, Unit: &unit, Timeout: p.timeout, Retries: new(int)}, nil)
		if err != nil {
			p.mu.Unlock()
			return nil, 0, err
		}
		p.drivers[unit] = d
	}
	p.mu.Unlock()
	t0 := time.Now()
	data, err := d.read(ctx, request{table: tb, start: address, count: count})
	return data, time.Since(t0), err
}

// Close closes the connection.
func (p *Prober) Close() error { return p.pool.Close() }

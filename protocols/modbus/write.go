package modbus

import (
	"context"
	"encoding/binary"
	"fmt"

	gb "github.com/goburrow/modbus"

	"github.com/weftiot/weft/wire"
)

// Write sets a point to v: a coil with function 5, one holding register with
// function 6, several with function 16 (encoded in the point's type and
// order). Discrete inputs, input registers and bit points cannot be written.
// It fails with ErrWritesDisabled unless the device has writes: true.
func (d *Driver) Write(ctx context.Context, point string, v wire.Value) error {
	if !d.cfg.Writes {
		return fmt.Errorf("device %q: write %q: %w", d.name, point, ErrWritesDisabled)
	}
	i, ok := d.byName[point]
	if !ok {
		return fmt.Errorf("device %q: write: no point %q", d.name, point)
	}
	p, s, c := d.points[i], d.spans[i], d.codecs[i]
	addr := uint16(s.addr)
	switch {
	case s.table == coil:
		if v.Kind() != wire.Bool {
			return fmt.Errorf("device %q: write %q: a coil takes true or false", d.name, point)
		}
		val := uint16(0)
		if v.Bool() {
			val = 0xFF00
		}
		return d.write(ctx, fmt.Sprintf("write coil %d", s.addr), func(cl gb.Client) ([]byte, error) { return cl.WriteSingleCoil(addr, val) })
	case s.table != holding:
		return fmt.Errorf("device %q: write %q: the %s table is read-only", d.name, point, s.table)
	case c.kind == kBit:
		return fmt.Errorf("device %q: write %q: a bit point cannot be written alone; write its whole register", d.name, point)
	}
	typ := p.Type
	if typ == "" {
		typ = "uint16"
	}
	regs, err := Encode(typ, p.Order, v, c.length)
	if err != nil {
		return fmt.Errorf("device %q: write %q: %w", d.name, point, err)
	}
	return d.WriteRegisters(ctx, s.addr, regs)
}

// WriteRegisters writes holding registers from addr: function 6 for one,
// function 16 for more (at most 123).
func (d *Driver) WriteRegisters(ctx context.Context, addr int, regs []uint16) error {
	if !d.cfg.Writes {
		return fmt.Errorf("device %q: write holding %d: %w", d.name, addr, ErrWritesDisabled)
	}
	if len(regs) == 0 || len(regs) > 123 || addr < 0 || addr+len(regs) > 65536 {
		return fmt.Errorf("device %q: write holding %d: %d registers: want 1..123 inside 0..65535", d.name, addr, len(regs))
	}
	a := uint16(addr)
	if len(regs) == 1 {
		return d.write(ctx, fmt.Sprintf("write holding %d", addr), func(cl gb.Client) ([]byte, error) { return cl.WriteSingleRegister(a, regs[0]) })
	}
	b := make([]byte, 2*len(regs))
	for i, r := range regs {
		binary.BigEndian.PutUint16(b[2*i:], r)
	}
	return d.write(ctx, fmt.Sprintf("write holding %d..%d", addr, addr+len(regs)-1), func(cl gb.Client) ([]byte, error) {
		return cl.WriteMultipleRegisters(a, uint16(len(regs)), b)
	})
}

// WriteCoils writes coils from addr with function 15 (at most 1968).
func (d *Driver) WriteCoils(ctx context.Context, addr int, values []bool) error {
	if !d.cfg.Writes {
		return fmt.Errorf("device %q: write coil %d: %w", d.name, addr, ErrWritesDisabled)
	}
	if len(values) == 0 || len(values) > 1968 || addr < 0 || addr+len(values) > 65536 {
		return fmt.Errorf("device %q: write coil %d: %d coils: want 1..1968 inside 0..65535", d.name, addr, len(values))
	}
	b := make([]byte, (len(values)+7)/8)
	for i, v := range values {
		if v {
			b[i/8] |= 1 << (i % 8)
		}
	}
	a, n := uint16(addr), uint16(len(values))
	return d.write(ctx, fmt.Sprintf("write coil %d..%d", addr, addr+len(values)-1), func(cl gb.Client) ([]byte, error) {
		return cl.WriteMultipleCoils(a, n, b)
	})
}

func (d *Driver) write(ctx context.Context, what string, do func(gb.Client) ([]byte, error)) error {
	if _, err := d.exchange(ctx, do, -1); err != nil {
		return fmt.Errorf("device %q unit %d: %s: %w", d.name, d.unit, what, err)
	}
	return nil
}

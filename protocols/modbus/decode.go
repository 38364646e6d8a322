package modbus

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"github.com/weftiot/weft/wire"
)

// Types are the point types a register or bit decodes as, in the order probe
// shows them.
var Types = []string{"int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string", "bool", "bit"}

// Orders are the byte and word orders, named by where the bytes A B C D of a
// big-endian 32-bit value sit on the wire:
//
//	ABCD  big-endian (Modbus' own order)          0x11223344 → regs 1122 3344
//	CDAB  word-swapped ("little-endian words")    0x11223344 → regs 3344 1122
//	BADC  byte-swapped within each register        0x11223344 → regs 2211 4433
//	DCBA  little-endian                            0x11223344 → regs 4433 2211
//
// 64-bit values extend the same rule to four registers (CDAB reverses the
// register order, BADC swaps the bytes of each register, DCBA does both).
// 16-bit values only see the byte swap: BADC and DCBA swap, ABCD and CDAB do
// not. Strings are two characters per register, high byte first; BADC and
// DCBA put the low byte first.
var Orders = []string{"ABCD", "CDAB", "BADC", "DCBA"}

type kind uint8

const (
	kInvalid kind = iota
	kBool         // a coil or discrete input; a register that is non-zero
	kBit          // bit N of a register
	kInt16
	kUint16
	kInt32
	kUint32
	kInt64
	kUint64
	kFloat32
	kFloat64
	kString
)

var kindByName = map[string]kind{
	"bool": kBool, "bit": kBit,
	"int16": kInt16, "uint16": kUint16,
	"int32": kInt32, "uint32": kUint32,
	"int64": kInt64, "uint64": kUint64,
	"float32": kFloat32, "float64": kFloat64,
	"string": kString,
}

// order is how the wire bytes are permuted into big-endian order.
type order uint8

const (
	oABCD order = iota
	oCDAB
	oBADC
	oDCBA
)

func parseOrder(s string) (order, bool) {
	switch strings.ToUpper(s) {
	case "", "ABCD":
		return oABCD, true
	case "CDAB":
		return oCDAB, true
	case "BADC":
		return oBADC, true
	case "DCBA":
		return oDCBA, true
	}
	return 0, false
}

func (o order) swapBytes() bool { return o == oBADC || o == oDCBA }
func (o order) swapWords() bool { return o == oCDAB || o == oDCBA }

// codec is a point's decoding, checked once when the driver is built so that
// decoding a reply allocates nothing (strings excepted).
type codec struct {
	kind   kind
	order  order
	bit    uint8
	length int // registers of a string
}

func newCodec(typ, ord string, bit *int, length int) (codec, error) {
	k, ok := kindByName[strings.ToLower(typ)]
	if !ok {
		return codec{}, fmt.Errorf("type %q: want one of %s", typ, strings.Join(Types, ", "))
	}
	o, ok := parseOrder(ord)
	if !ok {
		return codec{}, fmt.Errorf("order %q: want one of %s", ord, strings.Join(Orders, ", "))
	}
	c := codec{kind: k, order: o}
	if k == kBit {
		if bit == nil || *bit < 0 || *bit > 15 {
			return codec{}, fmt.Errorf("type bit needs bit: 0..15")
		}
		c.bit = uint8(*bit)
	}
	if k == kString {
		if length < 1 || length > 125 {
			return codec{}, fmt.Errorf("type string needs length: 1..125 registers, have %d", length)
		}
		c.length = length
	}
	return c, nil
}

// registers is how many registers the codec reads.
func (c codec) registers() int {
	switch c.kind {
	case kInt32, kUint32, kFloat32:
		return 2
	case kInt64, kUint64, kFloat64:
		return 4
	case kString:
		return c.length
	}
	return 1
}

// RegisterCount is how many registers a point of type typ occupies (length
// is the register count of a string). It is 0 for an unknown type.
func RegisterCount(typ string, length int) int {
	k, ok := kindByName[strings.ToLower(typ)]
	if !ok {
		return 0
	}
	return codec{kind: k, length: length}.registers()
}

// Decode decodes registers as type typ in byte order ord. It reads the first
// RegisterCount(typ) registers of regs; a string takes all of regs. For type
// bit use DecodeBit. A NaN or infinite float is returned as it is; the driver
// turns it into a bad sample.
func Decode(typ, ord string, regs []uint16) (wire.Value, error) {
	k, ok := kindByName[strings.ToLower(typ)]
	if !ok || k == kBit {
		return wire.Value{}, fmt.Errorf("decode: type %q: want one of int16, uint16, int32, uint32, int64, uint64, float32, float64, string, bool", typ)
	}
	o, ok := parseOrder(ord)
	if !ok {
		return wire.Value{}, fmt.Errorf("decode: order %q: want one of %s", ord, strings.Join(Orders, ", "))
	}
	c := codec{kind: k, order: o, length: len(regs)}
	if k == kString && (len(regs) == 0 || len(regs) > maxRegisters) {
		return wire.Value{}, fmt.Errorf("decode: string needs 1..%d registers, have %d", maxRegisters, len(regs))
	}
	return c.decode(regs)
}

// DecodeBit returns bit n (0 = least significant) of a register.
func DecodeBit(reg uint16, n int) (wire.Value, error) {
	if n < 0 || n > 15 {
		return wire.Value{}, fmt.Errorf("decode: bit %d: want 0..15", n)
	}
	return wire.BoolValue(reg>>uint(n)&1 == 1), nil
}

// decode decodes the codec's registers from the front of regs.
func (c codec) decode(regs []uint16) (wire.Value, error) {
	n := c.registers()
	if len(regs) < n {
		return wire.Value{}, fmt.Errorf("decode %s: need %d registers, have %d", c.kind, n, len(regs))
	}
	switch c.kind {
	case kBool:
		return wire.BoolValue(regs[0] != 0), nil
	case kBit:
		return wire.BoolValue(regs[0]>>c.bit&1 == 1), nil
	case kInt16:
		return wire.IntValue(int64(int16(c.word(regs[0])))), nil
	case kUint16:
		return wire.UintValue(uint64(c.word(regs[0]))), nil
	case kInt32:
		return wire.IntValue(int64(int32(c.u32(regs)))), nil
	case kUint32:
		return wire.UintValue(uint64(c.u32(regs))), nil
	case kFloat32:
		return wire.Float32Value(math.Float32frombits(c.u32(regs))), nil
	case kInt64:
		return wire.IntValue(int64(c.u64(regs))), nil
	case kUint64:
		return wire.UintValue(c.u64(regs)), nil
	case kFloat64:
		return wire.FloatValue(math.Float64frombits(c.u64(regs))), nil
	case kString:
		return wire.StringValue(c.str(regs[:n])), nil
	}
	return wire.Value{}, fmt.Errorf("decode: invalid type")
}

func (c codec) word(r uint16) uint16 {
	if c.order.swapBytes() {
		return r<<8 | r>>8
	}
	return r
}

func (c codec) u32(regs []uint16) uint32 {
	hi, lo := c.word(regs[0]), c.word(regs[1])
	if c.order.swapWords() {
		hi, lo = lo, hi
	}
	return uint32(hi)<<16 | uint32(lo)
}

func (c codec) u64(regs []uint16) uint64 {
	w := [4]uint16{c.word(regs[0]), c.word(regs[1]), c.word(regs[2]), c.word(regs[3])}
	if c.order.swapWords() {
		w[0], w[1], w[2], w[3] = w[3], w[2], w[1], w[0]
	}
	return uint64(w[0])<<48 | uint64(w[1])<<32 | uint64(w[2])<<16 | uint64(w[3])
}

// str decodes two characters per register and trims trailing NULs and
// spaces (and leading spaces, which some PLCs pad with).
func (c codec) str(regs []uint16) string {
	var buf [250]byte
	b := buf[:2*len(regs)]
	for i, r := range regs {
		binary.BigEndian.PutUint16(b[2*i:], c.word(r))
	}
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return strings.Trim(string(b), " \x00")
}

func (k kind) String() string {
	for name, v := range kindByName {
		if v == k {
			return name
		}
	}
	return "invalid"
}

// Encode is the inverse of Decode: the registers that carry v as type typ in
// order ord. A string is padded with NULs to length registers (or to its own
// length when length is 0). It is used by writes.
func Encode(typ, ord string, v wire.Value, length int) ([]uint16, error) {
	k, ok := kindByName[strings.ToLower(typ)]
	if !ok || k == kBit {
		return nil, fmt.Errorf("encode: type %q cannot be written as registers", typ)
	}
	o, ok := parseOrder(ord)
	if !ok {
		return nil, fmt.Errorf("encode: order %q: want one of %s", ord, strings.Join(Orders, ", "))
	}
	c := codec{kind: k, order: o}
	var u uint64
	switch k {
	case kString:
		if v.Kind() != wire.String {
			return nil, fmt.Errorf("encode: string point needs a string value")
		}
		s := v.Str()
		if length == 0 {
			length = (len(s) + 1) / 2
		}
		if len(s) > 2*length {
			return nil, fmt.Errorf("encode: %q is longer than %d registers", s, length)
		}
		b := make([]byte, 2*length)
		copy(b, s)
		regs := make([]uint16, length)
		for i := range regs {
			regs[i] = c.word(binary.BigEndian.Uint16(b[2*i:]))
		}
		return regs, nil
	case kFloat32:
		f, ok := v.Float()
		if !ok {
			return nil, fmt.Errorf("encode: %s needs a number", typ)
		}
		u = uint64(math.Float32bits(float32(f)))
	case kFloat64:
		f, ok := v.Float()
		if !ok {
			return nil, fmt.Errorf("encode: %s needs a number", typ)
		}
		u = math.Float64bits(f)
	case kBool:
		if v.Kind() != wire.Bool {
			return nil, fmt.Errorf("encode: bool needs a boolean value")
		}
		if v.Bool() {
			u = 1
		}
	default:
		var err error
		if u, err = integerBits(k, v); err != nil {
			return nil, fmt.Errorf("encode: %s: %w", typ, err)
		}
	}
	switch c.registers() {
	case 1:
		return []uint16{c.word(uint16(u))}, nil
	case 2:
		w := []uint16{uint16(u >> 16), uint16(u)}
		if c.order.swapWords() {
			w[0], w[1] = w[1], w[0]
		}
		return []uint16{c.word(w[0]), c.word(w[1])}, nil
	default:
		w := []uint16{uint16(u >> 48), uint16(u >> 32), uint16(u >> 16), uint16(u)}
		if c.order.swapWords() {
			w[0], w[1], w[2], w[3] = w[3], w[2], w[1], w[0]
		}
		for i := range w {
			w[i] = c.word(w[i])
		}
		return w, nil
	}
}

// integerBits checks that v fits integer kind k and returns its two's
// complement bits.
func integerBits(k kind, v wire.Value) (uint64, error) {
	var lo, hi float64
	switch k {
	case kInt16:
		lo, hi = math.MinInt16, math.MaxInt16
	case kUint16:
		lo, hi = 0, math.MaxUint16
	case kInt32:
		lo, hi = math.MinInt32, math.MaxInt32
	case kUint32:
		lo, hi = 0, math.MaxUint32
	case kInt64:
		lo, hi = math.MinInt64, math.MaxInt64
	case kUint64:
		lo, hi = 0, math.MaxUint64
	}
	switch v.Kind() {
	case wire.Int:
		i := v.Int()
		if float64(i) < lo || float64(i) > hi {
			return 0, fmt.Errorf("%d is out of range", i)
		}
		return uint64(i), nil
	case wire.Uint:
		u := v.Uint()
		if float64(u) > hi {
			return 0, fmt.Errorf("%d is out of range", u)
		}
		return u, nil
	case wire.Float:
		f, _ := v.Float()
		if f != math.Trunc(f) || f < lo || f > hi {
			return 0, fmt.Errorf("%v is not an integer in range", f)
		}
		if f < 0 {
			return uint64(int64(f)), nil
		}
		return uint64(f), nil
	}
	return 0, fmt.Errorf("needs a number")
}

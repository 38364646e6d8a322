package modbus

import (
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftiot/weft/wire"
)

var update = flag.Bool("update", false, "rewrite golden files")

// Known layouts, written out by hand from the definitions of the orders.
func TestDecodeKnownLayouts(t *testing.T) {
	cases := []struct {
		typ   string
		order string
		regs  []uint16
		want  wire.Value
	}{
		{"uint16", "ABCD", []uint16{0x1234}, wire.UintValue(0x1234)},
		{"uint16", "CDAB", []uint16{0x1234}, wire.UintValue(0x1234)},
		{"uint16", "BADC", []uint16{0x1234}, wire.UintValue(0x3412)},
		{"uint16", "DCBA", []uint16{0x1234}, wire.UintValue(0x3412)},
		{"int16", "ABCD", []uint16{0xCFC7}, wire.IntValue(-12345)},
		{"int16", "CDAB", []uint16{0xCFC7}, wire.IntValue(-12345)},
		{"int16", "BADC", []uint16{0xC7CF}, wire.IntValue(-12345)},
		{"int16", "DCBA", []uint16{0xC7CF}, wire.IntValue(-12345)},
		{"uint32", "ABCD", []uint16{0x1122, 0x3344}, wire.UintValue(0x11223344)},
		{"uint32", "CDAB", []uint16{0x3344, 0x1122}, wire.UintValue(0x11223344)},
		{"uint32", "BADC", []uint16{0x2211, 0x4433}, wire.UintValue(0x11223344)},
		{"uint32", "DCBA", []uint16{0x4433, 0x2211}, wire.UintValue(0x11223344)},
		{"int32", "ABCD", []uint16{0xFFFF, 0xFFFE}, wire.IntValue(-2)},
		{"int32", "CDAB", []uint16{0xFFFE, 0xFFFF}, wire.IntValue(-2)},
		{"int32", "BADC", []uint16{0xFFFF, 0xFEFF}, wire.IntValue(-2)},
		{"int32", "DCBA", []uint16{0xFEFF, 0xFFFF}, wire.IntValue(-2)},
		{"uint64", "ABCD", []uint16{0x1122, 0x3344, 0x5566, 0x7788}, wire.UintValue(0x1122334455667788)},
		{"uint64", "CDAB", []uint16{0x7788, 0x5566, 0x3344, 0x1122}, wire.UintValue(0x1122334455667788)},
		{"uint64", "BADC", []uint16{0x2211, 0x4433, 0x6655, 0x8877}, wire.UintValue(0x1122334455667788)},
		{"uint64", "DCBA", []uint16{0x8877, 0x6655, 0x4433, 0x2211}, wire.UintValue(0x1122334455667788)},
		{"int64", "ABCD", []uint16{0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE}, wire.IntValue(-2)},
		{"int64", "CDAB", []uint16{0xFFFE, 0xFFFF, 0xFFFF, 0xFFFF}, wire.IntValue(-2)},
		{"int64", "BADC", []uint16{0xFFFF, 0xFFFF, 0xFFFF, 0xFEFF}, wire.IntValue(-2)},
		{"int64", "DCBA", []uint16{0xFEFF, 0xFFFF, 0xFFFF, 0xFFFF}, wire.IntValue(-2)},
		{"float32", "ABCD", []uint16{0x3FC0, 0x0000}, wire.FloatValue(1.5)},
		{"float32", "CDAB", []uint16{0x0000, 0x3FC0}, wire.FloatValue(1.5)},
		{"float32", "BADC", []uint16{0xC03F, 0x0000}, wire.FloatValue(1.5)},
		{"float32", "DCBA", []uint16{0x0000, 0xC03F}, wire.FloatValue(1.5)},
		{"float64", "ABCD", []uint16{0x3FF8, 0, 0, 0}, wire.FloatValue(1.5)},
		{"float64", "CDAB", []uint16{0, 0, 0, 0x3FF8}, wire.FloatValue(1.5)},
		{"float64", "BADC", []uint16{0xF83F, 0, 0, 0}, wire.FloatValue(1.5)},
		{"float64", "DCBA", []uint16{0, 0, 0, 0xF83F}, wire.FloatValue(1.5)},
		{"string", "ABCD", []uint16{0x4142, 0x4344, 0x2000}, wire.StringValue("ABCD")},
		{"string", "CDAB", []uint16{0x4142, 0x4344, 0x0000}, wire.StringValue("ABCD")},
		{"string", "BADC", []uint16{0x4241, 0x4443, 0x0045}, wire.StringValue("ABCDE")},
		{"string", "DCBA", []uint16{0x4241, 0x0043}, wire.StringValue("ABC")},
		{"string", "ABCD", []uint16{0x2041, 0x4200, 0x4344}, wire.StringValue("AB")},
		{"bool", "ABCD", []uint16{0x0100}, wire.BoolValue(true)},
		{"bool", "ABCD", []uint16{0}, wire.BoolValue(false)},
	}
	for _, c := range cases {
		t.Run(c.typ+"_"+c.order, func(t *testing.T) {
			got, err := Decode(c.typ, c.order, c.regs)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(c.want) {
				t.Errorf("Decode(%s, %s, %04x) = %+v, want %+v", c.typ, c.order, c.regs, got, c.want)
			}
			if c.typ == "string" || c.typ == "bool" {
				return
			}
			// Encode is the inverse.
			regs, err := Encode(c.typ, c.order, c.want, 0)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(regs) != fmt.Sprint(c.regs[:len(regs)]) {
				t.Errorf("Encode = %04x, want %04x", regs, c.regs)
			}
		})
	}
}

func TestDecodeBit(t *testing.T) {
	for n := range 16 {
		v, err := DecodeBit(0xA5C3, n)
		if err != nil {
			t.Fatal(err)
		}
		if v.Bool() != (0xA5C3>>n&1 == 1) {
			t.Errorf("bit %d = %v", n, v.Bool())
		}
	}
	if _, err := DecodeBit(1, 16); err == nil {
		t.Error("bit 16 accepted")
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, c := range []struct {
		typ, order string
		regs       []uint16
		want       string
	}{
		{"int32", "ABCD", []uint16{1}, "need 2 registers, have 1"},
		{"float64", "ABCD", []uint16{1, 2, 3}, "need 4 registers, have 3"},
		{"int24", "ABCD", []uint16{1}, `type "int24"`},
		{"int16", "ABDC", []uint16{1}, `order "ABDC"`},
		{"string", "ABCD", nil, "string needs 1..125 registers"},
		{"bit", "ABCD", []uint16{1}, `type "bit"`},
	} {
		_, err := Decode(c.typ, c.order, c.regs)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Decode(%s, %s, %v) = %v, want error containing %q", c.typ, c.order, c.regs, err, c.want)
		}
	}
}

func TestEncodeRanges(t *testing.T) {
	for _, c := range []struct {
		typ string
		v   wire.Value
	}{
		{"int16", wire.IntValue(40000)},
		{"uint16", wire.IntValue(-1)},
		{"uint32", wire.FloatValue(1.5)},
		{"int16", wire.StringValue("x")},
		{"string", wire.IntValue(1)},
	} {
		if _, err := Encode(c.typ, "ABCD", c.v, 0); err == nil {
			t.Errorf("Encode(%s, %+v) accepted", c.typ, c.v)
		}
	}
	regs, err := Encode("string", "BADC", wire.StringValue("ABC"), 3)
	if err != nil || fmt.Sprint(regs) != fmt.Sprint([]uint16{0x4241, 0x0043, 0}) {
		t.Errorf("Encode string = %04x, %v", regs, err)
	}
}

// The golden file shows one register block decoded as every type in every
// order, as probe prints it; review its diff when decoding changes.
func TestDecodeGolden(t *testing.T) {
	regs := []uint16{0x4049, 0x0FDB, 0x5441, 0x2D31}
	var b strings.Builder
	fmt.Fprintf(&b, "registers %04x\n", regs)
	for _, typ := range Types {
		if typ == "bit" {
			continue
		}
		for _, o := range Orders {
			v, err := Decode(typ, o, regs)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%-8s %s %s\n", typ, o, show(v))
		}
	}
	path := filepath.Join("testdata", "decode.golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestDecodeGolden -update)", err)
	}
	if string(want) != b.String() {
		t.Errorf("decoding changed; got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func show(v wire.Value) string {
	switch v.Kind() {
	case wire.Int:
		return fmt.Sprint(v.Int())
	case wire.Uint:
		return fmt.Sprint(v.Uint())
	case wire.Float:
		f, _ := v.Float()
		return fmt.Sprint(f)
	case wire.Bool:
		return fmt.Sprint(v.Bool())
	case wire.String:
		return fmt.Sprintf("%q", v.Str())
	}
	return "null"
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{0x40, 0x49, 0x0f, 0xdb}, uint8(6), uint8(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 1}, uint8(4), uint8(3))
	f.Add([]byte{0x41, 0x42, 0x43}, uint8(8), uint8(2))
	f.Add([]byte{}, uint8(0), uint8(1))
	f.Add([]byte{0x7f, 0xc0, 0, 0}, uint8(6), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, typ, order uint8) {
		regs := make([]uint16, len(data)/2)
		for i := range regs {
			regs[i] = uint16(data[2*i])<<8 | uint16(data[2*i+1])
		}
		ty := Types[int(typ)%len(Types)]
		o := Orders[int(order)%len(Orders)]
		v, err := Decode(ty, o, regs)
		if err != nil {
			return
		}
		if ty == "string" || ty == "bool" {
			return
		}
		// Whatever decodes re-encodes to the same registers (NaN payloads
		// excepted: float32 NaNs may not survive the float64 round trip).
		if f, ok := v.Float(); ok && math.IsNaN(f) {
			return
		}
		back, err := Encode(ty, o, v, 0)
		if err != nil {
			t.Fatalf("Encode(%s, %s, %+v): %v", ty, o, v, err)
		}
		if fmt.Sprint(back) != fmt.Sprint(regs[:len(back)]) {
			t.Fatalf("%s %s: %04x decoded to %+v re-encodes to %04x", ty, o, regs, v, back)
		}
	})
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"tcp://127.0.0.1:502", "tcp://plc", "rtuovertcp://[::1]:4001",
		"rtu:///dev/ttyUSB0?baud=9600&parity=N&data_bits=8&stop_bits=1", "ascii:///dev/ttyS1?baud=19200&parity=E",
		"tcp://:99999", "udp://x", "rtu://rel", "tcp://h:1?x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseTarget(s)
		if err != nil {
			if !strings.Contains(err.Error(), "target") {
				t.Fatalf("error does not name the target: %v", err)
			}
			return
		}
		// The canonical form parses to the same target.
		again, err := ParseTarget(tg.String())
		if err != nil || again != tg {
			t.Fatalf("%q -> %q -> %+v, %v", s, tg.String(), again, err)
		}
	})
}

func TestParseTarget(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"tcp://10.0.0.5", "tcp://10.0.0.5:502", ""},
		{"tcp://plc1:5020", "tcp://plc1:5020", ""},
		{"rtuovertcp://[::1]:4001", "rtuovertcp://[::1]:4001", ""},
		{"rtu:///dev/ttyUSB0", "rtu:///dev/ttyUSB0?baud=9600&data_bits=8&parity=N&stop_bits=1", ""},
		{"ascii:///dev/ttyS1?baud=19200&parity=e&data_bits=7", "ascii:///dev/ttyS1?baud=19200&data_bits=7&parity=E&stop_bits=1", ""},
		{"tcp://h:0", "", "port"},
		{"udp://h", "", `scheme "udp"`},
		{"10.0.0.5:502", "", "want tcp://"},
		{"rtu://dev/ttyUSB0", "", "absolute device path"},
		{"rtu:///dev/ttyUSB0?speed=9600", "", `unknown setting "speed"`},
		{"rtu:///dev/ttyUSB0?parity=X", "", "parity"},
		{"tcp://h/x", "", "only host:port"},
	} {
		tg, err := ParseTarget(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || tg.String() != c.want {
			t.Errorf("%s: %q, %v; want %q", c.in, tg.String(), err, c.want)
		}
	}
}

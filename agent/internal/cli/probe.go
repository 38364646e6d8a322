package cli

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/weftiot/weft/protocols"
	"github.com/weftiot/weft/protocols/modbus"
	"github.com/weftiot/weft/wire"
)

// probeModbusCmd reads registers once and shows them decoded as every type
// in every byte order, so that an engineer with a register map can see which
// layout the device uses.
func probeModbusCmd(ctx context.Context, env Env) int {
	fs := flag.NewFlagSet("probe modbus", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	target := fs.String("target", "", "device: tcp://HOST:PORT, rtuovertcp://HOST:PORT, rtu:///dev/ttyUSB0?baud=9600&parity=N, ascii://...")
	unit := fs.Int("unit", 1, "unit (slave) id, 0..247")
	table := fs.String("table", "holding", "holding, input, coil or discrete")
	address := fs.Int("address", 0, "first address, 0-based (register 40001 is holding address 0)")
	count := fs.Int("count", 4, "how many registers (1..125) or bits (1..2000)")
	timeout := fs.Duration("timeout", time.Second, "how long to wait for the answer")
	asJSON := fs.Bool("json", false, "print JSON instead of tables")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: weft-agent probe modbus --target URL [--unit N] [--table T] [--address A] [--count N] [--json]")
		fmt.Fprintln(env.Stderr, "Reads once and shows raw registers and every type in every byte order. Docs: docs/modbus.md")
		fs.PrintDefaults()
	}
	if err := fs.Parse(env.Args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *target == "" {
		fmt.Fprintln(env.Stderr, "weft-agent probe modbus: --target is required, e.g. --target tcp://192.168.1.10:502")
		return 2
	}
	p, err := modbus.NewProber(*target, *timeout)
	if err != nil {
		fmt.Fprintln(env.Stderr, "weft-agent probe modbus:", err)
		return 2
	}
	defer p.Close()
	data, rtt, err := p.Read(ctx, *unit, *table, *address, *count)
	if err != nil {
		fmt.Fprintln(env.Stderr, "weft-agent probe modbus:", modbus.Explain(err, *target, *unit, *timeout))
		return 1
	}
	bitsTable := *table == "coil" || *table == "discrete"
	if *asJSON {
		return printProbeJSON(env.Stdout, *target, *unit, *table, *address, *count, rtt, data, bitsTable)
	}
	fmt.Fprintf(env.Stdout, "%s unit %d, %s %d..%d, answered in %s\n\n", *target, *unit, *table, *address, *address+*count-1, rtt.Round(10*time.Microsecond))
	if bitsTable {
		for i := range *count {
			fmt.Fprintf(env.Stdout, "  %5d  %d\n", *address+i, data[i/8]>>(i%8)&1)
		}
		return 0
	}
	regs := registers(data)
	fmt.Fprintf(env.Stdout, "  %7s  %6s  %6s  %7s  %s\n", "address", "hex", "uint16", "int16", "bits 15..0")
	for i, r := range regs {
		fmt.Fprintf(env.Stdout, "  %7d  0x%04X  %6d  %7d  %s\n", *address+i, r, r, int16(r), bitString(r))
	}
	fmt.Fprintf(env.Stdout, "\n  decoded from address %d:\n", *address)
	fmt.Fprintf(env.Stdout, "  %-8s", "type")
	for _, o := range modbus.Orders {
		fmt.Fprintf(env.Stdout, "  %-24s", o)
	}
	fmt.Fprintln(env.Stdout)
	for _, typ := range modbus.Types {
		if typ == "bit" || typ == "bool" {
			continue
		}
		fmt.Fprintf(env.Stdout, "  %-8s", typ)
		for _, o := range modbus.Orders {
			fmt.Fprintf(env.Stdout, "  %-24s", decodedText(typ, o, regs))
		}
		fmt.Fprintln(env.Stdout)
	}
	fmt.Fprintln(env.Stdout, "\n  ABCD is big-endian (Modbus' own order); CDAB swaps the registers; BADC swaps the bytes in each; DCBA both.")
	return 0
}

func registers(data []byte) []uint16 {
	regs := make([]uint16, len(data)/2)
	for i := range regs {
		regs[i] = binary.BigEndian.Uint16(data[2*i:])
	}
	return regs
}

func bitString(r uint16) string {
	s := fmt.Sprintf("%016b", r)
	return s[0:4] + " " + s[4:8] + " " + s[8:12] + " " + s[12:16]
}

// decodedText is one cell of the probe table.
func decodedText(typ, order string, regs []uint16) string {
	need := modbus.RegisterCount(typ, len(regs))
	if len(regs) < need {
		return fmt.Sprintf("(needs %d registers)", need)
	}
	v, err := modbus.Decode(typ, order, regs)
	if err != nil {
		return "error: " + err.Error()
	}
	switch v.Kind() {
	case wire.Int:
		return strconv.FormatInt(v.Int(), 10)
	case wire.Uint:
		return strconv.FormatUint(v.Uint(), 10)
	case wire.Float:
		f, _ := v.Float()
		return strconv.FormatFloat(f, 'g', 9, 64)
	case wire.String:
		return strconv.Quote(v.Str())
	}
	return ""
}

func printProbeJSON(w io.Writer, target string, unit int, table string, address, count int, rtt time.Duration, data []byte, bitsTable bool) int {
	out := map[string]any{
		"target": target, "unit": unit, "table": table, "address": address, "count": count,
		"rtt_ms": float64(rtt.Microseconds()) / 1000,
	}
	if bitsTable {
		bits := make([]bool, count)
		for i := range bits {
			bits[i] = data[i/8]>>(i%8)&1 == 1
		}
		out["bits"] = bits
	} else {
		regs := registers(data)
		out["registers"] = regs
		decoded := map[string]map[string]any{}
		for _, typ := range modbus.Types {
			if typ == "bit" || typ == "bool" || len(regs) < modbus.RegisterCount(typ, len(regs)) {
				continue
			}
			decoded[typ] = map[string]any{}
			for _, o := range modbus.Orders {
				v, err := modbus.Decode(typ, o, regs)
				if err != nil {
					continue
				}
				decoded[typ][o] = jsonValue(v)
			}
		}
		out["decoded"] = decoded
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return 1
	}
	return 0
}

func jsonValue(v wire.Value) any {
	switch v.Kind() {
	case wire.Int:
		return v.Int()
	case wire.Uint:
		return v.Uint()
	case wire.Float:
		f, _ := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil
		}
		return f
	case wire.String:
		return v.Str()
	case wire.Bool:
		return v.Bool()
	}
	return nil
}

// scanModbusCmd lists the unit ids that answer on a target.
func scanModbusCmd(ctx context.Context, env Env) int {
	fs := flag.NewFlagSet("scan modbus", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	target := fs.String("target", "", "tcp://HOST:PORT, rtuovertcp://HOST:PORT, rtu:///dev/ttyUSB0?baud=9600&parity=N, ascii://...")
	unitsFlag := fs.String("units", "1-247", "unit ids to try: ranges and lists, e.g. 1-10,20")
	timeout := fs.Duration("timeout", 200*time.Millisecond, "how long to wait for each unit")
	table := fs.String("table", "holding", "table to read address --address of (any answer, even an exception, means a unit is there)")
	address := fs.Int("address", 0, "address to read")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: weft-agent scan modbus --target URL [--units 1-247] [--timeout 200ms]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(env.Args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *target == "" {
		fmt.Fprintln(env.Stderr, "weft-agent scan modbus: --target is required, e.g. --target rtu:///dev/ttyUSB0?baud=9600")
		return 2
	}
	units, err := parseUnitRange(*unitsFlag)
	if err != nil {
		fmt.Fprintln(env.Stderr, "weft-agent scan modbus: --units:", err)
		return 2
	}
	p, err := modbus.NewProber(*target, *timeout)
	if err != nil {
		fmt.Fprintln(env.Stderr, "weft-agent scan modbus:", err)
		return 2
	}
	defer p.Close()
	tty := isTerminal(env.Stdout)
	found := 0
	for i, u := range units {
		if tty {
			drawProgress(env.Stdout, i, len(units), u, found)
		}
		_, rtt, err := p.Read(ctx, u, *table, *address, 1)
		if ctx.Err() != nil {
			return 130
		}
		var ex *modbus.ExceptionError
		answered := err == nil || (errors.As(err, &ex) && ex.Code != 10 && ex.Code != 11)
		if !answered && errors.Is(err, protocols.ErrNotConnected) && !errors.Is(err, modbus.ErrTimeout) {
			if tty {
				fmt.Fprint(env.Stdout, "\r\033[K")
			}
			fmt.Fprintln(env.Stderr, "weft-agent scan modbus:", modbus.Explain(err, *target, u, *timeout))
			return 1
		}
		if answered {
			found++
			if tty {
				fmt.Fprint(env.Stdout, "\r\033[K")
			}
			note := "answered"
			if ex != nil {
				note = "answered " + ex.Error()
			}
			fmt.Fprintf(env.Stdout, "unit %3d  %s in %s\n", u, note, rtt.Round(10*time.Microsecond))
		}
	}
	if tty {
		fmt.Fprint(env.Stdout, "\r\033[K")
	}
	fmt.Fprintf(env.Stdout, "%d of %d unit ids answered on %s\n", found, len(units), *target)
	if found == 0 {
		return 1
	}
	return 0
}

func drawProgress(w io.Writer, done, total, unit, found int) {
	const width = 30
	n := width * done / total
	fmt.Fprintf(w, "\r[%s%s] unit %3d  %d/%d  found %d", strings.Repeat("#", n), strings.Repeat(".", width-n), unit, done, total, found)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// parseUnitRange parses "1-247" or "1,3,10-12".
func parseUnitRange(s string) ([]int, error) {
	var units []int
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b > 247 || a > b {
			return nil, fmt.Errorf("%q: want ids or ranges inside 0..247, e.g. 1-10,20", part)
		}
		for u := a; u <= b; u++ {
			if !seen[u] {
				seen[u] = true
				units = append(units, u)
			}
		}
	}
	return units, nil
}

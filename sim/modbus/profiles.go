package modbus

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"time"
)

// Profiles are the machine profiles weft-sim serves, with a one-line
// description each. docs/modbus.md lists their register maps.
var Profiles = map[string]string{
	"dyeing":   "HT dyeing machine: bath temperature following a recipe ramp, pressure, liquor flow, pump/valve coils, alarm word",
	"loom":     "air-jet loom: speed, pick counter, stop codes, efficiency",
	"rodwrap":  "fishing-rod wrapping line: line speed, thread tension, oven temperature, rods done",
	"testregs": "fixed registers: every type in every byte order at documented addresses (decoding tests)",
	"counter":  "load tests: registers 0..3 hold a uint64 counter (ABCD) that increments every --tick",
}

// ProfileNames lists the profiles in alphabetical order.
func ProfileNames() []string {
	names := make([]string, 0, len(Profiles))
	for n := range Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// machine is one unit's four tables and how its values move.
type machine struct {
	mu       sync.Mutex
	coils    []bool
	discrete []bool
	holding  []uint16
	input    []uint16
	// step advances the values to elapsed time since start; the caller holds mu.
	step func(m *machine, elapsed time.Duration, ticks uint64)
}

func newMachine(coils, discrete, holding, input int) *machine {
	return &machine{
		coils: make([]bool, coils), discrete: make([]bool, discrete),
		holding: make([]uint16, holding), input: make([]uint16, input),
	}
}

func putU32(regs []uint16, v uint32)  { regs[0], regs[1] = uint16(v>>16), uint16(v) }
func putF32(regs []uint16, f float32) { putU32(regs, math.Float32bits(f)) }
func putString(regs []uint16, s string) {
	b := make([]byte, 2*len(regs))
	copy(b, s)
	for i := range regs {
		regs[i] = binary.BigEndian.Uint16(b[2*i:])
	}
}

// newProfile builds a machine for profile name (unit distinguishes the
// counter's fixed registers). ok is false for an unknown profile.
func newProfile(name string, unit byte, registers int, seed uint64) (*machine, bool) {
	rng := rand.New(rand.NewPCG(seed, uint64(unit)))
	switch name {
	case "dyeing":
		return dyeing(rng), true
	case "loom":
		return loom(rng), true
	case "rodwrap":
		return rodwrap(rng), true
	case "testregs":
		return testregs(), true
	case "counter":
		return counter(unit, registers), true
	}
	return nil, false
}

// recipeStep is one step of a dyeing recipe: reach target °C in dur.
type recipeStep struct {
	name   string
	target float64
	dur    time.Duration
}

// recipe is a reactive dyeing cycle, compressed to seven minutes.
var recipe = []recipeStep{
	{"fill", 30, 20 * time.Second},
	{"heat to 80", 80, 60 * time.Second},
	{"hold 80", 80, 60 * time.Second},
	{"heat to 130", 130, 80 * time.Second},
	{"hold 130", 130, 120 * time.Second},
	{"cool to 70", 70, 60 * time.Second},
	{"drain", 70, 20 * time.Second},
}

// dyeing: see docs/modbus.md "dyeing".
func dyeing(rng *rand.Rand) *machine {
	m := newMachine(8, 8, 40, 8)
	temp := 25.0
	var last time.Duration
	var cycle time.Duration
	for _, s := range recipe {
		cycle += s.dur
	}
	putString(m.holding[20:28], "REACTIVE-60")
	m.holding[12] = 7 // program number
	m.step = func(m *machine, elapsed time.Duration, _ uint64) {
		dt := (elapsed - last).Seconds()
		last = elapsed
		batches := uint32(elapsed / cycle)
		in := elapsed % cycle
		step, from, sp := 0, 25.0, 25.0
		for i, s := range recipe {
			if in < s.dur {
				step = i
				sp = from + (s.target-from)*(float64(in)/float64(s.dur))
				break
			}
			in -= s.dur
			from = s.target
		}
		// The bath follows the setpoint with a lag, plus a little noise.
		temp += (sp - temp) * math.Min(1, 0.2*dt)
		temp += rng.NormFloat64() * 0.05
		pressure := 1.0 + math.Max(0, temp-100)*0.08 + rng.NormFloat64()*0.01
		pump := step > 0 && step < 6
		flow := 0.0
		if pump {
			flow = 45 + rng.NormFloat64()*0.8
		}
		m.holding[0] = uint16(int16(math.Round(temp * 10)))
		m.holding[1] = uint16(int16(math.Round(sp * 10)))
		putF32(m.holding[2:4], float32(pressure))
		putF32(m.holding[4:6], float32(flow))
		m.holding[6] = uint16(step)
		alarm := uint16(0)
		if temp > 135 {
			alarm |= 1 // over-temperature
		}
		if step == 6 {
			alarm |= 2 // low level while draining
		}
		m.holding[7] = alarm
		putU32(m.holding[8:10], batches)
		heating := sp > temp+0.5
		cooling := sp < temp-0.5
		m.coils[0] = pump
		m.coils[1] = heating
		m.coils[2] = cooling
		m.coils[3] = step == 0
		m.coils[4] = step == 6
		m.discrete[0] = true
		m.discrete[1] = step != 6
		current := 0.0
		rpm := 0
		if pump {
			current = 18.5 + rng.NormFloat64()*0.3
			rpm = 1450
		}
		m.input[0] = uint16(int16(math.Round(current * 10)))
		m.input[1] = uint16(rpm)
	}
	return m
}

// loom: see docs/modbus.md "loom".
func loom(rng *rand.Rand) *machine {
	m := newMachine(8, 8, 20, 8)
	var picks float64
	var last time.Duration
	var run, total float64
	m.step = func(m *machine, elapsed time.Duration, _ uint64) {
		dt := (elapsed - last).Seconds()
		last = elapsed
		// A stop of 10 s every 90 s, its cause cycling through the codes.
		in := elapsed % (90 * time.Second)
		stop := uint16(0)
		if in >= 80*time.Second {
			stop = uint16(elapsed/(90*time.Second))%4 + 1
		}
		rpm := 0.0
		if stop == 0 {
			rpm = 600 + rng.NormFloat64()*3
			picks += rpm / 60 * dt
			run += dt
		}
		total += dt
		eff := 0.0
		if total > 0 {
			eff = 100 * run / total
		}
		m.holding[0] = uint16(math.Round(rpm))
		putU32(m.holding[1:3], uint32(picks))
		m.holding[3] = stop
		if stop == 0 {
			m.holding[4] = 1
		} else {
			m.holding[4] = 0
		}
		putF32(m.holding[5:7], float32(eff))
		m.coils[0] = stop == 0
		m.discrete[0] = stop == 1 // warp stop motion
		m.discrete[1] = stop == 2 // weft detector
	}
	return m
}

// rodwrap: see docs/modbus.md "rodwrap".
func rodwrap(rng *rand.Rand) *machine {
	m := newMachine(8, 8, 20, 8)
	var rods float64
	var last time.Duration
	m.step = func(m *machine, elapsed time.Duration, _ uint64) {
		dt := (elapsed - last).Seconds()
		last = elapsed
		speed := 12.0 + rng.NormFloat64()*0.2 // m/min
		rods += speed / 60 / 2.4 * dt         // 2.4 m blanks
		tension := 8.5 + rng.NormFloat64()*0.3
		oven := 160 + 3*math.Sin(elapsed.Seconds()/30) + rng.NormFloat64()*0.2
		m.holding[0] = uint16(int16(math.Round(speed * 10)))
		m.holding[1] = uint16(math.Round(tension * 10))
		putU32(m.holding[2:4], uint32(rods))
		m.holding[4] = uint16(int16(math.Round(oven * 10)))
		m.holding[5] = 125 // wrap pitch 1.25 mm
		alarm := uint16(0)
		if tension > 9.4 {
			alarm |= 1 // tension high
		}
		m.holding[6] = alarm
		m.coils[0] = true
		m.coils[1] = oven < 160
	}
	return m
}

// TestRegs are the fixed values of the testregs profile: at base address
// 100 (order ABCD), 200 (CDAB), 300 (BADC) and 400 (DCBA), of both the
// holding and the input table, plus these offsets:
//
//	+0 int16   -12345            +10 uint64  12345678901234567890
//	+1 uint16  54321             +14 float32 -1234.5
//	+2 int32   -123456789        +16 float64 3.141592653589793
//	+4 uint32  3000000000        +20 string  "WEFT-TEST" (5 registers)
//	+6 int64   -1234567890123456789
//	+25 float32 NaN              +27 float32 +Inf
//
// Address 0 holds 0xA5C3, 1 holds 1, 2 holds 0, 3 holds 0xFFFF; coils and
// discrete inputs 0..15 are the bits of 0xA5C3 (coil 0 = bit 0).
var TestRegs = struct {
	Int16   int16
	Uint16  uint16
	Int32   int32
	Uint32  uint32
	Int64   int64
	Uint64  uint64
	Float32 float32
	Float64 float64
	String  string
	Pattern uint16
}{-12345, 54321, -123456789, 3000000000, -1234567890123456789, 12345678901234567890, -1234.5, math.Pi, "WEFT-TEST", 0xA5C3}

// TestRegsBase is the base address of each byte order in testregs.
var TestRegsBase = map[string]int{"ABCD": 100, "CDAB": 200, "BADC": 300, "DCBA": 400}

// placeBytes writes big-endian bytes b as registers in the given order:
// CDAB reverses the registers, BADC swaps the bytes of each register,
// DCBA does both (for a 16-bit value only the byte swap applies).
func placeBytes(regs []uint16, b []byte, order string) {
	n := len(b) / 2
	words := make([]uint16, n)
	for i := range words {
		hi, lo := b[2*i], b[2*i+1]
		if order == "BADC" || order == "DCBA" {
			hi, lo = lo, hi
		}
		words[i] = uint16(hi)<<8 | uint16(lo)
	}
	if (order == "CDAB" || order == "DCBA") && n > 1 {
		for i, j := 0, n-1; i < j; i, j = i+1, j-1 {
			words[i], words[j] = words[j], words[i]
		}
	}
	copy(regs, words)
}

func testregs() *machine {
	m := newMachine(16, 16, 500, 500)
	tr := TestRegs
	for order, base := range TestRegsBase {
		r := m.holding[base:]
		be := binary.BigEndian
		placeBytes(r[0:], be.AppendUint16(nil, uint16(tr.Int16)), order)
		placeBytes(r[1:], be.AppendUint16(nil, tr.Uint16), order)
		placeBytes(r[2:], be.AppendUint32(nil, uint32(tr.Int32)), order)
		placeBytes(r[4:], be.AppendUint32(nil, tr.Uint32), order)
		placeBytes(r[6:], be.AppendUint64(nil, uint64(tr.Int64)), order)
		placeBytes(r[10:], be.AppendUint64(nil, tr.Uint64), order)
		placeBytes(r[14:], be.AppendUint32(nil, math.Float32bits(tr.Float32)), order)
		placeBytes(r[16:], be.AppendUint64(nil, math.Float64bits(tr.Float64)), order)
		// A string keeps its register order; only the bytes may swap.
		s := make([]byte, 10)
		copy(s, tr.String)
		for i := 0; i < 5; i++ {
			o := order
			if o == "CDAB" {
				o = "ABCD"
			} else if o == "DCBA" {
				o = "BADC"
			}
			placeBytes(r[20+i:], s[2*i:2*i+2], o)
		}
		placeBytes(r[25:], be.AppendUint32(nil, math.Float32bits(float32(math.NaN()))), order)
		placeBytes(r[27:], be.AppendUint32(nil, math.Float32bits(float32(math.Inf(1)))), order)
	}
	m.holding[0], m.holding[1], m.holding[2], m.holding[3] = tr.Pattern, 1, 0, 0xFFFF
	copy(m.input, m.holding)
	for i := range 16 {
		m.coils[i] = tr.Pattern>>i&1 == 1
		m.discrete[i] = m.coils[i]
	}
	m.step = func(*machine, time.Duration, uint64) {}
	return m
}

// counter: registers 0..3 hold the tick count as a uint64 (ABCD); register
// i >= 4 holds uint16(unit*1000 + i). Input registers mirror the holding ones.
func counter(unit byte, registers int) *machine {
	registers = max(registers, 4)
	m := newMachine(0, 0, registers, registers)
	for i := 4; i < registers; i++ {
		m.holding[i] = uint16(int(unit)*1000 + i)
		m.input[i] = m.holding[i]
	}
	m.step = func(m *machine, _ time.Duration, ticks uint64) {
		for i := range 4 {
			m.holding[i] = uint16(ticks >> (48 - 16*i))
			m.input[i] = m.holding[i]
		}
	}
	return m
}

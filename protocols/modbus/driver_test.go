package modbus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/weftiot/weft/protocols"
	"github.com/weftiot/weft/protocols/modbus"
	sim "github.com/weftiot/weft/sim/modbus"
	"github.com/weftiot/weft/wire"
)

func intp(i int) *int { return &i }

// startSim starts a simulator on a free loopback port and stops it with the test.
func startSim(t testing.TB, opts sim.Options) *sim.Server {
	t.Helper()
	if opts.TCP == "" && opts.RTUOverTCP == "" && opts.Serial == "" {
		opts.TCP = "127.0.0.1:0"
	}
	s, err := sim.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// poll runs one Poll and returns the samples by point name.
func poll(t testing.TB, d *modbus.Driver) (map[string]wire.Sample, error) {
	t.Helper()
	got := map[string]wire.Sample{}
	var mu sync.Mutex
	err := d.Poll(context.Background(), func(s wire.Sample) {
		mu.Lock()
		defer mu.Unlock()
		if _, dup := got[s.Point]; dup {
			t.Errorf("point %s emitted twice", s.Point)
		}
		got[s.Point] = s
	})
	return got, err
}

func newDriver(t testing.TB, pool *modbus.Pool, name string, cfg modbus.DeviceConfig, points []modbus.Point) *modbus.Driver {
	t.Helper()
	d, err := pool.Driver(name, cfg, points)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := d.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d
}

// testregsPoints are every type in every order of the testregs profile.
func testregsPoints(table string) ([]modbus.Point, map[string]wire.Value) {
	tr := sim.TestRegs
	want := map[string]wire.Value{}
	var pts []modbus.Point
	add := func(name, typ, order string, addr, length int, v wire.Value) {
		pts = append(pts, modbus.Point{Name: name, PointConfig: modbus.PointConfig{Table: table, Address: intp(addr), Type: typ, Order: order, Length: length}})
		want[name] = v
	}
	for _, o := range modbus.Orders {
		b := sim.TestRegsBase[o]
		add("int16_"+o, "int16", o, b+0, 0, wire.IntValue(int64(tr.Int16)))
		add("uint16_"+o, "uint16", o, b+1, 0, wire.UintValue(uint64(tr.Uint16)))
		add("int32_"+o, "int32", o, b+2, 0, wire.IntValue(int64(tr.Int32)))
		add("uint32_"+o, "uint32", o, b+4, 0, wire.UintValue(uint64(tr.Uint32)))
		add("int64_"+o, "int64", o, b+6, 0, wire.IntValue(tr.Int64))
		add("uint64_"+o, "uint64", o, b+10, 0, wire.UintValue(tr.Uint64))
		add("float32_"+o, "float32", o, b+14, 0, wire.FloatValue(float64(tr.Float32)))
		add("float64_"+o, "float64", o, b+16, 0, wire.FloatValue(tr.Float64))
		add("string_"+o, "string", o, b+20, 5, wire.StringValue(tr.String))
	}
	for bit := range 16 {
		name := fmt.Sprintf("bit%d", bit)
		pts = append(pts, modbus.Point{Name: name, PointConfig: modbus.PointConfig{Table: table, Address: intp(0), Type: "bit", Bit: intp(bit)}})
		want[name] = wire.BoolValue(tr.Pattern>>bit&1 == 1)
	}
	add("bool_one", "bool", "", 1, 0, wire.BoolValue(true))
	add("bool_zero", "bool", "", 2, 0, wire.BoolValue(false))
	return pts, want
}

func TestDriverTCPEveryTypeAndOrder(t *testing.T) {
	s := startSim(t, sim.Options{Profile: "testregs"})
	for _, table := range []string{"holding", "input"} {
		t.Run(table, func(t *testing.T) {
			pool := modbus.NewPool(nil)
			defer pool.Close()
			pts, want := testregsPoints(table)
			d := newDriver(t, pool, "tr", modbus.DeviceConfig{Target: "tcp://" + s.Addr()}, pts)
			got, err := poll(t, d)
			if err != nil {
				t.Fatal(err)
			}
			for name, w := range want {
				g, ok := got[name]
				if !ok {
					t.Errorf("%s: no sample", name)
					continue
				}
				if g.Quality != wire.Good || !g.Value.Equal(w) {
					t.Errorf("%s: got %v %+v, want good %+v", name, g.Quality, g.Value, w)
				}
				if g.Device != "tr" || g.TS == 0 {
					t.Errorf("%s: device %q ts %d", name, g.Device, g.TS)
				}
			}
			// 4 blocks of 25 registers (100..124 etc.) and 0..2: 5 requests.
			if n := len(d.Plan()); n != 5 {
				t.Errorf("plan has %d requests, want 5:\n%v", n, d.Plan())
			}
			if r := d.Requests(); r != 5 {
				t.Errorf("sent %d requests, want 5", r)
			}
		})
	}
}

func TestDriverBits(t *testing.T) {
	s := startSim(t, sim.Options{Profile: "testregs"})
	pool := modbus.NewPool(nil)
	defer pool.Close()
	var pts []modbus.Point
	for i := range 16 {
		pts = append(pts,
			modbus.Point{Name: fmt.Sprintf("c%d", i), PointConfig: modbus.PointConfig{Table: "coil", Address: intp(i)}},
			modbus.Point{Name: fmt.Sprintf("d%d", i), PointConfig: modbus.PointConfig{Table: "discrete", Address: intp(i), Type: "bool"}})
	}
	d := newDriver(t, pool, "bits", modbus.DeviceConfig{Target: "tcp://" + s.Addr()}, pts)
	got, err := poll(t, d)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 16 {
		want := wire.BoolValue(sim.TestRegs.Pattern>>i&1 == 1)
		for _, n := range []string{fmt.Sprintf("c%d", i), fmt.Sprintf("d%d", i)} {
			if g := got[n]; g.Quality != wire.Good || !g.Value.Equal(want) {
				t.Errorf("%s: got %v %+v want %+v", n, g.Quality, g.Value, want)
			}
		}
	}
	if r := d.Requests(); r != 2 {
		t.Errorf("sent %d requests, want 2 (one per bit table)", r)
	}
}

func TestDriverNaNAndInfAreBad(t *testing.T) {
	s := startSim(t, sim.Options{Profile: "testregs"})
	pool := modbus.NewPool(nil)
	defer pool.Close()
	var pts []modbus.Point
	for _, o := range modbus.Orders {
		b := sim.TestRegsBase[o]
		pts = append(pts,
			modbus.Point{Name: "nan_" + o, PointConfig: modbus.PointConfig{Table: "holding", Address: intp(b + 25), Type: "float32", Order: o}},
			modbus.Point{Name: "inf_" + o, PointConfig: modbus.PointConfig{Table: "holding", Address: intp(b + 27), Type: "float32", Order: o}},
			modbus.Point{Name: "ok_" + o, PointConfig: modbus.PointConfig{Table: "holding", Address: intp(b + 14), Type: "float32", Order: o}})
	}
	d := newDriver(t, pool, "nan", modbus.DeviceConfig{Target: "tcp://" + s.Addr()}, pts)
	got, err := poll(t, d)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range modbus.Orders {
		for _, n := range []string{"nan_" + o, "inf_" + o} {
			if g := got[n]; g.Quality != wire.Bad || g.Value.Kind() != wire.Null {
				t.Errorf("%s: got %v %+v, want bad null", n, g.Quality, g.Value)
			}
		}
		if g := got["ok_"+o]; g.Quality != wire.Good {
			t.Errorf("ok_%s: %v", o, g.Quality)
		}
	}
	if st := d.Stats(); st.BadValues != 8 {
		t.Errorf("BadValues = %d, want 8", st.BadValues)
	}
}

// The dyeing profile answers with plausible values.
func TestDriverDyeingProfile(t *testing.T) {
	s := startSim(t, sim.Options{Profile: "dyeing", Tick: 10 * time.Millisecond})
	pool := modbus.NewPool(nil)
	defer pool.Close()
	pts := []modbus.Point{
		{Name: "bath_temp", PointConfig: modbus.PointConfig{Table: "holding", Address: intp(0), Type: "int16"}},
		{Name: "pressure", PointConfig: modbus.PointConfig{Table: "holding", Address: intp(2), Type: "float32"}},
		{Name: "recipe", PointConfig: modbus.PointConfig{Table: "holding", Address: intp(20), Type: "string", Length: 8}},
		{Name: "door_closed", PointConfig: modbus.PointConfig{Table: "discrete", Address: intp(0)}},
	}
	d := newDriver(t, pool, "dye1", modbus.DeviceConfig{Target: "tcp://" + s.Addr()}, pts)
	time.Sleep(50 * time.Millisecond)
	got, err := poll(t, d)
	if err != nil {
		t.Fatal(err)
	}
	if temp := got["bath_temp"].Value.Int(); temp < 150 || temp > 1400 {
		t.Errorf("bath temp %d (0.1 °C) out of range", temp)
	}
	if p, _ := got["pressure"].Value.Float(); p < 0.5 || p > 5 {
		t.Errorf("pressure %v bar", p)
	}
	if r := got["recipe"].Value.Str(); r != "REACTIVE-60" {
		t.Errorf("recipe %q", r)
	}
	if !got["door_closed"].Value.Bool() {
		t.Errorf("door open")
	}
}

func TestDriverRefusedConnection(t *testing.T) {
	s := startSim(t, sim.Options{Profile: "testregs"})
	addr := s.Addr()
	s.Close()
	pool := modbus.NewPool(nil)
	defer pool.Close()
	d, err := pool.Driver("gone", modbus.DeviceConfig{Target: "tcp://" + addr, Timeout: 200 * time.Millisecond},
		[]modbus.Point{{Name: "x", PointConfig: modbus.PointConfig{Table: "holding", Address: intp(0)}}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Connect(context.Background()); !errors.Is(err, protocols.ErrNotConnected) {
		t.Fatalf("Connect: %v, want ErrNotConnected", err)
	}
	got, err := poll(t, d)
	if !errors.Is(err, protocols.ErrNotConnected) {
		t.Fatalf("Poll: %v, want ErrNotConnected", err)
	}
	if got["x"].Quality != wire.Bad {
		t.Errorf("x: %v, want bad", got["x"].Quality)
	}
}

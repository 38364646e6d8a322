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

func hp(name string, addr int, typ string) modbus.Point {
	return modbus.Point{Name: name, PointConfig: modbus.PointConfig{Table: "holding", Address: intp(addr), Type: typ}}
}

// One illegal address inside a merged block: the other points still read,
// and the split is remembered so later polls do not ask again.
func TestIllegalAddressSplitIsRemembered(t *testing.T) {
	s := startSim(t, sim.Options{Profile: "testregs", Fault: sim.Fault{Exceptions: []sim.ExceptionAt{{Table: "holding", Address: 103, Code: 2}}}})
	pool := modbus.NewPool(nil)
	defer pool.Close()
	pts := []modbus.Point{hp("i16", 100, "int16"), hp("u16", 101, "uint16"), hp("i32", 102, "int32"),
		hp("u32", 104, "uint32"), hp("i64", 106, "int64"), hp("f32", 114, "float32"), hp("f64", 116, "float64")}
	d := newDriver(t, pool, "tr", modbus.DeviceConfig{Target: "tcp://" + s.Addr()}, pts)
	if n := len(d.Plan()); n != 1 {
		t.Fatalf("planned %d requests, want 1", n)
	}
	for round := range 3 {
		before := d.Requests()
		got, err := poll(t, d)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for _, p := range pts {
			g := got[p.Name]
			if p.Name == "i32" {
				if g.Quality != wire.Bad || g.Code != 2 {
					t.Errorf("round %d: i32 = %v code %d, want bad code 2", round, g.Quality, g.Code)
				}
				continue
			}
			if g.Quality != wire.Good {
				t.Errorf("round %d: %s = %v code %d, want good", round, p.Name, g.Quality, g.Code)
			}
		}
		sent := d.Requests() - before
		if round > 0 && sent != uint64(len(d.Plan())) {
			t.Errorf("round %d: sent %d requests, the remembered plan has %d", round, sent, len(d.Plan()))
		}
	}
	if st := d.Stats(); st.Splits == 0 || st.Exceptions[2] == 0 {
		t.Errorf("stats %+v: want splits and exception 2 counted", st)
	}
	// The narrowed plan still merges what it can: far fewer than 7 requests.
	if n := len(d.Plan()); n < 2 || n > 5 {
		t.Errorf("plan after split has %d requests: %+v", n, d.Plan())
	}
}

func TestBusyIsRetried(t *testing.T) {
	s := startSim(t, sim.Options{Profile: "testregs", Fault: sim.Fault{BusyNext: 2}})
	pool := modbus.NewPool(nil)
	defer pool.Close()
	d := newDriver(t, pool, "tr", modbus.DeviceConfig{Target: "tcp://" + s.Addr(), Retries: intp(2)}, []modbus.Point{hp("x", 101, "uint16")})
	got, err := poll(t, d)
	if err != nil || got["x"].Quality != wire.Good || got["x"].Value.Uint() != uint64(sim.TestRegs.Uint16) {
		t.Fatalf("poll: %v %+v", err, got["x"])
	}
	st := d.Stats()
	if st.Exceptions[6] != 2 || st.Requests != 3 {
		t.Errorf("stats: exceptions %v requests %d; want 2 busy answers and 3 requests", st.Exceptions, st.Requests)
	}

	s.SetFault(sim.Fault{BusyNext: 10})
	got, err = poll(t, d)
	var ex *modbus.ExceptionError
	if !errors.As(err, &ex) || ex.Code != 6 || errors.Is(err, protocols.ErrNotConnected) {
		t.Fatalf("busy past the retries: err %v, want exception 6 (not a connection error)", err)
	}
	if g := got["x"]; g.Quality != wire.Bad || g.Code != 6 {
		t.Errorf("x = %v code %d, want bad code 6", g.Quality, g.Code)
	}
}

// A late answer times the request out; the retry runs on a new connection,
// so the late answer can never be taken for the retry's.
func TestTimeoutReconnectsAndRetries(t *testing.T) {
	for _, scheme := range []string{"tcp", "rtuovertcp"} {
		t.Run(scheme, func(t *testing.T) {
			opts := sim.Options{Profile: "testregs", Fault: sim.Fault{LateNext: 1, LateBy: 300 * time.Millisecond}}
			if scheme == "rtuovertcp" {
				opts.RTUOverTCP = "127.0.0.1:0"
			}
			s := startSim(t, opts)
			addr := s.Addr()
			if scheme == "rtuovertcp" {
				addr = s.RTUOverTCPAddr()
			}
			pool := modbus.NewPool(nil)
			defer pool.Close()
			d := newDriver(t, pool, "tr", modbus.DeviceConfig{Target: scheme + "://" + addr, Timeout: 100 * time.Millisecond},
				[]modbus.Point{hp("x", 100, "int16")})
			for range 3 {
				got, err := poll(t, d)
				if err != nil || got["x"].Value.Int() != int64(sim.TestRegs.Int16) {
					t.Fatalf("poll: %v %+v", err, got["x"])
				}
			}
			if st := d.Stats(); st.Timeouts != 1 || st.Requests != 4 {
				t.Errorf("timeouts %d requests %d, want 1 and 4", st.Timeouts, st.Requests)
			}
			if c := s.Stats().Connections; c != 2 {
				t.Errorf("sim saw %d connections, want 2 (one reconnect)", c)
			}
		})
	}
}

// An answer with the transaction id of an earlier request is rejected and
// the connection replaced.
func TestStaleTransactionIDIsRejected(t *testing.T) {
	s := startSim(t, sim.Options{Profile: "testregs"})
	pool := modbus.NewPool(nil)
	defer pool.Close()
	d := newDriver(t, pool, "tr", modbus.DeviceConfig{Target: "tcp://" + s.Addr()}, []modbus.Point{hp("x", 101, "uint16")})
	if _, err := poll(t, d); err != nil {
		t.Fatal(err)
	}
	s.SetRegister(1, false, 101, 7)
	s.SetFault(sim.Fault{StaleNext: 1})
	got, err := poll(t, d)
	if err != nil || got["x"].Value.Uint() != 7 {
		t.Fatalf("poll: %v %+v", err, got["x"])
	}
	st := d.Stats()
	if st.Frames != 1 {
		t.Errorf("frames %d, want 1 (the stale answer)", st.Frames)
	}
	if c := s.Stats().Connections; c != 2 {
		t.Errorf("sim saw %d connections, want 2", c)
	}
}

func TestGarbageAndDisconnectAreRetried(t *testing.T) {
	for _, f := range []sim.Fault{{GarbageNext: 1}, {DisconnectNext: 1}} {
		t.Run(fmt.Sprintf("%+v", f), func(t *testing.T) {
			s := startSim(t, sim.Options{Profile: "testregs", Seed: 3})
			pool := modbus.NewPool(nil)
			defer pool.Close()
			d := newDriver(t, pool, "tr", modbus.DeviceConfig{Target: "tcp://" + s.Addr(), Timeout: 200 * time.Millisecond},
				[]modbus.Point{hp("x", 100, "int16")})
			s.SetFault(f)
			got, err := poll(t, d)
			if err != nil || got["x"].Value.Int() != int64(sim.TestRegs.Int16) {
				t.Fatalf("poll: %v %+v", err, got["x"])
			}
			st := d.Stats()
			if st.Errors != 1 || st.Requests != 2 {
				t.Errorf("stats %+v: want one failed and one good request", st)
			}
		})
	}
}

// A device that does not answer at all fails the poll after one request's
// retries, not after every request's.
func TestSilentDeviceFailsFast(t *testing.T) {
	s := startSim(t, sim.Options{Profile: "testregs", Fault: sim.Fault{DropNext: 1000}})
	pool := modbus.NewPool(nil)
	defer pool.Close()
	d := newDriver(t, pool, "tr", modbus.DeviceConfig{Target: "tcp://" + s.Addr(), Timeout: 50 * time.Millisecond, Retries: intp(1)},
		[]modbus.Point{hp("a", 0, "uint16"), hp("b", 200, "uint16"), hp("c", 400, "uint16")})
	got, err := poll(t, d)
	if !errors.Is(err, protocols.ErrNotConnected) || !errors.Is(err, modbus.ErrTimeout) {
		t.Fatalf("poll: %v, want a timeout wrapping ErrNotConnected", err)
	}
	if len(got) != 3 {
		t.Errorf("%d samples, want 3 (all bad)", len(got))
	}
	for n, g := range got {
		if g.Quality != wire.Bad {
			t.Errorf("%s: %v", n, g.Quality)
		}
	}
	if r := d.Requests(); r != 2 {
		t.Errorf("sent %d requests, want 2 (one request, one retry)", r)
	}
}

// Devices on one rtuovertcp target share one queue: the serial server never
// has two requests outstanding. Devices on different TCP targets overlap.
func TestSharedLineOneRequestAtATime(t *testing.T) {
	units := map[byte]string{1: "dyeing", 2: "loom", 3: "rodwrap", 4: "testregs"}
	s := startSim(t, sim.Options{RTUOverTCP: "127.0.0.1:0", Units: units, Fault: sim.Fault{Latency: 2 * time.Millisecond}})
	pool := modbus.NewPool(nil)
	defer pool.Close()
	var drivers []*modbus.Driver
	for u := range 4 {
		pts := []modbus.Point{hp("a", 0, "uint16"), hp("b", 1, "uint16"), hp("c", 5, "uint16"), hp("far", 15, "uint16"),
			{Name: "coil", PointConfig: modbus.PointConfig{Table: "coil", Address: intp(0)}}}
		d := newDriver(t, pool, fmt.Sprintf("dev%d", u+1), modbus.DeviceConfig{Target: "rtuovertcp://" + s.RTUOverTCPAddr(), Unit: intp(u + 1)}, pts)
		drivers = append(drivers, d)
	}
	var wg sync.WaitGroup
	for _, d := range drivers {
		wg.Go(func() {
			for range 10 {
				got, err := poll(t, d)
				if err != nil {
					t.Error(err)
					return
				}
				for n, g := range got {
					if g.Quality != wire.Good {
						t.Errorf("%s: %v code %d", n, g.Quality, g.Code)
					}
				}
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	if st.MaxInFlight != 1 {
		t.Errorf("the serial server saw %d requests outstanding at once, want 1", st.MaxInFlight)
	}
	if st.Requests != 4*10*2 || st.Connections != 1 {
		t.Errorf("requests %d connections %d, want 80 over one connection", st.Requests, st.Connections)
	}

	// Control: devices in two pools do not share a queue, and the same
	// instrument sees their requests overlap.
	s2 := startSim(t, sim.Options{RTUOverTCP: "127.0.0.1:0", Units: units, Fault: sim.Fault{Latency: 20 * time.Millisecond}})
	var wg2 sync.WaitGroup
	for u := range 2 {
		p := modbus.NewPool(nil)
		defer p.Close()
		d := newDriver(t, p, "ctl", modbus.DeviceConfig{Target: "rtuovertcp://" + s2.RTUOverTCPAddr(), Unit: intp(u + 1)}, []modbus.Point{hp("a", 0, "uint16")})
		wg2.Go(func() {
			for range 5 {
				poll(t, d)
			}
		})
	}
	wg2.Wait()
	if m := s2.Stats().MaxInFlight; m != 2 {
		t.Errorf("control: unshared queues reached %d outstanding, want 2", m)
	}
}

func TestSeparateTCPTargetsPollInParallel(t *testing.T) {
	var conc sim.Concurrency
	var drivers []*modbus.Driver
	pool := modbus.NewPool(nil)
	defer pool.Close()
	for i := range 2 {
		s := startSim(t, sim.Options{Profile: "testregs", Concurrency: &conc, Fault: sim.Fault{Latency: 30 * time.Millisecond}})
		drivers = append(drivers, newDriver(t, pool, fmt.Sprint("plc", i), modbus.DeviceConfig{Target: "tcp://" + s.Addr()}, []modbus.Point{hp("x", 0, "uint16")}))
	}
	var wg sync.WaitGroup
	for _, d := range drivers {
		wg.Go(func() {
			for range 5 {
				if _, err := poll(t, d); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if m := conc.Max(); m != 2 {
		t.Errorf("two TCP targets had at most %d requests outstanding together, want 2", m)
	}
}

func TestWrites(t *testing.T) {
	s := startSim(t, sim.Options{Profile: "testregs"})
	pool := modbus.NewPool(nil)
	defer pool.Close()
	pts := []modbus.Point{
		{Name: "sp", PointConfig: modbus.PointConfig{Table: "holding", Address: intp(450), Type: "int32", Order: "CDAB"}},
		{Name: "word", PointConfig: modbus.PointConfig{Table: "holding", Address: intp(460), Type: "int16"}},
		{Name: "name", PointConfig: modbus.PointConfig{Table: "holding", Address: intp(470), Type: "string", Length: 4, Order: "BADC"}},
		{Name: "pump", PointConfig: modbus.PointConfig{Table: "coil", Address: intp(3)}},
		{Name: "ro", PointConfig: modbus.PointConfig{Table: "input", Address: intp(0)}},
	}
	ro := newDriver(t, pool, "ro", modbus.DeviceConfig{Target: "tcp://" + s.Addr()}, pts)
	if err := ro.Write(context.Background(), "sp", wire.IntValue(1)); !errors.Is(err, modbus.ErrWritesDisabled) {
		t.Fatalf("write without writes: true: %v", err)
	}
	d := newDriver(t, pool, "rw", modbus.DeviceConfig{Target: "tcp://" + s.Addr(), Writes: true}, pts)
	ctx := context.Background()
	for _, w := range []struct {
		point string
		v     wire.Value
	}{{"sp", wire.IntValue(-100000)}, {"word", wire.IntValue(-5)}, {"name", wire.StringValue("LOT-42")}, {"pump", wire.BoolValue(false)}} {
		if err := d.Write(ctx, w.point, w.v); err != nil {
			t.Fatalf("write %s: %v", w.point, err)
		}
	}
	if err := d.Write(ctx, "ro", wire.UintValue(1)); err == nil {
		t.Error("wrote an input register")
	}
	if err := d.Write(ctx, "word", wire.IntValue(1<<20)); err == nil {
		t.Error("wrote an out-of-range int16")
	}
	if err := d.WriteCoils(ctx, 8, []bool{true, false, true}); err != nil {
		t.Fatal(err)
	}
	got, err := poll(t, d)
	if err != nil {
		t.Fatal(err)
	}
	if got["sp"].Value.Int() != -100000 || got["word"].Value.Int() != -5 || got["name"].Value.Str() != "LOT-42" || got["pump"].Value.Bool() {
		t.Errorf("read back %+v", got)
	}
	// Function 15 wrote coils 8..10; read them back raw.
	cd := newDriver(t, pool, "coils", modbus.DeviceConfig{Target: "tcp://" + s.Addr()}, []modbus.Point{
		{Name: "c8", PointConfig: modbus.PointConfig{Table: "coil", Address: intp(8)}},
		{Name: "c9", PointConfig: modbus.PointConfig{Table: "coil", Address: intp(9)}},
		{Name: "c10", PointConfig: modbus.PointConfig{Table: "coil", Address: intp(10)}}})
	got, _ = poll(t, cd)
	if !got["c8"].Value.Bool() || got["c9"].Value.Bool() || !got["c10"].Value.Bool() {
		t.Errorf("coils after function 15: %+v", got)
	}
}

package modbus_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftiot/weft/protocols"
	"github.com/weftiot/weft/protocols/modbus"
	sim "github.com/weftiot/weft/sim/modbus"
	"github.com/weftiot/weft/wire"
)

// Ten devices behind one Modbus TCP address with max_inflight 8, polled at
// the same time: every value is right, each device sends exactly its plan,
// all over one connection, and the simulator (which reads requests ahead)
// sees several outstanding at once but never more than 8. Without
// max_inflight the same devices keep to one at a time.
func TestPipelinedDevicesShareOneTarget(t *testing.T) {
	const devices, rounds = 10, 5
	units := map[byte]string{}
	for u := range devices {
		units[byte(u+1)] = "testregs"
	}
	for _, window := range []int{0, 8} {
		t.Run(fmt.Sprint("max_inflight=", window), func(t *testing.T) {
			s := startSim(t, sim.Options{Units: units, Fault: sim.Fault{Latency: time.Millisecond}})
			pool := modbus.NewPool(nil)
			defer pool.Close()
			var drivers []*modbus.Driver
			var want map[string]wire.Value
			for u := range devices {
				var pts []modbus.Point
				pts, want = testregsPoints("holding")
				cfg := modbus.DeviceConfig{Target: "tcp://" + s.Addr(), Unit: intp(u + 1)}
				if window > 0 {
					cfg.MaxInflight = intp(window)
				}
				drivers = append(drivers, newDriver(t, pool, fmt.Sprint("dev", u+1), cfg, pts))
			}
			var wg sync.WaitGroup
			for _, d := range drivers {
				wg.Go(func() {
					for range rounds {
						got, err := poll(t, d)
						if err != nil {
							t.Error(err)
							return
						}
						for name, w := range want {
							if g := got[name]; g.Quality != wire.Good || !g.Value.Equal(w) {
								t.Errorf("%s: got %v %+v, want good %+v", name, g.Quality, g.Value, w)
							}
						}
					}
				})
			}
			wg.Wait()
			plan := len(drivers[0].Plan())
			for _, d := range drivers {
				if st := d.Stats(); st.Requests != uint64(rounds*plan) || st.Errors != 0 {
					t.Errorf("requests %d errors %d, want %d and 0", st.Requests, st.Errors, rounds*plan)
				}
			}
			st := s.Stats()
			if st.Requests != uint64(devices*rounds*plan) || st.Connections != 1 {
				t.Errorf("sim saw %d requests over %d connections, want %d over 1", st.Requests, st.Connections, devices*rounds*plan)
			}
			switch {
			case window == 0 && st.MaxInFlight != 1:
				t.Errorf("without max_inflight the sim saw %d requests outstanding at once, want 1", st.MaxInFlight)
			case window > 0 && (st.MaxInFlight < 2 || st.MaxInFlight > int64(window)):
				t.Errorf("with max_inflight %d the sim saw up to %d requests outstanding, want 2..%d", window, st.MaxInFlight, window)
			}
		})
	}
}

// Exception 2 inside a merged block, with the block's plan sent together
// with two other requests: the split works as without pipelining and is
// remembered, and the other requests are read as usual.
func TestPipelinedSplitIsRemembered(t *testing.T) {
	s := startSim(t, sim.Options{Profile: "testregs", Fault: sim.Fault{Exceptions: []sim.ExceptionAt{{Table: "holding", Address: 103, Code: 2}}}})
	pool := modbus.NewPool(nil)
	defer pool.Close()
	pts := []modbus.Point{hp("i16", 100, "int16"), hp("u16", 101, "uint16"), hp("i32", 102, "int32"),
		hp("u32", 104, "uint32"), hp("i64", 106, "int64"), hp("f32", 114, "float32"), hp("f64", 116, "float64"),
		hp("pattern", 0, "uint16"), hp("far", 300, "int16")}
	d := newDriver(t, pool, "tr", modbus.DeviceConfig{Target: "tcp://" + s.Addr(), MaxInflight: intp(8)}, pts)
	if n := len(d.Plan()); n != 3 {
		t.Fatalf("planned %d requests, want 3", n)
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
		if g := got["i16"]; g.Value.Int() != int64(sim.TestRegs.Int16) {
			t.Errorf("round %d: i16 = %v", round, g.Value)
		}
		if sent := d.Requests() - before; round > 0 && sent != uint64(len(d.Plan())) {
			t.Errorf("round %d: sent %d requests, the remembered plan has %d", round, sent, len(d.Plan()))
		}
	}
	if st := d.Stats(); st.Splits == 0 || st.Exceptions[2] == 0 {
		t.Errorf("stats %+v: want splits and exception 2 counted", st)
	}
	if n := len(d.Plan()); n < 4 || n > 7 {
		t.Errorf("plan after split has %d requests: %+v", n, d.Plan())
	}
}

// The simulator's faults, with a plan of three requests sent together: a
// late answer, a stale transaction id, garbage, a disconnect and a busy
// device all end in a good poll, as without pipelining.
func TestPipelinedFaultsAreRetried(t *testing.T) {
	for _, f := range []sim.Fault{
		{LateNext: 1, LateBy: 300 * time.Millisecond},
		{StaleNext: 1},
		{GarbageNext: 1},
		{DisconnectNext: 1},
		{BusyNext: 2},
	} {
		t.Run(strings.Trim(fmt.Sprintf("%+v", f), "{}"), func(t *testing.T) {
			s := startSim(t, sim.Options{Profile: "testregs", Seed: 3})
			pool := modbus.NewPool(nil)
			defer pool.Close()
			pts := []modbus.Point{hp("a", 100, "int16"), hp("b", 200, "uint16"), hp("c", 300, "uint16")}
			d := newDriver(t, pool, "tr", modbus.DeviceConfig{Target: "tcp://" + s.Addr(), Timeout: 100 * time.Millisecond, MaxGap: intp(0), MaxInflight: intp(8)}, pts)
			s.SetFault(f)
			for round := range 3 {
				got, err := poll(t, d)
				if err != nil || got["a"].Value.Int() != int64(sim.TestRegs.Int16) || len(got) != 3 {
					t.Fatalf("round %d: %v %+v", round, err, got)
				}
				for n, g := range got {
					if g.Quality != wire.Good {
						t.Errorf("round %d: %s %v code %d", round, n, g.Quality, g.Code)
					}
				}
			}
			if st := d.Stats(); st.Errors == 0 {
				t.Errorf("stats %+v: the fault was not seen", st)
			}
		})
	}
}

// A device that stops answering fails the poll after one request's retries,
// with every point bad, as without pipelining.
func TestPipelinedSilentDeviceFailsFast(t *testing.T) {
	s := startSim(t, sim.Options{Profile: "testregs", Fault: sim.Fault{DropNext: 1000}})
	pool := modbus.NewPool(nil)
	defer pool.Close()
	d := newDriver(t, pool, "tr", modbus.DeviceConfig{Target: "tcp://" + s.Addr(), Timeout: 50 * time.Millisecond, Retries: intp(1), MaxInflight: intp(8)},
		[]modbus.Point{hp("a", 0, "uint16"), hp("b", 200, "uint16"), hp("c", 400, "uint16")})
	t0 := time.Now()
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
	// The plan's 3 requests went out together, then the first one's retry.
	if r := d.Requests(); r != 4 {
		t.Errorf("sent %d requests, want 4", r)
	}
	if el := time.Since(t0); el > time.Second {
		t.Errorf("poll took %v, want about 2 timeouts", el)
	}
}

// The server going away with requests outstanding: the poll fails as
// unreachable with every point bad, and once the server is back the next
// poll reads everything on a new connection.
func TestPipelinedServerGoesAwayAndReturns(t *testing.T) {
	units := map[byte]string{1: "testregs", 2: "testregs", 3: "testregs"}
	s := startSim(t, sim.Options{Units: units, Fault: sim.Fault{Latency: 50 * time.Millisecond}})
	addr := s.Addr()
	pool := modbus.NewPool(nil)
	defer pool.Close()
	pts := []modbus.Point{hp("a", 100, "int16"), hp("b", 200, "uint16"), hp("c", 300, "uint16")}
	var drivers []*modbus.Driver
	for u := range 3 {
		drivers = append(drivers, newDriver(t, pool, fmt.Sprint("dev", u+1),
			modbus.DeviceConfig{Target: "tcp://" + addr, Unit: intp(u + 1), Timeout: 300 * time.Millisecond, MaxGap: intp(0), MaxInflight: intp(8)}, pts))
	}
	errs := make([]error, len(drivers))
	samples := make([]map[string]wire.Sample, len(drivers))
	var wg sync.WaitGroup
	for i, d := range drivers {
		wg.Go(func() { samples[i], errs[i] = poll(t, d) })
	}
	time.Sleep(20 * time.Millisecond) // requests outstanding, none answered
	s.Close()
	wg.Wait()
	for i := range drivers {
		if !errors.Is(errs[i], protocols.ErrNotConnected) {
			t.Errorf("dev%d: %v, want an error wrapping ErrNotConnected", i+1, errs[i])
		}
		for n, g := range samples[i] {
			if g.Quality != wire.Bad {
				t.Errorf("dev%d %s: %v, want bad", i+1, n, g.Quality)
			}
		}
		if len(samples[i]) != 3 {
			t.Errorf("dev%d: %d samples, want 3", i+1, len(samples[i]))
		}
	}

	s2, err := sim.Start(sim.Options{TCP: addr, Units: units})
	if err != nil {
		t.Fatalf("restart on %s: %v", addr, err)
	}
	defer s2.Close()
	for i, d := range drivers {
		got, err := poll(t, d)
		if err != nil || got["a"].Quality != wire.Good || got["a"].Value.Int() != int64(sim.TestRegs.Int16) {
			t.Errorf("dev%d after the restart: %v %+v", i+1, err, got["a"])
		}
	}
	if c := s2.Stats().Connections; c != 1 {
		t.Errorf("restarted sim saw %d connections, want 1", c)
	}
}

// silentUnitRelay forwards Modbus TCP connections to target but never
// passes on the requests for unit silent, as a pipelining TCP gateway does
// for a device behind it that is powered off: the simulator answers the
// other units, the silent one's requests go unanswered. It is a network
// path in front of the simulator, not a fake peer.
func silentUnitRelay(tb testing.TB, target string, silent byte) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			wg.Go(func() {
				defer s.Close()
				io.Copy(c, s)
			})
			wg.Go(func() {
				defer c.Close()
				defer s.Close()
				for {
					var hdr [7]byte
					if _, err := io.ReadFull(c, hdr[:]); err != nil {
						return
					}
					f := make([]byte, 6+int(binary.BigEndian.Uint16(hdr[4:])))
					if len(f) < 7 {
						return
					}
					copy(f, hdr[:])
					if _, err := io.ReadFull(c, f[7:]); err != nil {
						return
					}
					if f[6] == silent {
						continue
					}
					if _, err := s.Write(f); err != nil {
						return
					}
				}
			})
		}
	})
	tb.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// Issue 10's scenario 7 behind one address with max_inflight 8: five
// healthy units and one that never answers (off, or a wrong unit id) share
// a pipelining gateway. The silent device's polls fail by timeout after its
// retries; every poll of the healthy ones is good, they count no error, and
// all of it runs over the one connection: a request timing out while the
// gateway answers others costs only itself.
func TestPipelinedSilentUnitCostsOnlyItself(t *testing.T) {
	const healthy, silentPolls = 5, 3
	units := map[byte]string{}
	for u := range healthy + 1 {
		units[byte(u+1)] = "testregs"
	}
	// 2 ms per answer, one answer at a time: healthy requests are
	// outstanding most of the time, as behind a gateway to a serial bus.
	s := startSim(t, sim.Options{Units: units, Fault: sim.Fault{Latency: 2 * time.Millisecond}})
	addr := silentUnitRelay(t, s.Addr(), healthy+1)
	pool := modbus.NewPool(nil)
	defer pool.Close()
	pts := []modbus.Point{hp("a", 100, "int16"), hp("b", 200, "uint16"), hp("c", 300, "uint16")}
	cfg := func(unit int) modbus.DeviceConfig {
		return modbus.DeviceConfig{Target: "tcp://" + addr, Unit: intp(unit), Timeout: 200 * time.Millisecond, MaxGap: intp(0), MaxInflight: intp(8)}
	}
	var drivers []*modbus.Driver
	for u := range healthy {
		drivers = append(drivers, newDriver(t, pool, fmt.Sprint("ok", u+1), cfg(u+1), pts))
	}
	silent := newDriver(t, pool, "off", cfg(healthy+1), pts)

	stop := make(chan struct{})
	polls := make([]int, healthy)
	var wg sync.WaitGroup
	for i, d := range drivers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
				got, err := poll(t, d)
				polls[i]++
				if err != nil {
					t.Errorf("ok%d poll %d: %v", i+1, polls[i], err)
				}
				for _, p := range pts {
					if g := got[p.Name]; g.Quality != wire.Good {
						t.Errorf("ok%d poll %d: %s %v code %d, want good", i+1, polls[i], p.Name, g.Quality, g.Code)
					}
				}
				if g := got["a"]; g.Value.Int() != int64(sim.TestRegs.Int16) {
					t.Errorf("ok%d poll %d: a = %v", i+1, polls[i], g.Value)
				}
			}
		})
	}
	for n := range silentPolls {
		got, err := poll(t, silent)
		if !errors.Is(err, modbus.ErrTimeout) || !errors.Is(err, protocols.ErrNotConnected) {
			t.Errorf("silent poll %d: %v, want a timeout wrapping ErrNotConnected", n, err)
		}
		for _, p := range pts {
			if g := got[p.Name]; g.Quality != wire.Bad {
				t.Errorf("silent poll %d: %s %v, want bad", n, p.Name, g.Quality)
			}
		}
	}
	close(stop)
	wg.Wait()

	plan := uint64(len(pts))
	for i, d := range drivers {
		st := d.Stats()
		if st.Errors != 0 || st.Requests != uint64(polls[i])*plan {
			t.Errorf("ok%d: %d polls, stats %+v: want no errors and %d requests", i+1, polls[i], st, uint64(polls[i])*plan)
		}
		if polls[i] < 10 {
			t.Errorf("ok%d polled %d times while the silent device was polled %d times", i+1, polls[i], silentPolls)
		}
	}
	// Each silent poll: its plan's 3 requests together, then 2 retries of
	// the first, each timing out.
	if st := silent.Stats(); st.Timeouts != silentPolls*3 || st.Errors != st.Timeouts || st.Requests != silentPolls*(plan+2) {
		t.Errorf("silent device stats %+v: want %d timeouts, nothing else, %d requests", st, silentPolls*3, silentPolls*(plan+2))
	}
	if c := s.Stats().Connections; c != 1 {
		t.Errorf("sim saw %d connections, want 1", c)
	}
}

// Writes run on a pipelined link beside polls of other devices.
func TestPipelinedWritesBesidePolls(t *testing.T) {
	units := map[byte]string{1: "testregs", 2: "testregs"}
	s := startSim(t, sim.Options{Units: units})
	pool := modbus.NewPool(nil)
	defer pool.Close()
	w := newDriver(t, pool, "rw", modbus.DeviceConfig{Target: "tcp://" + s.Addr(), Unit: intp(1), Writes: true, MaxInflight: intp(4)},
		[]modbus.Point{hp("word", 460, "int16"), hp("sp", 450, "int32")})
	r := newDriver(t, pool, "ro", modbus.DeviceConfig{Target: "tcp://" + s.Addr(), Unit: intp(2), MaxInflight: intp(4)},
		[]modbus.Point{hp("a", 100, "int16"), hp("b", 300, "uint16")})
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 20 {
			if got, err := poll(t, r); err != nil || got["a"].Value.Int() != int64(sim.TestRegs.Int16) {
				t.Errorf("poll: %v %+v", err, got["a"])
			}
		}
	})
	for i := range 20 {
		if err := w.Write(ctx, "word", wire.IntValue(int64(-i))); err != nil {
			t.Fatal(err)
		}
		if err := w.Write(ctx, "sp", wire.IntValue(int64(100000+i))); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	got, err := poll(t, w)
	if err != nil || got["word"].Value.Int() != -19 || got["sp"].Value.Int() != 100019 {
		t.Errorf("read back: %v %+v", err, got)
	}
}

// Devices of one target that disagree: the smallest max_inflight applies,
// and an inter_request_delay means one request at a time.
func TestPipelinedSmallestWindowApplies(t *testing.T) {
	units := map[byte]string{1: "testregs", 2: "testregs"}
	far := []modbus.Point{hp("a", 0, "uint16"), hp("b", 200, "uint16"), hp("c", 400, "uint16"), hp("d", 600, "uint16"), hp("e", 800, "uint16")}
	for _, tc := range []struct {
		name  string
		other modbus.DeviceConfig
		want  int64
	}{
		{"4 and 8", modbus.DeviceConfig{MaxInflight: intp(4)}, 4},
		{"delay", modbus.DeviceConfig{MaxInflight: intp(8), InterRequestDelay: time.Millisecond}, 1},
		{"default", modbus.DeviceConfig{}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSim(t, sim.Options{Units: units, Fault: sim.Fault{Latency: 2 * time.Millisecond}})
			pool := modbus.NewPool(nil)
			defer pool.Close()
			// Both join before the first request, as the agent makes every
			// driver before it polls.
			d, err := pool.Driver("a", modbus.DeviceConfig{Target: "tcp://" + s.Addr(), MaxGap: intp(0), MaxInflight: intp(8)}, far)
			if err != nil {
				t.Fatal(err)
			}
			o := tc.other
			o.Target, o.Unit = "tcp://"+s.Addr(), intp(2)
			newDriver(t, pool, "b", o, far[:1])
			for range 3 {
				if _, err := poll(t, d); err != nil {
					t.Fatal(err)
				}
			}
			if m := s.Stats().MaxInFlight; m != tc.want {
				t.Errorf("sim saw up to %d requests outstanding, want %d", m, tc.want)
			}
		})
	}
}

// max_inflight above 1 is for Modbus TCP only, and bounded.
func TestMaxInflightRejected(t *testing.T) {
	pool := modbus.NewPool(nil)
	defer pool.Close()
	for _, cfg := range []modbus.DeviceConfig{
		{Target: "rtuovertcp://127.0.0.1:4001", MaxInflight: intp(2)},
		{Target: "rtu:///dev/ttyUSB0", MaxInflight: intp(2)},
		{Target: "tcp://127.0.0.1:502", MaxInflight: intp(33)},
		{Target: "tcp://127.0.0.1:502", MaxInflight: intp(0)},
	} {
		if _, err := pool.Driver("x", cfg, nil); err == nil || !strings.Contains(err.Error(), "max_inflight") {
			t.Errorf("%s max_inflight %d: %v, want an error naming max_inflight", cfg.Target, *cfg.MaxInflight, err)
		}
		var fields []string
		for _, e := range cfg.Validate() {
			fields = append(fields, e.Field)
		}
		if len(fields) != 1 || fields[0] != "max_inflight" {
			t.Errorf("%s max_inflight %d: validation says %v, want one max_inflight problem", cfg.Target, *cfg.MaxInflight, fields)
		}
	}
	for _, cfg := range []modbus.DeviceConfig{
		{Target: "rtuovertcp://127.0.0.1:4001", MaxInflight: intp(1)},
		{Target: "tcp://127.0.0.1:502", MaxInflight: intp(32)},
	} {
		if errs := cfg.Validate(); len(errs) != 0 {
			t.Errorf("%s max_inflight %d: %v", cfg.Target, *cfg.MaxInflight, errs)
		}
	}
}

// A link already carrying several requests at once cannot take a device
// that needs one at a time: it would share the connection unprotected.
func TestPipelinedLinkRefusesSerialDeviceLater(t *testing.T) {
	s := startSim(t, sim.Options{Units: map[byte]string{1: "testregs", 2: "testregs"}})
	pool := modbus.NewPool(nil)
	defer pool.Close()
	d := newDriver(t, pool, "a", modbus.DeviceConfig{Target: "tcp://" + s.Addr(), MaxInflight: intp(8)}, []modbus.Point{hp("a", 0, "uint16")})
	if _, err := poll(t, d); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Driver("b", modbus.DeviceConfig{Target: "tcp://" + s.Addr(), Unit: intp(2)}, nil); err == nil || !strings.Contains(err.Error(), "max_inflight") {
		t.Errorf("joining a pipelining link with max_inflight 1: %v, want an error", err)
	}
	b, err := pool.Driver("c", modbus.DeviceConfig{Target: "tcp://" + s.Addr(), Unit: intp(2), MaxInflight: intp(2)}, []modbus.Point{hp("a", 0, "uint16")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got, err := poll(t, b); err != nil || got["a"].Quality != wire.Good {
		t.Errorf("poll: %v %+v", err, got)
	}
}

// latencyRelay forwards TCP connections to target with a one-way delay in
// each direction, as a slow WAN link (a 4G router in front of a remote PLC)
// adds it: every chunk is held until delay after it arrived, whatever came
// before it. It is a network, not a fake peer: the simulator still answers.
func latencyRelay(tb testing.TB, target string, delay time.Duration) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	forward := func(dst, src net.Conn) {
		type chunk struct {
			at   time.Time
			data []byte
		}
		ch := make(chan chunk, 1024)
		wg.Go(func() {
			defer close(ch)
			for {
				buf := make([]byte, 4096)
				n, err := src.Read(buf)
				if n > 0 {
					ch <- chunk{time.Now(), buf[:n]}
				}
				if err != nil {
					return
				}
			}
		})
		wg.Go(func() {
			defer dst.Close()
			for c := range ch {
				time.Sleep(time.Until(c.at.Add(delay)))
				if _, err := dst.Write(c.data); err != nil {
					src.Close()
					return
				}
			}
		})
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			forward(s, c)
			forward(c, s)
		}
	})
	tb.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// BenchmarkSlowLink polls 20 devices of 3 requests each behind one address
// over a link of 50 ms round trip (25 ms each way), all devices at once as
// the agent's aligned schedules do, and reports how long until every device
// has its samples: one request at a time that is 60 round trips; with
// max_inflight the requests overlap.
func BenchmarkSlowLink(b *testing.B) {
	const devices = 20
	units := map[byte]string{}
	for u := range devices {
		units[byte(u+1)] = "testregs"
	}
	s, err := sim.Start(sim.Options{TCP: "127.0.0.1:0", Units: units})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	addr := latencyRelay(b, s.Addr(), 25*time.Millisecond)
	pts := []modbus.Point{hp("a", 100, "int16"), hp("b", 200, "uint16"), hp("c", 300, "uint16")}
	for _, window := range []int{1, 8, 16, 32} {
		b.Run(fmt.Sprint("max_inflight=", window), func(b *testing.B) {
			pool := modbus.NewPool(nil)
			defer pool.Close()
			var drivers []*modbus.Driver
			for u := range devices {
				d, err := pool.Driver(fmt.Sprint("dev", u+1), modbus.DeviceConfig{Target: "tcp://" + addr, Unit: intp(u + 1), Timeout: 5 * time.Second, MaxGap: intp(0), MaxInflight: intp(window)}, pts)
				if err != nil {
					b.Fatal(err)
				}
				drivers = append(drivers, d)
			}
			if err := drivers[0].Connect(context.Background()); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				var wg sync.WaitGroup
				for _, d := range drivers {
					wg.Go(func() {
						n := 0
						err := d.Poll(context.Background(), func(s wire.Sample) {
							if s.Quality == wire.Good {
								n++
							}
						})
						if err != nil || n != len(pts) {
							b.Errorf("poll: %v, %d good samples", err, n)
						}
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/scan")
			b.ReportMetric(float64(drivers[0].Requests())/float64(b.N), "requests/device")
		})
	}
}

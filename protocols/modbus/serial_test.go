package modbus_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/weftiot/weft/protocols/modbus"
	sim "github.com/weftiot/weft/sim/modbus"
	"github.com/weftiot/weft/wire"
)

// ptyPair starts socat with a pty pair and returns the two device paths.
func ptyPair(t *testing.T) (string, string) {
	t.Helper()
	socat, err := exec.LookPath("socat")
	if err != nil {
		t.Skip("socat not installed (make deps installs it)")
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	cmd := exec.Command(socat, "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for range 100 {
		_, ea := os.Stat(a)
		_, eb := os.Stat(b)
		if ea == nil && eb == nil {
			return a, b
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("socat made no pty pair")
	return "", ""
}

// RTU and ASCII over a real (pseudo) serial line: the driver on one end of a
// socat pty pair, the simulator's serial side on the other; two devices
// share the line and its queue.
func TestSerialRTUAndASCII(t *testing.T) {
	for _, mode := range []string{"rtu", "ascii"} {
		t.Run(mode, func(t *testing.T) {
			a, b := ptyPair(t)
			s := startSim(t, sim.Options{Serial: b, SerialMode: mode, Units: map[byte]string{1: "testregs", 2: "testregs"}})
			pool := modbus.NewPool(nil)
			defer pool.Close()
			pts, want := testregsPoints("holding")
			var drivers []*modbus.Driver
			for u := 1; u <= 2; u++ {
				drivers = append(drivers, newDriver(t, pool, fmt.Sprint("dev", u),
					modbus.DeviceConfig{Target: mode + "://" + a + "?baud=19200&parity=E", Unit: intp(u), Timeout: 500 * time.Millisecond}, pts))
			}
			var wg sync.WaitGroup
			for _, d := range drivers {
				wg.Go(func() {
					for range 3 {
						got, err := poll(t, d)
						if err != nil {
							t.Error(err)
							return
						}
						for name, w := range want {
							if g := got[name]; g.Quality != wire.Good || !g.Value.Equal(w) {
								t.Errorf("%s: got %v %+v, want %+v", name, g.Quality, g.Value, w)
							}
						}
					}
				})
			}
			wg.Wait()
			if m := s.Stats().MaxInFlight; m != 1 {
				t.Errorf("the line saw %d requests outstanding at once, want 1", m)
			}
			// A unit nobody answers for times out; the line stays usable.
			ghost := newDriver(t, pool, "ghost", modbus.DeviceConfig{Target: mode + "://" + a + "?baud=19200&parity=E", Unit: intp(9), Timeout: 100 * time.Millisecond, Retries: intp(0)},
				[]modbus.Point{hp("x", 0, "uint16")})
			if _, err := poll(t, ghost); err == nil {
				t.Error("unit 9 answered")
			}
			if _, err := poll(t, drivers[0]); err != nil {
				t.Errorf("after a timeout on the line: %v", err)
			}
			// Writes over the line.
			w := newDriver(t, pool, "w", modbus.DeviceConfig{Target: mode + "://" + a + "?baud=19200&parity=E", Writes: true}, []modbus.Point{hp("sp", 480, "uint16")})
			if err := w.Write(context.Background(), "sp", wire.UintValue(4242)); err != nil {
				t.Fatal(err)
			}
			if got, _ := poll(t, w); got["sp"].Value.Uint() != 4242 {
				t.Errorf("read back %+v", got["sp"])
			}
		})
	}
}

// A late answer on a serial line (RTU has no transaction id): the retry may
// take it, but the answer the device then sends to the retry is flushed
// before the next request, so no later request reads a left-over answer.
func TestSerialLateAnswerIsFlushed(t *testing.T) {
	a, b := ptyPair(t)
	s := startSim(t, sim.Options{Serial: b, Profile: "testregs"})
	pool := modbus.NewPool(nil)
	defer pool.Close()
	d1 := newDriver(t, pool, "d1", modbus.DeviceConfig{Target: "rtu://" + a + "?baud=19200", Timeout: 100 * time.Millisecond}, []modbus.Point{hp("x", 100, "int16")})
	d2 := newDriver(t, pool, "d2", modbus.DeviceConfig{Target: "rtu://" + a + "?baud=19200", Timeout: 300 * time.Millisecond}, []modbus.Point{hp("y", 101, "uint16")})
	s.SetFault(sim.Fault{LateNext: 1, LateBy: 150 * time.Millisecond})
	got, err := poll(t, d1)
	if err != nil || got["x"].Value.Int() != int64(sim.TestRegs.Int16) {
		t.Fatalf("late poll: %v %+v", err, got["x"])
	}
	time.Sleep(50 * time.Millisecond) // the answer to the retry arrives
	for range 3 {
		got, err = poll(t, d2)
		if err != nil || got["y"].Value.Uint() != uint64(sim.TestRegs.Uint16) {
			t.Fatalf("next device read a left-over answer: %v %+v", err, got["y"])
		}
	}
	if st := d2.Stats(); st.Errors != 0 {
		t.Errorf("d2 errors %d: %s", st.Errors, st.LastError)
	}
}

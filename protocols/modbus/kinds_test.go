package modbus_test

import (
	"testing"
	"time"

	"github.com/weftiot/weft/protocols"
	"github.com/weftiot/weft/protocols/modbus"
	sim "github.com/weftiot/weft/sim/modbus"
	"github.com/weftiot/weft/wire"
)

var _ protocols.ErrorKinds = (*modbus.Driver)(nil)

// Each fault the simulator can show is counted under its own kind, and
// only there: a missing register (exception), an unanswered request
// (timeout), random bytes for an answer (frame), a dropped connection (io),
// a NaN float (bad_value).
func TestErrorsByKind(t *testing.T) {
	for _, tt := range []struct {
		kind  string
		fault sim.Fault
		nan   bool
	}{
		{wire.ErrorException, sim.Fault{Exceptions: []sim.ExceptionAt{{Table: "holding", Address: 114, Code: 2}}}, false},
		{wire.ErrorTimeout, sim.Fault{DropNext: 1}, false},
		{wire.ErrorFrame, sim.Fault{GarbageNext: 1}, false},
		{wire.ErrorIO, sim.Fault{DisconnectNext: 1}, false},
		{wire.ErrorBadValue, sim.Fault{}, true},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			s := startSim(t, sim.Options{Profile: "testregs"})
			pool := modbus.NewPool(nil)
			defer pool.Close()
			d := newDriver(t, pool, "tr", modbus.DeviceConfig{Target: "tcp://" + s.Addr(), Timeout: 200 * time.Millisecond, Retries: intp(0)},
				[]modbus.Point{hp("f32", 114, "float32")})
			if k := d.ErrorsByKind(); len(k) != 0 {
				t.Fatalf("errors by kind %v before any request", k)
			}
			if tt.nan {
				s.SetRegister(1, false, 114, 0x7fc0) // float32 quiet NaN, high word first
				s.SetRegister(1, false, 115, 0)
			}
			s.SetFault(tt.fault)
			poll(t, d)
			k := d.ErrorsByKind()
			if k[tt.kind] != 1 || len(k) != 1 {
				t.Errorf("errors by kind %v, want %s: 1 alone (stats %+v)", k, tt.kind, d.Stats())
			}
		})
	}
}

package registry

import (
	"path/filepath"
	"testing"

	"github.com/weftiot/weft/wire"
)

// TestLatestUnits: the latest values carry the unit and type of the agent's
// last online status; an offline status (the will, which has no points)
// keeps them; a new online status replaces them; a point the status does
// not describe has none.
func TestLatestUnits(t *testing.T) {
	r, db, _ := openTest(t, filepath.Join(t.TempDir(), "reg.db"))
	defer db.Close()
	st := func(state string, pts []wire.DevicePoints) {
		r.Status(&wire.Status{V: wire.Version, Site: "s", Agent: "gw", State: state, Devices: []string{"dye-01"}, Points: pts})
	}
	units := func() map[string]string {
		_, latest, ok := r.Get("s", "gw")
		if !ok {
			t.Fatal("agent unknown")
		}
		out := map[string]string{}
		for _, l := range latest {
			out[l.Device+"/"+l.Point] = l.Unit + "|" + l.Type
		}
		return out
	}
	check := func(when string, want map[string]string) {
		t.Helper()
		got := units()
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: %s unit|type %q, want %q", when, k, got[k], w)
			}
		}
	}
	st(wire.Online, []wire.DevicePoints{{Device: "dye-01", Protocol: "modbus", Points: []wire.PointInfo{
		{Name: "bath_temp", Unit: "°C", Type: "int16"}, {Name: "running", Type: "bool"}}}})
	r.Batch(&wire.Batch{Site: "s", Agent: "gw", Seq: 1, Samples: []wire.Sample{
		{Device: "dye-01", Point: "bath_temp", Value: wire.FloatValue(81.5), TS: 1},
		{Device: "dye-01", Point: "running", Value: wire.BoolValue(true), TS: 1},
		{Device: "dye-01", Point: "unknown", Value: wire.IntValue(3), TS: 1},
		{Device: "loom-07", Point: "speed", Value: wire.IntValue(3), TS: 1},
	}})
	check("online", map[string]string{"dye-01/bath_temp": "°C|int16", "dye-01/running": "|bool", "dye-01/unknown": "|", "loom-07/speed": "|"})

	st(wire.Offline, nil)
	check("after the will", map[string]string{"dye-01/bath_temp": "°C|int16"})

	st(wire.Online, []wire.DevicePoints{{Device: "dye-01", Points: []wire.PointInfo{{Name: "bath_temp", Unit: "°F", Type: "int16"}}}})
	check("after a config change", map[string]string{"dye-01/bath_temp": "°F|int16", "dye-01/running": "|"})

	// An agent older than the points key: its online status keeps them too.
	st(wire.Online, nil)
	check("an online status without points", map[string]string{"dye-01/bath_temp": "°F|int16"})
}

package modbus

import "testing"

// The max_gap default follows the transport: reading through is nearly free
// on TCP and costs line time on a serial bus.
func TestMaxGapDefaultFollowsTransport(t *testing.T) {
	for _, tc := range []struct {
		target string
		want   int
	}{
		{"tcp://127.0.0.1:502", 50},
		{"TCP://127.0.0.1:502", 50},
		{"rtuovertcp://127.0.0.1:4001", 10},
		{"rtu:///dev/ttyUSB0?baud=9600", 10},
		{"ascii:///dev/ttyS1", 10},
	} {
		c := DeviceConfig{Target: tc.target}
		c.SetDefaults()
		if c.MaxGap == nil || *c.MaxGap != tc.want {
			t.Errorf("%s: max_gap default %v, want %d", tc.target, c.MaxGap, tc.want)
		}
	}
	explicit := 3
	c := DeviceConfig{Target: "tcp://127.0.0.1:502", MaxGap: &explicit}
	c.SetDefaults()
	if *c.MaxGap != 3 {
		t.Errorf("an explicit max_gap was replaced by %d", *c.MaxGap)
	}
}

// Unit 255 addresses a Modbus TCP device itself; on a serial line the
// slave ids end at 247.
func TestUnitRangeFollowsTransport(t *testing.T) {
	for _, tc := range []struct {
		target string
		unit   int
		ok     bool
	}{
		{"tcp://127.0.0.1:502", 255, true},
		{"tcp://127.0.0.1:502", 256, false},
		{"rtu:///dev/ttyUSB0?baud=9600", 247, true},
		{"rtu:///dev/ttyUSB0?baud=9600", 255, false},
		{"rtuovertcp://127.0.0.1:4001", 250, false},
	} {
		u := tc.unit
		c := DeviceConfig{Target: tc.target, Unit: &u}
		var unitErr bool
		for _, e := range c.Validate() {
			if e.Field == "unit" {
				unitErr = true
			}
		}
		if unitErr == tc.ok {
			t.Errorf("%s unit %d: accepted %v, want %v", tc.target, tc.unit, !unitErr, tc.ok)
		}
	}
}

package runner

import (
	"reflect"
	"testing"

	"github.com/weftiot/weft/config"
	"github.com/weftiot/weft/wire"
)

// TestStatusPoints: the retained status describes each enabled device's
// points as the loaded config has them: profile points with the device's
// overrides, units, Modbus types (a coil's default bool included), OPC UA
// points without a type; a disabled device is left out.
func TestStatusPoints(t *testing.T) {
	const text = `
agent: {id: gw, site: s}
mqtt: {broker: "tcp://127.0.0.1:1883"}
profiles:
  dyer:
    protocol: modbus
    points:
      - {name: bath_temp, table: holding, address: 0, type: int16, scale: 0.1, unit: "°C"}
      - {name: pump_on, table: coil, address: 5}
devices:
  - id: dye-01
    profile: dyer
    modbus: {target: "tcp://127.0.0.1:502", unit: 1}
    points:
      - {name: bath_temp, table: holding, address: 0, type: int16, scale: 0.1, unit: "°F"}
      - {name: flow, table: holding, address: 4, type: float32, unit: "m³/h"}
  - id: winder
    opcua: {endpoint: "opc.tcp://127.0.0.1:4840"}
    points:
      - {name: drum_speed, node: "ns=1;s=Winder1.DrumSpeed", unit: m/min}
  - id: spare
    disabled: true
    profile: dyer
    modbus: {target: "tcp://127.0.0.1:503", unit: 1}
`
	cfg, err := config.ParseAgent("agent.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	got := StatusPoints(cfg)
	want := []wire.DevicePoints{
		{Device: "dye-01", Protocol: "modbus", Points: []wire.PointInfo{
			{Name: "bath_temp", Unit: "°F", Type: "int16"},
			{Name: "pump_on", Type: "bool"},
			{Name: "flow", Unit: "m³/h", Type: "float32"},
		}},
		{Device: "winder", Protocol: "opcua", Points: []wire.PointInfo{{Name: "drum_speed", Unit: "m/min"}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("status points\n got %+v\nwant %+v", got, want)
	}
}

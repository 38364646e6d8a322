package runner

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
)

// TestDeviceLastErrorExplained: a device's last_error in health is the
// sentence `once` and `probe` print for the fault, with the driver's own
// error (naming the request) after it. One device points at a port nothing
// listens on, one reads a register the simulator does not have, and one is
// an OPC UA device, whose errors are shown as they are.
func TestDeviceLastErrorExplained(t *testing.T) {
	sim := startSim(t, 1) // counter profile, 20 holding registers
	broker := testservers.Mosquitto(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	cfg := fmt.Sprintf(`agent: {id: a1, site: %s, data_dir: %s, health_interval: 500ms}
mqtt: {broker: %s}
devices:
  - id: refused
    interval: 100ms
    modbus: {target: "tcp://%s", unit: 1, timeout: 200ms}
    points: [{name: p, table: holding, address: 0, type: uint16}]
  - id: nosuchreg
    interval: 100ms
    modbus: {target: "tcp://%s", unit: 1, timeout: 500ms}
    points: [{name: p, table: holding, address: 100, type: uint16}]
  - id: opc
    interval: 100ms
    opcua: {endpoint: "opc.tcp://%s", security_policy: None, timeout: 200ms}
    points: [{name: p, node: "ns=2;s=x"}]
`, testSite, filepath.Join(dir, "data"), broker.URL, closed, sim.Addr(), closed)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	a, stop := startAgent(t, testOptions(path))
	defer stop()

	last := func(id string) string {
		for _, d := range a.Health().Devices {
			if d.ID == id {
				return d.LastError
			}
		}
		return ""
	}
	waitUntil(t, "a last error of every device", 10*time.Second, func() bool {
		return last("refused") != "" && last("nosuchreg") != "" && last("opc") != ""
	})
	for _, tc := range []struct {
		id   string
		want []string
	}{
		{"refused", []string{
			"cannot connect to tcp://" + closed + ": connection refused: nothing listens on that port — check the IP address and port",
			`(device "refused": connect tcp://` + closed, "connection refused)"}},
		{"nosuchreg", []string{
			"unit 1 answered exception 2 (illegal data address): ",
			`(device "nosuchreg" unit 1: read holding 100..100: `}},
	} {
		got := last(tc.id)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: last_error %q does not say %q", tc.id, got, w)
			}
		}
	}
	if got := last("opc"); !strings.Contains(got, `device "opc"`) || strings.Contains(got, "check the IP address") {
		t.Errorf("opc: last_error %q; want the driver's own error, without the Modbus advice", got)
	}
	for _, d := range a.Health().Devices {
		t.Logf("%s: %s", d.ID, d.LastError)
		if d.State == wire.DeviceOK {
			t.Errorf("%s is ok with a last error %q", d.ID, d.LastError)
		}
	}
}

package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// onceConfig is a config with one testregs device on the simulator and,
// optionally, one device nobody answers for.
func onceConfig(t *testing.T, simAddr string, withDead bool) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`agent: {id: a1, site: s1, data_dir: %s}
mqtt: {broker: "tcp://127.0.0.1:1"}
devices:
  - id: regs
    modbus: {target: "tcp://%s", unit: 1}
    points:
      - {name: i16, table: holding, address: 100, type: int16}
      - {name: u32, table: holding, address: 104, type: uint32, scale: 0.001}
      - {name: f32_cdab, table: holding, address: 214, type: float32, order: CDAB}
      - {name: text, table: holding, address: 120, type: string, length: 5}
      - {name: nan, table: holding, address: 125, type: float32}
`, filepath.Join(dir, "data"), simAddr)
	if withDead {
		cfg += `  - id: gone
    modbus: {target: "tcp://127.0.0.1:1", unit: 1, timeout: 200ms, retries: 0}
    points:
      - {name: x, table: holding, address: 0, type: uint16}
`
	}
	path := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOnceTable(t *testing.T) {
	sim := startModbusSim(t, map[byte]string{1: "testregs"})
	path := onceConfig(t, sim.Addr(), false)
	code, out, errOut := runCLI(t, "once", "--config", path)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"DEVICE", "QUALITY",
		"regs    i16       -12345",
		"u32       3000000", // 3000000000 * 0.001, scaled as in run
		"f32_cdab  -1234.5",
		`"WEFT-TEST"`,
		"nan       null",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(lineStarting(out, "regs    nan"), "bad") {
		t.Errorf("a NaN register must show quality bad:\n%s", out)
	}
}

func TestOnceJSON(t *testing.T) {
	sim := startModbusSim(t, map[byte]string{1: "testregs"})
	path := onceConfig(t, sim.Addr(), false)
	code, out, errOut := runCLI(t, "once", "--config", path, "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines, want one per point (5):\n%s", len(lines), out)
	}
	got := map[string]map[string]any{}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if m["device"] != "regs" || m["ts"] == nil || m["quality"] == nil {
			t.Errorf("line %q lacks device, ts or quality", l)
		}
		got[m["point"].(string)] = m
	}
	if v := got["i16"]["value"]; v != float64(-12345) {
		t.Errorf("i16 = %v", v)
	}
	if v := got["u32"]["value"]; v != float64(3e6) {
		t.Errorf("u32 scaled = %v, want 3e6", v)
	}
	if got["nan"]["value"] != nil || got["nan"]["quality"] != "bad" {
		t.Errorf("nan: %v", got["nan"])
	}
}

func TestOnceFailingDeviceExitsNonZero(t *testing.T) {
	sim := startModbusSim(t, map[byte]string{1: "testregs"})
	path := onceConfig(t, sim.Addr(), true)
	code, out, errOut := runCLI(t, "once", "--config", path, "--timeout", "3s")
	if code != 1 {
		t.Fatalf("exit %d, want 1 with a dead device\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "gone:") || !strings.Contains(out, "regs") {
		t.Errorf("want the good device's samples and the dead one's error:\nstdout:\n%s\nstderr:\n%s", out, errOut)
	}
	// The dead device's line says what to check, as probe would.
	if !strings.Contains(errOut, "check the") {
		t.Errorf("the dead device's error gives no advice:\n%s", errOut)
	}
}

func TestOncePlan(t *testing.T) {
	path := onceConfig(t, "127.0.0.1:1", false) // --plan dials nothing
	code, out, errOut := runCLI(t, "once", "--config", path, "--plan")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, `device "regs": 5 points in`) {
		t.Errorf("plan output:\n%s", out)
	}
}

func TestOnceAndRunUsage(t *testing.T) {
	for _, cmd := range []string{"once", "run"} {
		if code, out, _ := runCLI(t, cmd, "--help"); code != 0 || !strings.Contains(out, "usage: weft-agent "+cmd) {
			t.Errorf("%s --help: exit %d\n%s", cmd, code, out)
		}
		if code, _, errOut := runCLI(t, cmd); code != 2 || !strings.Contains(errOut, "--config") {
			t.Errorf("%s without --config: exit %d\n%s", cmd, code, errOut)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("agent: {id: a1, sit: s1}\n"), 0o644)
	for _, cmd := range []string{"once", "run"} {
		code, _, errOut := runCLI(t, cmd, "--config", bad)
		if code != 1 || !strings.Contains(errOut, "bad.yaml:1:") {
			t.Errorf("%s with a bad config: exit %d, want 1 and FILE:LINE errors:\n%s", cmd, code, errOut)
		}
	}
}

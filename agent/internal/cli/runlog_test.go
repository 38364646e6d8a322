package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftiot/weft/internal/testservers"
	simmodbus "github.com/weftiot/weft/sim/modbus"
)

// Issue 6: `run` logs with log/slog, text or JSON, at a configurable level,
// and is quiet at info during normal operation. Two devices polled every
// 100 ms into a real Mosquitto for 2 s are tens of polls, batches and
// health messages: at info only the start, the connection and the stop
// may be logged; at warn nothing; in JSON every line is an object.
func TestRunLogFormatsAndQuietAtInfo(t *testing.T) {
	sim, err := simmodbus.Start(simmodbus.Options{TCP: "127.0.0.1:0", Profile: "counter", Devices: 2, Registers: 10, Tick: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	broker := testservers.Mosquitto(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	cfg := fmt.Sprintf(`agent: {id: logs1, site: lab, data_dir: %s, health_interval: 200ms}
mqtt: {broker: %q}
batch: {flush_interval: 100ms}
devices:
  - {id: d1, interval: 100ms, modbus: {target: "tcp://%s", unit: 1}, points: [{name: ticks, table: holding, address: 0, type: uint64}]}
  - {id: d2, interval: 100ms, modbus: {target: "tcp://%s", unit: 2}, points: [{name: ticks, table: holding, address: 0, type: uint64}]}
`, filepath.Join(dir, "data"), broker.URL, sim.Addr(), sim.Addr())
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) []string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var out, errb bytes.Buffer
		args = append([]string{"run", "--config", path}, args...)
		if code := Main(ctx, args, &out, &errb, slog.New(slog.NewTextHandler(io.Discard, nil))); code != 0 {
			t.Fatalf("weft-agent %s: exit %d\n%s", strings.Join(args, " "), code, errb.String())
		}
		return strings.FieldsFunc(errb.String(), func(r rune) bool { return r == '\n' })
	}

	info := run("--log-level", "info")
	if len(info) > 6 || !strings.Contains(strings.Join(info, "\n"), `msg="connected to the broker"`) {
		t.Errorf("at info, 2 s of normal operation logged %d lines, want the start, the connection and the stop (at most 6):\n%s", len(info), strings.Join(info, "\n"))
	}
	if warn := run("--log-level", "warn"); len(warn) != 0 {
		t.Errorf("at warn, normal operation logged:\n%s", strings.Join(warn, "\n"))
	}
	js := run("--log-format", "json", "--log-level", "debug")
	if len(js) <= len(info) {
		t.Errorf("debug logged %d lines, no more than info's %d: the level is not applied", len(js), len(info))
	}
	for _, l := range js {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["level"] == nil || m["msg"] == nil {
			t.Errorf("--log-format json: line %q is not a JSON log record (%v)", l, err)
		}
	}
}

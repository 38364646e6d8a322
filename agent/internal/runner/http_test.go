package runner

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/weftiot/weft/internal/testservers"
	modbussim "github.com/weftiot/weft/sim/modbus"
	"github.com/weftiot/weft/wire"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestLocalHTTPEndpoint(t *testing.T) {
	sim := startSim(t, 2)
	broker := testservers.Mosquitto(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	os.WriteFile(path, []byte(agentConfig(filepath.Join(dir, "data"), broker.URL, sim.Addr(), 2, "metrics: {listen: 127.0.0.1:0}")), 0o644)
	a, _ := startAgent(t, testOptions(path))
	base := "http://" + a.HTTPAddr()
	waitUntil(t, "connected and published", 10*time.Second, func() bool {
		return a.forwarder().Connected() && a.forwarder().Health().PublishedBatch > 0
	})

	// Two requests left unanswered: timeouts, which /metrics must show as
	// health does. The figures are read health, metrics, health: each
	// metric lies between the two health readings.
	sim.SetFault(modbussim.Fault{DropNext: 2})
	waitUntil(t, "two timeouts", 10*time.Second, func() bool {
		n := uint64(0)
		for _, d := range a.Health().Devices {
			n += d.ErrorsByKind[wire.ErrorTimeout]
		}
		return n >= 2
	})
	before := a.Health()
	code, body := get(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	after := a.Health()
	for _, want := range []string{
		`weft_agent_info{agent="a1",config_hash="`,
		"weft_agent_spool_batches ",
		`weft_agent_spool_dropped_samples_total{reason="oldest"} 0`,
		"weft_agent_mqtt_connected 1",
		"weft_agent_mqtt_published_batches_total ",
		"weft_agent_pipeline_samples_total ",
		"weft_agent_pipeline_suppressed_samples_total ",
		`weft_agent_device_state{device="dev1",protocol="modbus",state="ok"} 1`,
		`weft_agent_device_state{device="dev2",protocol="modbus",state="down"} 0`,
		`weft_agent_device_reads_total{device="dev2",protocol="modbus"} `,
		`weft_agent_device_requests_total{device="dev1",protocol="modbus"} `,
		`weft_agent_device_poll_seconds{device="dev1",protocol="modbus"} `,
		"process_resident_memory_bytes ",
		"go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// The agent writes the exposition format by hand; Prometheus' own
	// parser must read every line of it.
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not valid Prometheus text format: %v\n%s", err, body)
	}
	if f := fams["weft_agent_device_state"]; f == nil || len(f.GetMetric()) != 6 {
		t.Errorf("weft_agent_device_state: want 3 states x 2 devices, got %v", f)
	}
	// The same figures as health: errors by kind per device, and every
	// dropped count.
	value := func(family string, labels ...string) (float64, bool) {
		for _, m := range fams[family].GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			match := true
			for i := 0; i+1 < len(labels); i += 2 {
				match = match && have[labels[i]] == labels[i+1]
			}
			if match {
				if c := m.GetCounter(); c != nil {
					return c.GetValue(), true
				}
				return m.GetGauge().GetValue(), true
			}
		}
		return 0, false
	}
	between := func(what string, got float64, lo, hi uint64) {
		t.Helper()
		if got < float64(lo) || got > float64(hi) {
			t.Errorf("%s: /metrics %v, health %d then %d", what, got, lo, hi)
		}
	}
	timeouts := 0.0
	for i, d := range before.Devices {
		for _, k := range errorKinds {
			got, ok := value("weft_agent_device_errors_by_kind_total", "device", d.ID, "kind", k, "protocol", "modbus")
			if !ok {
				t.Errorf("/metrics has no weft_agent_device_errors_by_kind_total for %s kind %s", d.ID, k)
			}
			between(d.ID+" "+k, got, d.ErrorsByKind[k], after.Devices[i].ErrorsByKind[k])
			if k == wire.ErrorTimeout {
				timeouts += got
			}
		}
	}
	if timeouts < 2 {
		t.Errorf("/metrics: %v timeouts, want the 2 requests left unanswered", timeouts)
	}
	for _, c := range []struct {
		reason string
		lo, hi uint64
	}{
		{"expired", before.Spool.DroppedExpired, after.Spool.DroppedExpired},
		{"corrupt", before.Spool.DroppedCorrupt, after.Spool.DroppedCorrupt},
		{"newest", before.Spool.DroppedNewest, after.Spool.DroppedNewest},
	} {
		got, _ := value("weft_agent_spool_dropped_samples_total", "reason", c.reason)
		between("dropped "+c.reason, got, c.lo, c.hi)
	}
	got, _ := value("weft_agent_pipeline_lost_samples_total")
	between("pipeline lost", got, before.Spool.LostSamples, after.Spool.LostSamples)
	// Every weft_ metric is documented in docs/metrics.md.
	doc, err := os.ReadFile("../../../docs/metrics.md")
	if err != nil {
		t.Fatalf("docs/metrics.md: %v", err)
	}
	for _, line := range strings.Split(body, "\n") {
		if name, ok := strings.CutPrefix(line, "# HELP "); ok && strings.HasPrefix(name, "weft_") {
			name = strings.Fields(name)[0]
			if !strings.Contains(string(doc), "`"+name+"`") {
				t.Errorf("metric %s is not documented in docs/metrics.md", name)
			}
		}
	}

	code, body = get(t, base+"/healthz")
	var h wire.Health
	if code != 200 || json.Unmarshal([]byte(body), &h) != nil || h.Agent != "a1" || len(h.Devices) != 2 {
		t.Errorf("/healthz: %d %s", code, body)
	}
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz while connected: %d", code)
	}
	if code, body := get(t, base+"/"); code != 200 || !strings.Contains(body, "dev2") || !strings.Contains(body, "connected") ||
		!strings.Contains(body, "<td>timeout ") || !strings.Contains(body, " samples/s") || !strings.Contains(body, " corrupt;") {
		t.Errorf("status page (want the devices, broker, timeouts by kind, publish rate, dropped counts): %d\n%s", code, body)
	}
	broker.Stop()
	waitUntil(t, "not ready without the broker", 10*time.Second, func() bool { c, _ := get(t, base+"/readyz"); return c == 503 })
}

// `run --http ADDR` serves the endpoint although the config has no
// metrics.listen, and a config's rollback_after is the one the agent uses.
func TestHTTPFlagAndRollbackAfterFromConfig(t *testing.T) {
	sim := startSim(t, 1)
	broker := testservers.Mosquitto(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	cfg := strings.Replace(agentConfig(filepath.Join(dir, "data"), broker.URL, sim.Addr(), 1, ""), "  health_interval: 500ms\n", "  health_interval: 500ms\n  rollback_after: 45s\n", 1)
	if !strings.Contains(cfg, "rollback_after: 45s") {
		t.Fatalf("test config has no health_interval line to extend:\n%s", cfg)
	}
	os.WriteFile(path, []byte(cfg), 0o644)
	opts := testOptions(path)
	opts.RollbackAfter = 0
	opts.HTTPListen = "127.0.0.1:0"
	a, _ := startAgent(t, opts)
	if a.HTTPAddr() == "" {
		t.Fatal("no local HTTP endpoint although --http was given")
	}
	if code, _ := get(t, "http://"+a.HTTPAddr()+"/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	if a.opts.RollbackAfter != 45*time.Second {
		t.Errorf("rollback after %v, want the config's 45s", a.opts.RollbackAfter)
	}
}

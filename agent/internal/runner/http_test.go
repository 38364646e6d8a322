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

	code, body := get(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
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
	if code, body := get(t, base+"/"); code != 200 || !strings.Contains(body, "dev2") || !strings.Contains(body, "connected") {
		t.Errorf("status page: %d\n%s", code, body)
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

package e2e

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	RemoveBuilt()
	os.Exit(code)
}

// soak reports whether the long forms run (WEFT_SOAK=1, make soak).
func soak() bool { return os.Getenv("WEFT_SOAK") == "1" }

// skipShort skips under -short: every scenario runs the real processes.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: runs weft-sim, weft-agent, weft-gateway, Mosquitto and influxd")
	}
}

// envDuration reads a duration from the environment, else def.
func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 30s", name, v)
	}
	return d
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// loadConfig is the load every scenario runs under: WEFT_E2E_RATE
// samples/s (short form 2,000; soak 20,000) of WEFT_E2E_POINTS points per
// device (50) polled every WEFT_E2E_INTERVAL (500ms); the device count
// follows.
func loadConfig(t *testing.T) Config {
	t.Helper()
	rate := 2000
	if soak() {
		rate = 20000
	}
	rate = envInt(t, "WEFT_E2E_RATE", rate)
	points := envInt(t, "WEFT_E2E_POINTS", 50)
	interval := envDuration(t, "WEFT_E2E_INTERVAL", 500*time.Millisecond)
	devices := int(math.Ceil(float64(rate) * interval.Seconds() / float64(points)))
	if devices > 247 {
		t.Fatalf("WEFT_E2E_RATE=%d with %d points every %s needs %d devices; one simulator serves at most 247: raise WEFT_E2E_POINTS or WEFT_E2E_INTERVAL", rate, points, interval, devices)
	}
	return Config{Devices: max(devices, 1), Points: points, Interval: interval}
}

// scenarioLength is the short or the long form of a scenario's duration.
func scenarioLength(short, long time.Duration) time.Duration {
	if soak() {
		return long
	}
	return short
}

// expectClean fails the test on any loss, duplicate, reordering or sample
// that was never served.
func expectClean(t *testing.T, r Report) {
	t.Helper()
	if r.Expected == 0 {
		t.Fatalf("%s: nothing was served: the harness counted nothing", r.Scenario)
	}
	if r.Lost != 0 || r.Duplicated != 0 || r.OutOfOrder != 0 || r.Unexpected != 0 {
		t.Errorf("%s: lost %d, duplicated %d, out of order %d, never served %d; want all 0", r.Scenario, r.Lost, r.Duplicated, r.OutOfOrder, r.Unexpected)
	}
	if r.TapDesync != 0 {
		t.Errorf("%s: the Modbus tap lost track of %d connections: the count is incomplete", r.Scenario, r.TapDesync)
	}
}

// TestSteadyLoad is scenario 1: steady load, every sample counted, with
// the end-to-end latency of one device's samples and the memory of the
// agent and the gateway (scenario 8's short form).
func TestSteadyLoad(t *testing.T) {
	skipShort(t)
	cfg := loadConfig(t)
	length := envDuration(t, "WEFT_E2E_DURATION", scenarioLength(30*time.Second, 10*time.Minute))
	h := Start(t, cfg)
	from := time.Now()
	agentCPU0, gwCPU0 := h.Agent.CPU(), h.Gateway.CPU()
	h.Monitor.MeasureLatency(true)
	time.Sleep(length)
	h.Monitor.MeasureLatency(false)
	agentCPU, gwCPU := h.Agent.CPU()-agentCPU0, h.Gateway.CPU()-gwCPU0
	to := time.Now()
	catchUp := h.Quiesce(60 * time.Second)
	r := Report{Scenario: fmt.Sprintf("1. steady load, %s", length.Round(time.Second)), Tally: h.Count(), Recover: "-"}
	lat := h.Monitor.Latency()
	agentMem, gwMem := h.Monitor.RSS(from, to)
	secs := to.Sub(from).Seconds()
	r.Notes = append(r.Notes,
		fmt.Sprintf("%d devices × %d points every %s; stored %.0f samples/s over the run", cfg.Devices, cfg.Points, cfg.Interval, float64(r.Stored)/(secs+catchUp.Seconds())),
		fmt.Sprintf("latency source time → visible in InfluxDB (device %s, %d samples, ±%s): p50 %s, p99 %s, max %s",
			deviceName(latencyDevice), len(lat), monitorPeriod, Percentile(lat, 50).Round(time.Millisecond), Percentile(lat, 99).Round(time.Millisecond), Percentile(lat, 100).Round(time.Millisecond)),
		fmt.Sprintf("CPU over the load: agent %.1f s (%.1f%% of a core), gateway %.1f s (%.1f%%)", agentCPU.Seconds(), 100*agentCPU.Seconds()/secs, gwCPU.Seconds(), 100*gwCPU.Seconds()/secs),
		fmt.Sprintf("RSS agent: %s; gateway: %s", agentMem, gwMem),
		fmt.Sprintf("caught up %s after the devices stopped", catchUp.Round(100*time.Millisecond)),
	)
	r.Print(t)
	expectClean(t, r)
	if len(lat) == 0 {
		t.Error("no latency measured: the latency device's samples never showed up while timing")
	}
}

package e2e

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
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

// liveLag is how stale the newest stored sample may be for the set to
// count as live: two polls and a batch flush, at least 2 s.
func liveLag(c Config) time.Duration {
	return max(2*time.Second, 2*c.Interval+c.Flush+time.Second)
}

// TestBrokerOutage is scenario 2: the agent cannot reach the broker (the
// link resets every connection) under load, then can again; the agent's
// backlog drains and nothing is lost.
func TestBrokerOutage(t *testing.T) {
	skipShort(t)
	cfg := loadConfig(t)
	down := envDuration(t, "WEFT_E2E_OUTAGE", scenarioLength(20*time.Second, 5*time.Minute))
	h := Start(t, cfg)
	r, _ := outage(t, h, cfg, fmt.Sprintf("2. broker unreachable %s under load", down.Round(time.Second)), "e2e-broker-outage.png",
		down, h.BrokerLink.Cut, h.BrokerLink.Pass)
	expectClean(t, r)
}

// TestBrokerRestart is scenario 2 with the broker process itself stopped
// and started again (Mosquitto saves its persistence on SIGTERM).
//
// Known loss, explained: Mosquitto 2.0.11 does not restore $share
// subscriptions from its persistence file (plain subscriptions it does),
// so what the agent publishes after the restart and before the gateway
// has subscribed again reaches no one. The test fails on any loss that is
// not of samples served between the broker's stop (less one flush) and the
// gateway's new subscription.
func TestBrokerRestart(t *testing.T) {
	skipShort(t)
	cfg := loadConfig(t)
	down := envDuration(t, "WEFT_E2E_OUTAGE", scenarioLength(20*time.Second, 5*time.Minute))
	h := Start(t, cfg)
	var stopped time.Time
	r, tally := outage(t, h, cfg, fmt.Sprintf("2b. broker process stopped %s under load", down.Round(time.Second)), "e2e-broker-restart.png",
		down, func() { stopped = time.Now(); h.Broker.Stop() }, h.Broker.Start)
	subscribed := gatewayResubscribed(t, h)
	from := stopped.Add(-cfg.Flush - cfg.Interval - time.Second)
	unexplained := 0
	for _, at := range tally.LostServedTimes() {
		if at.Before(from) || at.After(subscribed) {
			unexplained++
		}
	}
	if r.Lost > 0 {
		t.Logf("KNOWN: %d samples lost to Mosquitto not restoring the gateway's $share subscription after its restart (gateway subscribed again %s after the broker stopped); %d lost outside that window",
			r.Lost, subscribed.Sub(stopped).Round(100*time.Millisecond), unexplained)
	}
	if unexplained > 0 || r.Duplicated != 0 || r.OutOfOrder != 0 || r.Unexpected != 0 {
		t.Errorf("%s: %d counter readings lost outside the restart window, duplicated %d, out of order %d, never served %d; want all 0", r.Scenario, unexplained, r.Duplicated, r.OutOfOrder, r.Unexpected)
	}
}

// gatewayResubscribed is when the gateway logged its latest connection
// (and data subscription) to the broker.
func gatewayResubscribed(t *testing.T, h *Harness) time.Time {
	t.Helper()
	ts, err := h.Gateway.WaitLog(regexp.MustCompile(`time=(\S+) level=INFO msg="connected to the broker"`), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		t.Fatalf("gateway log time %q: %v", ts, err)
	}
	return at
}

// outage runs steady load for 5 s, calls fail, waits down, calls restore,
// waits until the set is live again and 5 s more, and counts. It writes a
// chart of the run named chart.
func outage(t *testing.T, h *Harness, cfg Config, name, chart string, down time.Duration, fail, restore func()) (Report, Tally) {
	t.Helper()
	from := time.Now()
	time.Sleep(5 * time.Second)
	t0 := time.Now()
	fail()
	time.Sleep(down)
	restore()
	up := time.Now()
	var drain time.Duration
	h.WaitFor("the backlog drained", 5*time.Minute+4*down, func() bool {
		var ok bool
		drain, ok = h.Monitor.Recovered(up, liveLag(cfg), cfg.Rate()*2)
		return ok
	})
	reconnect, _ := h.Monitor.Connected(up)
	time.Sleep(5 * time.Second)
	to := time.Now()
	h.Quiesce(60 * time.Second)
	tally := h.Count()
	r := Report{Scenario: name, Tally: tally, Recover: drain.Round(100 * time.Millisecond).String()}
	peak, drained, ok := drainOf(h.Monitor.Samples(up, to), cfg.Rate()*2)
	r.Notes = append(r.Notes,
		fmt.Sprintf("backlog at its peak: %.0f samples (%.1f s of collection)", peak, peak/cfg.Rate()),
		fmt.Sprintf("agent reconnected %s after the fault ended (its backoff); live again after %s", reconnect.Round(100*time.Millisecond), drain.Round(100*time.Millisecond)))
	if ok {
		rate := peak / max(drained, monitorPeriod).Seconds()
		if drained < monitorPeriod {
			r.Notes = append(r.Notes, fmt.Sprintf("backlog drained within one monitor period (%s) of the reconnect: ≥ %.0f samples/s = ≥ %.0f × the collection rate",
				monitorPeriod, rate, rate/cfg.Rate()))
		} else {
			r.Notes = append(r.Notes, fmt.Sprintf("backlog drained in %s once connected: ≈ %.0f samples/s = %.0f × the collection rate (resolution %s)",
				drained.Round(10*time.Millisecond), rate, rate/cfg.Rate(), monitorPeriod))
		}
	}
	r.Print(t)
	path := filepath.Join(chartDir(t), chart)
	if err := WriteChart(path, fmt.Sprintf("%s, %.0f samples/s", name, cfg.Rate()), h.Monitor.Samples(from, to), t0, up); err != nil {
		t.Errorf("chart: %v", err)
	} else {
		t.Logf("chart: %s", path)
	}
	if peak <= 0 {
		t.Errorf("no backlog built up during the outage: the fault did not reach the agent")
	}
	return r, tally
}

// chartDir is $WEFT_E2E_CHARTS (make soak sets docs/img) or the test's
// temp dir.
func chartDir(t *testing.T) string {
	if d := os.Getenv("WEFT_E2E_CHARTS"); d != "" {
		return d
	}
	return t.TempDir()
}

// drainOf finds, in samples taken after a fault, the agent's peak backlog
// and how long it took from the first sample connected to the broker until
// the backlog was under floor.
func drainOf(samples []Sample, floor float64) (peak float64, drained time.Duration, ok bool) {
	var connected time.Time
	for _, s := range samples {
		peak = max(peak, s.AgentBacklog)
		if connected.IsZero() && s.AgentConnected == 1 {
			connected = s.At
		}
		if !connected.IsZero() && s.AgentBacklog >= 0 && s.AgentBacklog < floor {
			return peak, s.At.Sub(connected), true
		}
	}
	return peak, 0, false
}

package e2e

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
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
	var overruns float64
	if m, err := h.AgentMetrics(); err == nil {
		overruns = sum(m, "weft_agent_device_overruns_total")
	}
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
		fmt.Sprintf("caught up %s after the devices stopped; poll overruns (polls longer than the interval): %.0f", catchUp.Round(100*time.Millisecond), overruns),
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
// and started again (Mosquitto saves its persistence on SIGTERM), and the
// gateway slow to come back: it is frozen (SIGSTOP) from the broker's stop
// until heldAfter after the broker's return, so the agent reconnects and
// publishes its backlog while no gateway is connected. With the default
// config the gateway's data subscription is not shared, Mosquitto restores
// it from its persistence, and that backlog waits in the gateway's session:
// nothing may be lost. (With mqtt.shared_group, Mosquitto 2.0.11 drops it:
// 30,000 of 52,000 samples in the run docs/benchmarks.md records.)
func TestBrokerRestart(t *testing.T) {
	skipShort(t)
	cfg := loadConfig(t)
	down := envDuration(t, "WEFT_E2E_OUTAGE", scenarioLength(10*time.Second, 5*time.Minute))
	const heldAfter = 5 * time.Second
	h := Start(t, cfg)
	var stopped, up, resumed time.Time
	var before, during float64 // samples the agent published: at the broker's return, and while the gateway was frozen after it
	gwPid := 0
	cont := make(chan struct{})
	published := func() float64 {
		ms, err := h.AgentMetrics()
		if err != nil {
			t.Errorf("agent metrics: %v", err)
			return 0
		}
		return sum(ms, "weft_agent_mqtt_published_samples_total")
	}
	r, _ := outage(t, h, cfg, fmt.Sprintf("2b. broker process stopped %s under load, gateway back %s after it", down.Round(time.Second), heldAfter), "e2e-broker-restart.png",
		down, func() {
			stopped = time.Now()
			h.Broker.Stop()
			if gwPid = h.Gateway.Pid(); gwPid == 0 || syscall.Kill(gwPid, syscall.SIGSTOP) != nil {
				t.Fatalf("cannot freeze the gateway (pid %d)", gwPid)
			}
		}, func() {
			h.Broker.Start()
			up = time.Now()
			before = published()
			time.AfterFunc(heldAfter, func() {
				during = published() - before
				resumed = time.Now()
				_ = syscall.Kill(gwPid, syscall.SIGCONT)
				close(cont)
			})
		})
	<-cont
	subscribed := lastConnected(t, h.Gateway)
	agentBack := lastConnected(t, h.Agent)
	// The monitor scrapes the agent and the gateway in turn, and a scrape
	// of the frozen gateway waits for its 5 s timeout: the agent figures of
	// the table above have that resolution during the freeze.
	t.Logf("agent connected again %s after the broker's return (from its log); gateway frozen until %s after it, subscribed again %s after the broker stopped; meanwhile the agent published %.0f samples, all of which a shared subscription would have lost",
		agentBack.Sub(up).Round(100*time.Millisecond), resumed.Sub(up).Round(100*time.Millisecond), subscribed.Sub(stopped).Round(100*time.Millisecond), during)
	if during <= 0 {
		t.Errorf("the agent published nothing between the broker's return and the gateway's: the window this scenario is for was not exercised")
	}
	expectClean(t, r)
}

// lastConnected is when the agent or the gateway logged its latest
// connection to the broker (for the gateway: with its subscriptions made).
func lastConnected(t *testing.T, p *Process) time.Time {
	t.Helper()
	ts, err := p.WaitLog(regexp.MustCompile(`time=(\S+) level=INFO msg="(?:connected to the broker|broker connection restored)"`), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		t.Fatalf("%s log time %q: %v", p.Name, ts, err)
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
	peak, drained, ok := drainOf(h.Monitor.Samples(t0, to), up, cfg.Rate()*2)
	r.Notes = append(r.Notes,
		fmt.Sprintf("backlog at its peak: %.0f samples (%.1f s of collection)", peak, peak/cfg.Rate()),
		fmt.Sprintf("agent reconnected %s after the fault ended (its backoff, cut short by its broker probe); live again after %s", reconnect.Round(100*time.Millisecond), drain.Round(100*time.Millisecond)))
	if drain > reconnect {
		e2e := peak / (drain - reconnect).Seconds()
		r.Notes = append(r.Notes, fmt.Sprintf("end to end (reconnect → InfluxDB live again): ≈ %.0f samples/s = %.1f × the collection rate; stored at most %.0f samples/s (1 s mean)",
			e2e, e2e/cfg.Rate(), peakStored(h.Monitor.Samples(up, to))))
	}
	if ok {
		rate := peak / max(drained, monitorPeriod).Seconds()
		if drained < monitorPeriod {
			r.Notes = append(r.Notes, fmt.Sprintf("agent spool → broker: backlog drained within one monitor period (%s) of the reconnect: ≥ %.0f samples/s = ≥ %.0f × the collection rate",
				monitorPeriod, rate, rate/cfg.Rate()))
		} else {
			r.Notes = append(r.Notes, fmt.Sprintf("agent spool → broker: backlog drained in %s once connected: ≈ %.0f samples/s = %.0f × the collection rate (resolution %s)",
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

// drainOf finds, in samples taken from the start of a fault, the agent's
// peak backlog and how long it took from the first sample connected to the
// broker after up until the backlog was under floor.
func drainOf(samples []Sample, up time.Time, floor float64) (peak float64, drained time.Duration, ok bool) {
	var connected time.Time
	for _, s := range samples {
		peak = max(peak, s.AgentBacklog)
		if connected.IsZero() && s.AgentConnected == 1 && !s.At.Before(up) {
			connected = s.At
		}
		if !connected.IsZero() && s.AgentBacklog >= 0 && s.AgentBacklog < floor {
			return peak, s.At.Sub(connected), true
		}
	}
	return peak, 0, false
}

// TestAgentKill is scenario 3: SIGKILL of the agent at random moments
// under load (short form 3 times, soak 10). Nothing the agent had
// appended to its spool may be lost: every lost reading must have been
// served in the last moments before a kill (read, not yet in a flushed
// batch), and the gateway must have every sequence number the spool gave
// out.
func TestAgentKill(t *testing.T) {
	skipShort(t)
	cfg := loadConfig(t)
	kills := envInt(t, "WEFT_E2E_KILLS", map[bool]int{false: 3, true: 10}[soak()])
	h := Start(t, cfg)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	var killedAt []time.Time
	var restart time.Duration
	for i := 0; i < kills; i++ {
		time.Sleep(2*time.Second + time.Duration(rng.Int64N(int64(4*time.Second))))
		h.Agent.Kill()
		killedAt = append(killedAt, time.Now())
		time.Sleep(time.Duration(rng.Int64N(int64(time.Second))))
		t0 := time.Now()
		h.StartAgent()
		restart = max(restart, time.Since(t0))
	}
	up := time.Now()
	var recovered time.Duration
	h.WaitFor("the agent live again", 2*time.Minute, func() bool {
		var ok bool
		recovered, ok = h.Monitor.Recovered(up, liveLag(cfg), cfg.Rate()*2)
		return ok
	})
	time.Sleep(3 * time.Second)
	h.Quiesce(60 * time.Second)
	tally := h.Count()
	// What a kill may take: samples read after the last batch was
	// flushed to the spool: one flush interval, one poll, and a second
	// for the fsync'd append on a busy box.
	window := cfg.Flush + cfg.Interval + time.Second
	unexplained, inWindow := 0, 0
	for _, at := range tally.LostServedTimes() {
		ok := false
		for _, k := range killedAt {
			if !at.After(k) && k.Sub(at) <= window {
				ok = true
			}
		}
		if ok {
			inWindow++
		} else {
			unexplained++
		}
	}
	r := Report{Scenario: fmt.Sprintf("3. SIGKILL of the agent %d times under load", kills), Tally: tally, Recover: recovered.Round(100 * time.Millisecond).String()}
	r.Notes = append(r.Notes,
		fmt.Sprintf("%d counter readings lost, all read within %s before a kill (not yet in the spool): %d; outside: %d", tally.lostPolls(), window, inWindow, unexplained),
		fmt.Sprintf("a restart took up to %s until the agent served HTTP; recover is from the last restart", restart.Round(10*time.Millisecond)))
	view, err := h.GatewayAgent()
	if err != nil {
		t.Fatal(err)
	}
	r.Notes = append(r.Notes, fmt.Sprintf("gateway sequence view: last %d, missing %d, duplicates %d (redelivered batches, stored once), late %d",
		view.Seq.Last, view.Seq.Missing, view.Seq.Duplicates, view.Seq.Late))
	r.Print(t)
	if unexplained > 0 || r.Duplicated != 0 || r.OutOfOrder != 0 || r.Unexpected != 0 {
		t.Errorf("%s: %d readings lost that the agent had had time to spool, duplicated %d, out of order %d, never served %d; want all 0", r.Scenario, unexplained, r.Duplicated, r.OutOfOrder, r.Unexpected)
	}
	if view.Seq.Missing != 0 {
		t.Errorf("the gateway misses %d batch sequence numbers: batches the spool gave out never arrived", view.Seq.Missing)
	}
}

// lostRuns counts the runs of consecutive lost readings in served order.
func (d DeviceTally) lostRuns() int {
	lost := map[uint64]bool{}
	for _, c := range d.lost {
		lost[c] = true
	}
	runs, in := 0, false
	for _, p := range d.servedAt {
		if lost[p.Counter] && !in {
			runs++
		}
		in = lost[p.Counter]
	}
	return runs
}

func (t Tally) lostPolls() int {
	n := 0
	for _, d := range t.Devices {
		n += d.LostPolls
	}
	return n
}

// TestGatewayKillAndInfluxDown is scenario 4: SIGKILL of the gateway
// under load, then InfluxDB down (short 20 s, soak 2 min): nothing lost,
// nothing stored twice.
func TestGatewayKillAndInfluxDown(t *testing.T) {
	skipShort(t)
	cfg := loadConfig(t)
	down := envDuration(t, "WEFT_E2E_INFLUX_OUTAGE", scenarioLength(20*time.Second, 2*time.Minute))
	h := Start(t, cfg)
	from := time.Now()
	for i := 0; i < 2; i++ {
		time.Sleep(3 * time.Second)
		h.Gateway.Kill()
		time.Sleep(time.Second)
		h.StartGateway()
	}
	time.Sleep(3 * time.Second)
	t0 := time.Now()
	h.Influx.Stop()
	time.Sleep(down)
	h.Influx.Start()
	up := time.Now()
	var recovered time.Duration
	h.WaitFor("InfluxDB caught up", 5*time.Minute+4*down, func() bool {
		var ok bool
		recovered, ok = h.Monitor.Recovered(up, liveLag(cfg), cfg.Rate()*2)
		return ok
	})
	time.Sleep(3 * time.Second)
	to := time.Now()
	h.Quiesce(60 * time.Second)
	r := Report{Scenario: fmt.Sprintf("4. SIGKILL of the gateway twice, then InfluxDB down %s", down.Round(time.Second)), Tally: h.Count(), Recover: recovered.Round(100 * time.Millisecond).String()}
	view, err := h.GatewayAgent()
	if err != nil {
		t.Fatal(err)
	}
	var pendingPeak float64
	for _, s := range h.Monitor.Samples(t0, up) {
		pendingPeak = max(pendingPeak, s.GatewayPending)
	}
	r.Notes = append(r.Notes,
		fmt.Sprintf("gateway: %.0f messages pending at most while InfluxDB was down; sequence duplicates %d (redelivered after the kills, stored once), missing %d", pendingPeak, view.Seq.Duplicates, view.Seq.Missing),
		fmt.Sprintf("live again %s after InfluxDB came back", recovered.Round(100*time.Millisecond)))
	r.Print(t)
	path := filepath.Join(chartDir(t), "e2e-influx-outage.png")
	if err := WriteChart(path, fmt.Sprintf("GATEWAY KILLED TWICE, INFLUXDB DOWN %s, %.0f SAMPLES/S", down.Round(time.Second), cfg.Rate()), h.Monitor.Samples(from, to), t0, up); err != nil {
		t.Errorf("chart: %v", err)
	}
	expectClean(t, r)
}

// TestBlackhole is scenario 5: the link between agent and broker silently
// stops carrying anything (no RST). The agent must notice within its
// keepalive, collect into the spool meanwhile, and recover.
func TestBlackhole(t *testing.T) {
	skipShort(t)
	cfg := loadConfig(t)
	cfg.KeepAlive = 2 * time.Second
	hole := envDuration(t, "WEFT_E2E_BLACKHOLE", scenarioLength(15*time.Second, time.Minute))
	h := Start(t, cfg)
	time.Sleep(3 * time.Second)
	t0 := time.Now()
	h.BrokerLink.Blackhole()
	var detected time.Duration
	h.WaitFor("the agent to notice the blackhole", hole, func() bool {
		for _, s := range h.Monitor.Samples(t0, time.Now()) {
			if s.AgentConnected == 0 {
				detected = s.At.Sub(t0)
				return true
			}
		}
		return false
	})
	time.Sleep(max(0, hole-time.Since(t0)))
	h.BrokerLink.Pass()
	up := time.Now()
	var recovered time.Duration
	h.WaitFor("the agent live again", 2*time.Minute, func() bool {
		var ok bool
		recovered, ok = h.Monitor.Recovered(up, liveLag(cfg), cfg.Rate()*2)
		return ok
	})
	reconnect, _ := h.Monitor.Connected(up)
	time.Sleep(3 * time.Second)
	h.Quiesce(60 * time.Second)
	r := Report{Scenario: fmt.Sprintf("5. blackhole agent↔broker %s (keepalive %s)", hole.Round(time.Second), cfg.KeepAlive), Tally: h.Count(), Recover: recovered.Round(100 * time.Millisecond).String()}
	r.Notes = append(r.Notes,
		fmt.Sprintf("detection: the agent reported the link down %s after the blackhole began (resolution %s); asked: within the keepalive, %s",
			detected.Round(10*time.Millisecond), monitorPeriod, cfg.KeepAlive),
		fmt.Sprintf("the agent reconnected %s after the link passed again; live again after %s", reconnect.Round(100*time.Millisecond), recovered.Round(100*time.Millisecond)))
	r.Print(t)
	expectClean(t, r)
	// The agent runs paho's ping so that a silent link is declared dead
	// within the keepalive (mqttconn.SetKeepAlive); the monitor samples
	// every monitorPeriod. A second of slack for a loaded CI box still
	// fails the old ~2 × keepalive (4.4-5 s at 2 s).
	if limit := cfg.KeepAlive + monitorPeriod + time.Second; detected > limit {
		t.Errorf("the agent noticed the blackhole after %s, want within the keepalive %s (+ the monitor's resolution and 1 s of scheduling slack)", detected, cfg.KeepAlive)
	}
}

// TestSpoolOverflow is scenario 6: a small spool.max_bytes with
// drop_oldest while the broker is unreachable. Exactly what the agent
// says it dropped is missing, and it is the oldest data.
//
// It was flaky both ways until two fixes of issue 10: one poll more
// missing than dropped (two polls stamped the same millisecond, the
// earlier overwritten in InfluxDB; collect's waitPastMs), and a batch
// more dropped than missing (evicted while in flight, then acknowledged
// and stored; the spool's in-flight accounting). What can still differ:
// a batch published just as the link was cut, taken by the broker while
// its PUBACK was lost, and evicted during the outage is counted as
// dropped and stored (MQTT cannot tell the agent); rare, since a batch
// is in flight for about a millisecond of every flush interval.
func TestSpoolOverflow(t *testing.T) {
	skipShort(t)
	cfg := loadConfig(t)
	// 1MiB is the least the config allows: about 10 s of the short
	// form's load, so a 30 s outage overflows it.
	cfg.SpoolMaxBytes, cfg.Overflow = "1MiB", "drop_oldest"
	down := scenarioLength(30*time.Second, 2*time.Minute)
	h := Start(t, cfg)
	time.Sleep(3 * time.Second)
	t0 := time.Now()
	h.BrokerLink.Cut()
	time.Sleep(down)
	h.BrokerLink.Pass()
	up := time.Now()
	h.WaitFor("the agent live again", 2*time.Minute, func() bool {
		_, ok := h.Monitor.Recovered(up, liveLag(cfg), cfg.Rate()*2)
		return ok
	})
	time.Sleep(3 * time.Second)
	h.Quiesce(60 * time.Second)
	m, err := h.AgentMetrics()
	if err != nil {
		t.Fatal(err)
	}
	dropped := int64(sum(m, "weft_agent_spool_dropped_samples_total"))
	oldest := int64(sum(m, "weft_agent_spool_dropped_samples_total", `reason="oldest"`))
	tally := h.Count()
	r := Report{Scenario: fmt.Sprintf("6. spool overflow: max_bytes 1MiB, drop_oldest, broker unreachable %s", down.Round(time.Second)), Tally: tally, Recover: "-"}
	lost := tally.LostServedTimes()
	var first, last time.Time
	if len(lost) > 0 {
		first, last = lost[0], lost[len(lost)-1]
	}
	r.Notes = append(r.Notes, fmt.Sprintf("agent dropped %d samples (%d as oldest); missing in InfluxDB: %d, served between +%s and +%s of the %s outage",
		dropped, oldest, tally.Lost, first.Sub(t0).Round(100*time.Millisecond), last.Sub(t0).Round(100*time.Millisecond), down.Round(time.Second)))
	r.Print(t)
	if dropped == 0 {
		t.Fatalf("the agent dropped nothing: %s was not small enough to overflow", cfg.SpoolMaxBytes)
	}
	if tally.Lost != dropped || oldest != dropped {
		t.Errorf("missing %d samples, the agent dropped %d (%d oldest): want missing = dropped = dropped as oldest", tally.Lost, dropped, oldest)
	}
	if r.Duplicated != 0 || r.OutOfOrder != 0 || r.Unexpected != 0 {
		t.Errorf("duplicated %d, out of order %d, never served %d; want 0", r.Duplicated, r.OutOfOrder, r.Unexpected)
	}
	// drop_oldest deletes whole batches from the head of the spool, so
	// in each device's served order what is missing is one run: nothing
	// stored between two missing readings.
	for _, d := range tally.Devices {
		if runs := d.lostRuns(); runs > 1 {
			t.Errorf("%s: the missing readings form %d runs, want 1 (the oldest of the backlog)", d.Device, runs)
		}
	}
}

// TestFaultyDevices is scenario 7: devices that answer garbage, too
// slowly, or not at all, next to healthy ones: the healthy ones keep
// their rate and lose nothing.
func TestFaultyDevices(t *testing.T) {
	skipShort(t)
	cfg := loadConfig(t)
	cfg.Faulty = []Faulty{
		{Name: "bad-garbage", Flags: []string{"--garbage-rate", "1"}},
		{Name: "bad-slow", Flags: []string{"--latency", "3s"}},
		{Name: "bad-silent", Flags: []string{"--drop-rate", "1"}},
		{Name: "bad-flaky", Flags: []string{"--disconnect-rate", "0.3"}},
	}
	length := scenarioLength(30*time.Second, 5*time.Minute)
	h := Start(t, cfg)
	before := h.Served.Count()
	t0 := time.Now()
	time.Sleep(length)
	after := h.Served.Count()
	elapsed := time.Since(t0)
	m, err := h.AgentMetrics()
	if err != nil {
		t.Fatal(err)
	}
	h.Quiesce(60 * time.Second)
	r := Report{Scenario: fmt.Sprintf("7. %d healthy devices next to 4 faulty ones (garbage, 3 s late, silent, 30%% disconnects), %s", cfg.Devices, length.Round(time.Second)), Tally: h.Count(), Recover: "-"}
	want := elapsed.Seconds() / cfg.Interval.Seconds()
	slowest, slowestDev := math.Inf(1), ""
	for u := 1; u <= cfg.Devices; u++ {
		got := float64(after[byte(u)] - before[byte(u)])
		if got < slowest {
			slowest, slowestDev = got, deviceName(byte(u))
		}
	}
	overruns := sum(m, "weft_agent_device_overruns_total")
	for _, f := range cfg.Faulty {
		overruns -= sum(m, "weft_agent_device_overruns_total", `device="`+f.Name+`"`)
		r.Notes = append(r.Notes, fmt.Sprintf("%s: state %s, %0.f polls, %0.f errors", f.Name, deviceState(m, f.Name),
			sum(m, "weft_agent_device_reads_total", `device="`+f.Name+`"`), sum(m, "weft_agent_device_errors_total", `device="`+f.Name+`"`)))
	}
	r.Notes = append(r.Notes, fmt.Sprintf("slowest healthy device %s: %.0f polls in %s, %.1f%% of the %.0f its interval allows; healthy devices' overruns: %.0f",
		slowestDev, slowest, elapsed.Round(time.Second), 100*slowest/want, want, overruns))
	r.Print(t)
	expectClean(t, r)
	// A faulty device that held up the others would cost them whole
	// timeouts (1 s against a 500 ms interval) per poll: half their
	// polls or more. A busy 2-core box alone (make test runs two
	// packages at once) costs up to about 10 % (overruns are reported,
	// not judged), so the bar is 80 %.
	if slowest < 0.80*want-1 {
		t.Errorf("healthy device %s polled %.0f times in %s, want at least 80%% of %.0f", slowestDev, slowest, elapsed, want)
	}
	for _, f := range cfg.Faulty[:3] {
		if st := deviceState(m, f.Name); st == "ok" {
			t.Errorf("%s reported ok", f.Name)
		}
	}
}

// deviceState is the state weft_agent_device_state has at 1.
func deviceState(m map[string]float64, dev string) string {
	for _, st := range []string{"ok", "degraded", "down"} {
		if sum(m, "weft_agent_device_state", `device="`+dev+`"`, `state="`+st+`"`) == 1 {
			return st
		}
	}
	return "?"
}

// TestMemory is scenario 8's long form: RSS of the agent and the gateway
// over 30 minutes of steady load (WEFT_SOAK=1 or WEFT_E2E_MEMORY=duration).
// The short form is the RSS line of TestSteadyLoad. It fails if the last
// third's peak exceeds the middle third's by more than 25 % + 8 MiB: a
// leak, not GC noise.
func TestMemory(t *testing.T) {
	skipShort(t)
	length := 30 * time.Minute
	if os.Getenv("WEFT_E2E_MEMORY") != "" {
		length = envDuration(t, "WEFT_E2E_MEMORY", length)
	} else if !soak() {
		t.Skip("the 30-minute memory run is a soak (make soak, or WEFT_E2E_MEMORY=30m); TestSteadyLoad reports RSS in the short form")
	}
	cfg := loadConfig(t)
	h := Start(t, cfg)
	from := time.Now()
	time.Sleep(length)
	to := time.Now()
	third := length / 3
	agent, gw := h.Monitor.RSS(from, to)
	agentMid, gwMid := h.Monitor.RSS(from.Add(third), from.Add(2*third))
	agentLast, gwLast := h.Monitor.RSS(from.Add(2*third), to)
	h.Quiesce(2 * time.Minute)
	r := Report{Scenario: fmt.Sprintf("8. memory over %s of steady load", length.Round(time.Second)), Tally: h.Count(), Recover: "-"}
	r.Notes = append(r.Notes,
		fmt.Sprintf("agent RSS: %s (middle third peak %.1f MiB, last third peak %.1f MiB)", agent, mib(agentMid.Peak), mib(agentLast.Peak)),
		fmt.Sprintf("gateway RSS: %s (middle third peak %.1f MiB, last third peak %.1f MiB)", gw, mib(gwMid.Peak), mib(gwLast.Peak)))
	r.Print(t)
	expectClean(t, r)
	for _, x := range []struct {
		name      string
		mid, last Memory
	}{{"agent", agentMid, agentLast}, {"gateway", gwMid, gwLast}} {
		if float64(x.last.Peak) > 1.25*float64(x.mid.Peak)+8<<20 {
			t.Errorf("%s RSS grew: middle third peak %.1f MiB, last third %.1f MiB", x.name, mib(x.mid.Peak), mib(x.last.Peak))
		}
	}
}

// peakStored is the highest one-second rate of points InfluxDB accepted,
// from the gateway's weft_gateway_points_written_total.
func peakStored(samples []Sample) float64 {
	var best float64
	for i, s := range samples {
		for j := i - 1; j >= 0; j-- {
			p := samples[j]
			if s.At.Sub(p.At) >= time.Second {
				if s.GatewayWritten >= p.GatewayWritten && p.GatewayWritten >= 0 {
					best = max(best, (s.GatewayWritten-p.GatewayWritten)/s.At.Sub(p.At).Seconds())
				}
				break
			}
		}
	}
	return best
}

// TestPollAtSlotEdge is scenario 9, issue 10's lost poll made to happen:
// next to the steady load, eight devices each reach the simulator through
// a tap of their own that holds every other answer until just before the
// device's next poll is due. The poll after it starts within a millisecond
// or so. Samples are stamped in milliseconds and InfluxDB keeps one point
// per series and timestamp, so two polls stamped alike would store as one:
// the earlier poll silently overwritten, nothing duplicated, nothing out
// of order — exactly the single lost poll the soak and scenario 6 saw.
func TestPollAtSlotEdge(t *testing.T) {
	skipShort(t)
	cfg := loadConfig(t)
	const edges = 8
	cfg.Devices += edges
	cfg.EdgeDevices = edges
	length := envDuration(t, "WEFT_E2E_DURATION", scenarioLength(20*time.Second, 5*time.Minute))
	h := Start(t, cfg)
	time.Sleep(length)
	h.Quiesce(60 * time.Second)
	r := Report{Scenario: fmt.Sprintf("9. %d devices, each on a link of its own, answering just before their next poll is due, %s", edges, length.Round(time.Second)), Tally: h.Count(), Recover: "-"}
	held := 0
	for _, e := range h.edges {
		held += e.Held()
	}
	r.Notes = append(r.Notes, fmt.Sprintf("answers held until 0.2–1.0 ms before the device's next poll: %d; lost polls overwritten by a poll stamped the same millisecond: %d", held, r.Overwritten))
	r.Print(t)
	expectClean(t, r)
	if held < edges*int(length/cfg.Interval)/4 {
		t.Errorf("only %d answers held: the scenario did not do what it is for", held)
	}
}

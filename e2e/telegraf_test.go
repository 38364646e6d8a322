package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/weftiot/weft/internal/testservers"
)

// The comparison with Telegraf (issue 10): the same point map on the same
// simulator into the same Mosquitto, each collector alone on the box for
// the same time, behind the same Modbus tap. It runs under make bench
// (BenchmarkTelegrafComparison) and make soak (TestTelegrafComparison),
// never in make test: it needs a Telegraf binary, built with
//
//	GOBIN=~/.cache/weft/telegraf-1.37.2 go install -tags "custom,inputs.modbus,outputs.mqtt" github.com/influxdata/telegraf/cmd/telegraf@v1.37.2
//
// ($WEFT_TELEGRAF names another one).
//
// It runs in one of two topologies (WEFT_E2E_TOPOLOGY for the test; one
// Benchmark each):
//
//   - shared (the default): every device is a unit id behind ONE TCP
//     address, as behind a TCP-to-RS-485 gateway. Weft keeps one
//     connection and one queue per target and so sends a scan's requests
//     one after another; Telegraf opens a connection per [[inputs.modbus]].
//   - per-device: every device has a TCP address of its own (a tap per
//     device in front of the same weft-sim), as in a plant where every PLC
//     has its own IP; both collectors then hold one connection per device.

// Topologies of the Telegraf comparison.
const (
	TopologyShared    = "shared"
	TopologyPerDevice = "per-device"
)

func TestTelegrafComparison(t *testing.T) {
	skipShort(t)
	if !soak() && os.Getenv("WEFT_E2E_TELEGRAF") != "1" {
		t.Skip("the Telegraf comparison runs under make soak (WEFT_SOAK=1), make bench, or WEFT_E2E_TELEGRAF=1")
	}
	topology := os.Getenv("WEFT_E2E_TOPOLOGY")
	switch topology {
	case "":
		topology = TopologyShared
	case TopologyShared, TopologyPerDevice:
	default:
		t.Fatalf("WEFT_E2E_TOPOLOGY=%q: want %s or %s", topology, TopologyShared, TopologyPerDevice)
	}
	name := os.Getenv("WEFT_E2E_WORKLOAD")
	if name == "" {
		name = "sparse"
	}
	w, ok := compareWorkloads[name]
	if !ok {
		t.Fatalf("WEFT_E2E_WORKLOAD=%q: want sparse, dense-10k or dense-50k", name)
	}
	compareTelegraf(t, w, topology, envDuration(t, "WEFT_E2E_DURATION", 60*time.Second))
}

func BenchmarkTelegrafComparison(b *testing.B) {
	benchTelegraf(b, compareWorkloads["sparse"], TopologyShared)
}

func BenchmarkTelegrafComparisonPerDevice(b *testing.B) {
	benchTelegraf(b, compareWorkloads["sparse"], TopologyPerDevice)
}

// The workloads issue 6 states its CPU goal on: 10,000 points (10 devices
// × 1,000 registers every second) and 50,000 points/s.
func BenchmarkTelegrafComparisonDense10k(b *testing.B) {
	benchTelegraf(b, compareWorkloads["dense-10k"], TopologyShared)
}

func BenchmarkTelegrafComparisonDense50k(b *testing.B) {
	benchTelegraf(b, compareWorkloads["dense-50k"], TopologyShared)
}

func benchTelegraf(b *testing.B, w compareWorkload, topology string) {
	// One measured run whatever b.N is: each run starts processes and
	// lasts a fixed time; the figures are reported as custom metrics.
	if b.N > 1 {
		b.Skip("one run is the measurement")
	}
	rows := compareTelegraf(b, w, topology, 30*time.Second)
	for _, r := range rows {
		key := strings.NewReplacer(" ", "_", "=", "").Replace(r.Name)
		b.ReportMetric(r.RequestsPerScan, key+"-requests/scan")
		b.ReportMetric(float64(r.Connections), key+"-connections")
		b.ReportMetric(r.CPUPerMillion, key+"-CPU-s/Msample")
		b.ReportMetric(float64(r.PeakRSS)/(1<<20), key+"-peak-RSS-MiB")
	}
}

// telegrafBinary is $WEFT_TELEGRAF or the cached build, or "".
func telegrafBinary() string {
	if p := os.Getenv("WEFT_TELEGRAF"); p != "" {
		return p
	}
	home, _ := os.UserHomeDir()
	p := filepath.Join(home, ".cache", "weft", "telegraf-1.37.2", "telegraf")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// compareWorkload is what both collectors read: devices units of one
// simulator, each with the same point map, polled every interval.
type compareWorkload struct {
	Name     string
	Devices  int
	Interval time.Duration
	Points   []comparePoint
	// Variants are the device modbus: settings Weft also runs with besides
	// its defaults, each a row of its own ("max_gap: 30": a map with holes
	// is where the gap matters; "max_inflight: 16": pipelining, for servers
	// that take it).
	Variants []string
	// About describes the map in the printed table.
	About string
}

// comparePoint is one point of a comparison map.
type comparePoint struct {
	Name string
	Addr int
	Type string // uint16 or uint64
}

// registers is how many holding registers the simulator must serve.
func (w compareWorkload) registers() int {
	n := 0
	for _, p := range w.Points {
		width := 1
		if p.Type == "uint64" {
			width = 4
		}
		n = max(n, p.Addr+width)
	}
	return n
}

var compareWorkloads = map[string]compareWorkload{
	// A sparse map at a low rate, where waking up costs more than the
	// samples: 2,000 samples/s.
	"sparse": {Name: "sparse", Devices: 20, Interval: 500 * time.Millisecond, Points: sparseMap(),
		Variants: []string{"max_gap: 30", "max_inflight: 16"},
		About:    "350-register map with holes"},
	// Issue 6's workloads: 10,000 and 50,000 points/s, 8 requests per scan.
	"dense-10k": {Name: "dense-10k", Devices: 10, Interval: time.Second, Points: denseMap(1000),
		Variants: []string{"max_inflight: 16"},
		About:    "1,000 adjacent registers"},
	"dense-50k": {Name: "dense-50k", Devices: 50, Interval: time.Second, Points: denseMap(1000),
		Variants: []string{"max_inflight: 16"},
		About:    "1,000 adjacent registers"},
}

// sparseMap is the uint64 counter at 0 and 49 uint16 registers after it
// with the gaps PLC maps have (adjacent runs, then holes of 3, 11 and 29
// registers), 350 registers in all.
func sparseMap() []comparePoint {
	gaps := []int{1, 1, 4, 1, 12, 1, 30}
	points := []comparePoint{{Name: "ticks", Addr: 0, Type: "uint64"}}
	a := 3
	for i := 0; len(points) < 50; i++ {
		a += gaps[i%len(gaps)]
		points = append(points, comparePoint{Name: fmt.Sprintf("r%03d", a), Addr: a, Type: "uint16"})
	}
	return points
}

// denseMap is n adjacent uint16 registers from 0.
func denseMap(n int) []comparePoint {
	points := make([]comparePoint, n)
	for a := range points {
		points[a] = comparePoint{Name: fmt.Sprintf("r%03d", a), Addr: a, Type: "uint16"}
	}
	return points
}

// CompareRow is one collector's figures.
type CompareRow struct {
	Name            string
	Scans           int
	Requests        int
	RequestsPerScan float64
	Connections     int   // Modbus connections the collector opened to the taps
	Delivered       int64 // samples (fields) that reached the broker
	CPU             time.Duration
	CPUPerMillion   float64 // CPU seconds per million delivered samples
	PeakRSS, EndRSS int64
}

func compareTelegraf(tb testing.TB, w compareWorkload, topology string, length time.Duration) []CompareRow {
	tb.Helper()
	tg := telegrafBinary()
	if tg == "" {
		tb.Skip("no Telegraf binary: build it as the comment on TestTelegrafComparison says, or set WEFT_TELEGRAF")
	}
	bin := Binaries(tb)
	devices, interval := w.Devices, w.Interval
	dir := tb.TempDir()
	broker := testservers.Mosquitto(tb, testservers.WithConfig("max_queued_messages 1000000"))
	sim := &Process{Name: "weft-sim", Bin: filepath.Join(bin, "weft-sim"), LogPath: filepath.Join(dir, "sim.log"),
		Args: []string{"--modbus", "127.0.0.1:0", "--profile", "counter", "--devices", strconv.Itoa(devices),
			"--registers", strconv.Itoa(w.registers()), "--tick", "10ms"}}
	if err := sim.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sim.Stop(5 * time.Second) })
	simAddr, err := sim.WaitLog(regexp.MustCompile(`serving Modbus.* addr=(\S+)`), 30*time.Second)
	if err != nil {
		tb.Fatal(err)
	}

	// Count every field Telegraf publishes (line protocol, one field
	// set per line).
	var tgFields atomic.Int64
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL).SetClientID("e2e-count"))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("counting subscriber: %v", tok.Error())
	}
	tb.Cleanup(func() { sub.Disconnect(100) })
	if tok := sub.Subscribe("telegraf/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		tgFields.Add(int64(countLineProtocolFields(m.Payload())))
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("subscribe: %v", tok.Error())
	}

	var rows []CompareRow
	// run measures one collector: prepare writes its config for the
	// devices' addresses (targets[u-1] is unit u's: one tap for all in the
	// shared topology, a tap each per device) and returns the process and
	// how to read what it delivered.
	run := func(name string, prepare func(targets []string) (*Process, func() int64)) {
		served := NewServed()
		taps := 1
		if topology == TopologyPerDevice {
			taps = devices
		}
		var proxies []*Proxy
		for range taps {
			tap, err := NewProxy(simAddr, served.Tap())
			if err != nil {
				tb.Fatal(err)
			}
			defer tap.Close()
			proxies = append(proxies, tap)
		}
		targets := make([]string, devices)
		for i := range targets {
			targets[i] = proxies[i%len(proxies)].Addr()
		}
		p, delivered := prepare(targets)
		if err := p.Start(); err != nil {
			tb.Fatal(err)
		}
		defer p.Stop(10 * time.Second)
		// Warm up, then measure.
		time.Sleep(5 * time.Second)
		if !p.Running() {
			tb.Fatalf("%s exited; log %s:\n%s", name, p.LogPath, tail(p.Log(), 3000))
		}
		cpu0, n0, scans0, req0 := p.CPU(), delivered(), sumMap(served.Count()), sumMap(served.Requests())
		var peak int64
		end := time.Now().Add(length)
		for time.Now().Before(end) {
			peak = max(peak, p.RSS())
			time.Sleep(500 * time.Millisecond)
		}
		r := CompareRow{Name: name, CPU: p.CPU() - cpu0, Delivered: delivered() - n0,
			Scans: sumMap(served.Count()) - scans0, Requests: sumMap(served.Requests()) - req0, PeakRSS: peak, EndRSS: p.RSS()}
		for _, tap := range proxies {
			r.Connections += tap.Accepted(Pass)
		}
		if r.Scans > 0 {
			r.RequestsPerScan = float64(r.Requests) / float64(r.Scans)
		}
		if r.Delivered > 0 {
			r.CPUPerMillion = r.CPU.Seconds() / (float64(r.Delivered) / 1e6)
		} else {
			tb.Errorf("%s delivered nothing to the broker; log %s:\n%s", name, p.LogPath, tail(p.Log(), 3000))
		}
		rows = append(rows, r)
	}

	for _, variant := range append([]string{""}, w.Variants...) {
		name := "weft default"
		if variant != "" {
			name = "weft " + strings.ReplaceAll(variant, ": ", "=")
		}
		run(name, func(targets []string) (*Process, func() int64) {
			d := filepath.Join(dir, strings.NewReplacer(" ", "-", "=", "").Replace(name))
			if err := os.MkdirAll(d, 0o755); err != nil {
				tb.Fatal(err)
			}
			cfgPath := filepath.Join(d, "agent.yaml")
			if err := os.WriteFile(cfgPath, []byte(weftCompareYAML(d, broker.URL, targets, interval, w.Points, variant)), 0o600); err != nil {
				tb.Fatal(err)
			}
			p := &Process{Name: "weft-agent", Bin: filepath.Join(bin, "weft-agent"), LogPath: filepath.Join(d, "agent.log"), Args: []string{"run", "--config", cfgPath}}
			h := &Harness{client: httpClient}
			return p, func() int64 {
				addr, err := p.WaitLog(agentHTTP, 10*time.Second)
				if err != nil {
					tb.Fatal(err)
				}
				m, err := h.metrics("http://"+addr+"/metrics", "")
				if err != nil {
					tb.Fatalf("agent metrics: %v", err)
				}
				return int64(sum(m, "weft_agent_mqtt_published_samples_total"))
			}
		})
	}
	for _, opt := range []string{"none", "max_insert"} {
		run("telegraf "+opt, func(targets []string) (*Process, func() int64) {
			d := filepath.Join(dir, "telegraf-"+opt)
			if err := os.MkdirAll(d, 0o755); err != nil {
				tb.Fatal(err)
			}
			cfgPath := filepath.Join(d, "telegraf.conf")
			if err := os.WriteFile(cfgPath, []byte(telegrafConf(broker.Addr, targets, interval, w.Points, opt)), 0o600); err != nil {
				tb.Fatal(err)
			}
			return &Process{Name: "telegraf", Bin: tg, LogPath: filepath.Join(d, "telegraf.log"), Args: []string{"--config", cfgPath}}, tgFields.Load
		})
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\nworkload %s: %d devices × %d points (%s), topology %s, polled every %s, %s measured each, one collector at a time\n", w.Name, devices, len(w.Points), w.About, topology, interval, length)
	fmt.Fprintf(&b, "%-20s %6s %10s %14s %12s %10s %16s %10s %9s\n", "collector", "conns", "scans", "requests/scan", "delivered", "CPU s", "CPU s/M samples", "peak RSS", "end RSS")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-20s %6d %10d %14.2f %12d %10.2f %16.2f %9.1fM %8.1fM\n", r.Name, r.Connections, r.Scans, r.RequestsPerScan, r.Delivered, r.CPU.Seconds(), r.CPUPerMillion, mib(r.PeakRSS), mib(r.EndRSS))
	}
	tb.Log(b.String())
	return rows
}

func sumMap(m map[byte]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// countLineProtocolFields counts the fields of every line of an InfluxDB
// line protocol payload whose keys and values hold no spaces or commas.
func countLineProtocolFields(p []byte) int {
	n := 0
	for _, line := range strings.Split(string(p), "\n") {
		parts := strings.Split(line, " ")
		if len(parts) < 2 {
			continue
		}
		n += strings.Count(parts[1], ",") + 1
	}
	return n
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// weftCompareYAML configures one device per target: unit u at targets[u-1],
// with extra (e.g. "max_gap: 30") in each device's modbus: section.
func weftCompareYAML(dir, broker string, targets []string, interval time.Duration, points []comparePoint, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "agent: {id: cmp-agent, site: e2e, data_dir: %q}\nmqtt: {broker: %q}\nbatch: {max_samples: 1000, flush_interval: 250ms}\nmetrics: {listen: \"127.0.0.1:0\"}\n", filepath.Join(dir, "data"), broker)
	fmt.Fprintf(&b, "profiles:\n  cmp:\n    protocol: modbus\n    points:\n")
	for _, p := range points {
		fmt.Fprintf(&b, "      - {name: %s, table: holding, address: %d, type: %s}\n", p.Name, p.Addr, p.Type)
	}
	if extra != "" {
		extra = ", " + extra
	}
	fmt.Fprintf(&b, "devices:\n")
	for i, target := range targets {
		u := i + 1
		fmt.Fprintf(&b, "  - {id: %s, profile: cmp, interval: %s, modbus: {target: \"tcp://%s\", unit: %d, timeout: 1s%s}}\n", deviceName(byte(u)), interval, target, u, extra)
	}
	return b.String()
}

// telegrafConf configures one [[inputs.modbus]] per target: unit u at
// targets[u-1].
func telegrafConf(broker string, targets []string, interval time.Duration, points []comparePoint, optimization string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `[agent]
  interval = %q
  round_interval = true
  flush_interval = "250ms"
  metric_batch_size = 1000
  metric_buffer_limit = 100000
  collection_jitter = "0s"
  omit_hostname = true

[[outputs.mqtt]]
  servers = ["%s"]
  topic = "telegraf/{{ .Name }}"
  qos = 1
  keep_alive = 30
  client_id = "telegraf-e2e"
  layout = "batch"
  data_format = "influx"
`, interval.String(), broker)
	// Telegraf 1.37 documents a default fill of 50 but refuses
	// max_insert without the key; 50 is written out.
	fill := ""
	if optimization == "max_insert" {
		fill = "\n    optimization_max_register_fill = 50"
	}
	for i, target := range targets {
		u := i + 1
		fmt.Fprintf(&b, `
[[inputs.modbus]]
  name = %q
  controller = "tcp://%s"
  timeout = "1s"
  configuration_type = "request"
  [[inputs.modbus.request]]
    slave_id = %d
    byte_order = "ABCD"
    register = "holding"
    optimization = %q%s
    fields = [
`, deviceName(byte(u)), target, u, optimization, fill)
		for _, p := range points {
			fmt.Fprintf(&b, "      { address=%d, name=%q, type=%q },\n", p.Addr, p.Name, strings.ToUpper(p.Type))
		}
		fmt.Fprintf(&b, "    ]\n")
	}
	return b.String()
}

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
	compareTelegraf(t, topology, envDuration(t, "WEFT_E2E_DURATION", 60*time.Second))
}

func BenchmarkTelegrafComparison(b *testing.B) { benchTelegraf(b, TopologyShared) }

func BenchmarkTelegrafComparisonPerDevice(b *testing.B) { benchTelegraf(b, TopologyPerDevice) }

func benchTelegraf(b *testing.B, topology string) {
	// One measured run whatever b.N is: each run starts processes and
	// lasts a fixed time; the figures are reported as custom metrics.
	if b.N > 1 {
		b.Skip("one run is the measurement")
	}
	rows := compareTelegraf(b, topology, 30*time.Second)
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

// comparisonMap is the point map both read: the uint64 counter at 0 and
// 49 uint16 registers after it with the gaps PLC maps have (adjacent
// runs, then holes of 3, 11 and 29 registers), 350 registers in all.
func comparisonMap() []int {
	gaps := []int{1, 1, 4, 1, 12, 1, 30}
	addrs := make([]int, 0, 49)
	a := 3
	for i := 0; len(addrs) < 49; i++ {
		a += gaps[i%len(gaps)]
		addrs = append(addrs, a)
	}
	return addrs
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

func compareTelegraf(tb testing.TB, topology string, length time.Duration) []CompareRow {
	tb.Helper()
	tg := telegrafBinary()
	if tg == "" {
		tb.Skip("no Telegraf binary: build it as the comment on TestTelegrafComparison says, or set WEFT_TELEGRAF")
	}
	bin := Binaries(tb)
	const devices, interval = 20, 500 * time.Millisecond
	addrs := comparisonMap()
	dir := tb.TempDir()
	broker := testservers.Mosquitto(tb, testservers.WithConfig("max_queued_messages 1000000"))
	sim := &Process{Name: "weft-sim", Bin: filepath.Join(bin, "weft-sim"), LogPath: filepath.Join(dir, "sim.log"),
		Args: []string{"--modbus", "127.0.0.1:0", "--profile", "counter", "--devices", strconv.Itoa(devices),
			"--registers", strconv.Itoa(addrs[len(addrs)-1] + 1), "--tick", "10ms"}}
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

	for _, gap := range []int{-1, 30} {
		name := "weft default"
		if gap >= 0 {
			name = fmt.Sprintf("weft max_gap=%d", gap)
		}
		run(name, func(targets []string) (*Process, func() int64) {
			d := filepath.Join(dir, strings.NewReplacer(" ", "-", "=", "").Replace(name))
			if err := os.MkdirAll(d, 0o755); err != nil {
				tb.Fatal(err)
			}
			cfgPath := filepath.Join(d, "agent.yaml")
			if err := os.WriteFile(cfgPath, []byte(weftCompareYAML(d, broker.URL, targets, interval, addrs, gap)), 0o600); err != nil {
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
			if err := os.WriteFile(cfgPath, []byte(telegrafConf(broker.Addr, targets, interval, addrs, opt)), 0o600); err != nil {
				tb.Fatal(err)
			}
			return &Process{Name: "telegraf", Bin: tg, LogPath: filepath.Join(d, "telegraf.log"), Args: []string{"--config", cfgPath}}, tgFields.Load
		})
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\n%d devices × %d points (350-register map with holes), topology %s, polled every %s, %s measured each, one collector at a time\n", devices, len(addrs)+1, topology, interval, length)
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

// weftCompareYAML configures one device per target: unit u at targets[u-1].
func weftCompareYAML(dir, broker string, targets []string, interval time.Duration, addrs []int, maxGap int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "agent: {id: cmp-agent, site: e2e, data_dir: %q}\nmqtt: {broker: %q}\nbatch: {max_samples: 1000, flush_interval: 250ms}\nmetrics: {listen: \"127.0.0.1:0\"}\n", filepath.Join(dir, "data"), broker)
	fmt.Fprintf(&b, "profiles:\n  cmp:\n    protocol: modbus\n    points:\n      - {name: ticks, table: holding, address: 0, type: uint64}\n")
	for _, a := range addrs {
		fmt.Fprintf(&b, "      - {name: r%03d, table: holding, address: %d, type: uint16}\n", a, a)
	}
	gap := ""
	if maxGap >= 0 {
		gap = fmt.Sprintf(", max_gap: %d", maxGap)
	}
	fmt.Fprintf(&b, "devices:\n")
	for i, target := range targets {
		u := i + 1
		fmt.Fprintf(&b, "  - {id: %s, profile: cmp, interval: %s, modbus: {target: \"tcp://%s\", unit: %d, timeout: 1s%s}}\n", deviceName(byte(u)), interval, target, u, gap)
	}
	return b.String()
}

// telegrafConf configures one [[inputs.modbus]] per target: unit u at
// targets[u-1].
func telegrafConf(broker string, targets []string, interval time.Duration, addrs []int, optimization string) string {
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
      { address=0, name="ticks", type="UINT64" },
`, deviceName(byte(u)), target, u, optimization, fill)
		for _, a := range addrs {
			fmt.Fprintf(&b, "      { address=%d, name=\"r%03d\", type=\"UINT16\" },\n", a, a)
		}
		fmt.Fprintf(&b, "    ]\n")
	}
	return b.String()
}

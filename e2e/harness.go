package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftiot/weft/internal/testbin"
	"github.com/weftiot/weft/internal/testservers"
)

// Config sizes one harness run. Rate = Devices × Points / Interval.
type Config struct {
	// Devices are simulated counter devices, units 1..Devices of one
	// weft-sim (at most 247).
	Devices int
	// Points per device: the counter (uint64, registers 0..3) and
	// Points-1 uint16 registers from 4 on, read in one request.
	Points int
	// Interval is each device's poll interval.
	Interval time.Duration
	// Tick is the simulator's counter period; far below Interval, so
	// every poll reads a counter value of its own (default 10ms).
	Tick time.Duration
	// KeepAlive is the agent's MQTT keepalive (default 3s).
	KeepAlive time.Duration
	// BatchMax and Flush are the agent's batch.max_samples and
	// batch.flush_interval (defaults 1000 and 250ms).
	BatchMax int
	Flush    time.Duration
	// SpoolMaxBytes and Overflow are spool.max_bytes and spool.overflow
	// ("" for the defaults).
	SpoolMaxBytes string
	Overflow      string
	// Faulty adds devices on weft-sim processes of their own with fault
	// flags, named bad01…: they are not counted, only shown not to slow
	// the counted ones.
	Faulty []Faulty
	// SimFlags are extra flags of the counted weft-sim, e.g.
	// {"--latency", "20ms"} to load its one shared Modbus link.
	SimFlags []string
	// EdgeDevices of the Devices (the last ones) reach weft-sim through a
	// tap of their own, so each has a Modbus connection of its own in the
	// agent, and that tap holds every other answer until just before the
	// device's next poll is due (EdgeTap): polls that end a moment before
	// the next one begins. Counted like the others.
	EdgeDevices int
}

// Faulty is a device served by its own weft-sim with fault flags, e.g.
// {"--garbage-rate", "1"} or {"--latency", "3s"} or {"--drop-rate", "1"}.
type Faulty struct {
	Name  string
	Flags []string
}

// Rate is the configured samples per second.
func (c Config) Rate() float64 { return float64(c.Devices*c.Points) / c.Interval.Seconds() }

func (c *Config) defaults() {
	if c.Tick == 0 {
		c.Tick = 10 * time.Millisecond
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = 3 * time.Second
	}
	if c.BatchMax == 0 {
		c.BatchMax = 1000
	}
	if c.Flush == 0 {
		c.Flush = 250 * time.Millisecond
	}
}

// Harness is one running set: weft-sim behind a Modbus tap, Mosquitto,
// influxd, weft-gateway (to InfluxDB through a fault proxy) and
// weft-agent (to the broker through a fault proxy).
type Harness struct {
	t   testing.TB
	cfg Config
	dir string

	Broker *testservers.Broker
	Influx *testservers.InfluxDB

	Sim     *Process
	Faulty  []*Process
	Agent   *Process
	Gateway *Process

	// Served is every counter answer the simulator gave the agent.
	Served *Served
	// SimTap sits between agent and weft-sim; BrokerLink between agent
	// and Mosquitto; InfluxLink between gateway and influxd.
	SimTap, BrokerLink, InfluxLink *Proxy
	// EdgeTaps are the taps of the Config.EdgeDevices, by unit.
	EdgeTaps map[byte]*Proxy
	edges    map[byte]*EdgeTap

	gatewayHTTP string
	client      *http.Client

	mu        sync.Mutex
	agentHTTP string // changes with every agent start
	Monitor   *Monitor
}

const (
	agentID    = "e2e-agent"
	siteID     = "e2e"
	readToken  = "e2e-read-token-0000000001"
	adminToken = "e2e-admin-token-000000001"
	// tickPoint is the counter's point name; the others are r004….
	tickPoint = "ticks"
)

// Binaries returns the directory holding weft-agent, weft-gateway and
// weft-sim: $WEFT_BIN when it holds all three (make test builds them
// there), else a go build made once per test binary (internal/testbin).
func Binaries(t testing.TB) string {
	t.Helper()
	return testbin.Dir(t, "weft-agent", "weft-gateway", "weft-sim")
}

// RemoveBuilt removes what Binaries built; TestMain calls it.
func RemoveBuilt() { testbin.RemoveBuilt() }

// Start starts every process and waits until data flows into InfluxDB.
func Start(t testing.TB, cfg Config) *Harness {
	t.Helper()
	cfg.defaults()
	if cfg.Devices < 1 || cfg.Devices > 247 || cfg.Points < 1 || cfg.Points > 122 {
		t.Fatalf("e2e: %d devices × %d points: want 1..247 devices and 1..122 points (one request per poll)", cfg.Devices, cfg.Points)
	}
	bin := Binaries(t)
	h := &Harness{t: t, cfg: cfg, dir: t.TempDir(), Served: NewServed(), client: &http.Client{Timeout: 5 * time.Second}}
	// The agent's request timeout is 1 s; an answer the tap forwards
	// 0.9 s or more after the request may reach the agent too late.
	h.Served.LateAfter = 900 * time.Millisecond
	t.Cleanup(h.close)

	h.Influx = testservers.Influx(t)
	// The gateway holds PUBACKs while InfluxDB is down: Mosquitto must
	// queue everything meanwhile (docs/gateway.md, "Broker settings").
	h.Broker = testservers.Mosquitto(t, testservers.WithConfig("max_queued_messages 10000000", "max_inflight_messages 100", "max_queued_bytes 0"))

	var err error
	if h.InfluxLink, err = NewProxy(strings.TrimPrefix(h.Influx.URL, "http://"), nil); err != nil {
		t.Fatal(err)
	}
	if h.BrokerLink, err = NewProxy(h.Broker.Addr, nil); err != nil {
		t.Fatal(err)
	}

	// weft-sim on a port it picks; its log names the address.
	h.Sim = h.proc("weft-sim", bin, append([]string{"--modbus", "127.0.0.1:0", "--profile", "counter",
		"--devices", strconv.Itoa(cfg.Devices), "--registers", strconv.Itoa(max(cfg.Points+3, 4)),
		"--tick", cfg.Tick.String()}, cfg.SimFlags...)...)
	simAddr := h.startWait(h.Sim, regexp.MustCompile(`serving Modbus.* addr=(\S+)`))
	if h.SimTap, err = NewProxy(simAddr, h.Served.Tap()); err != nil {
		t.Fatal(err)
	}
	h.EdgeTaps, h.edges = map[byte]*Proxy{}, map[byte]*EdgeTap{}
	for u := cfg.Devices - cfg.EdgeDevices + 1; u <= cfg.Devices; u++ {
		e := &EdgeTap{Interval: cfg.Interval}
		tap := h.Served.Tap()
		p, err := NewProxy(simAddr, func() Observer { return e.wrap(tap()) })
		if err != nil {
			t.Fatal(err)
		}
		h.EdgeTaps[byte(u)], h.edges[byte(u)] = p, e
	}
	var faultyAddrs []string
	for _, f := range cfg.Faulty {
		args := append([]string{"--modbus", "127.0.0.1:0", "--profile", "counter", "--devices", "1", "--tick", cfg.Tick.String()}, f.Flags...)
		p := h.proc("weft-sim-"+f.Name, bin, args...)
		faultyAddrs = append(faultyAddrs, h.startWait(p, regexp.MustCompile(`serving Modbus.* addr=(\S+)`)))
		h.Faulty = append(h.Faulty, p)
	}

	gwYAML := fmt.Sprintf(`gateway: {id: gw-e2e, data_dir: %q, http: "127.0.0.1:0"}
mqtt: {broker: %q, topic_prefix: weft/v1}
influxdb: {url: "http://%s", bucket: %q, token: %q, batch_size: 5000, flush_interval: 200ms}
auth: {admin_tokens: [%q], read_tokens: [%q]}
alerts: {offline_after: 2m, backlog_age_after: 10m}
`, filepath.Join(h.dir, "gateway-data"), h.Broker.URL, h.InfluxLink.Addr(), h.Influx.Bucket, h.Influx.Token, adminToken, readToken)
	gwPath := h.write("gateway.yaml", gwYAML)
	h.Gateway = h.proc("weft-gateway", bin, "run", "--config", gwPath)
	h.StartGateway()

	agentPath := h.write("agent.yaml", h.agentYAML(faultyAddrs))
	h.Agent = h.proc("weft-agent", bin, "run", "--config", agentPath)
	h.StartAgent()

	h.Monitor = newMonitor(h)
	h.WaitFor("the first samples in InfluxDB", 60*time.Second, func() bool {
		n, _ := h.latestTime()
		return n > 0
	})
	return h
}

func (h *Harness) agentYAML(faulty []string) string {
	c := h.cfg
	var b strings.Builder
	fmt.Fprintf(&b, `agent: {id: %s, site: %s, data_dir: %q, health_interval: 1s}
mqtt: {broker: "tcp://%s", keepalive: %s}
batch: {max_samples: %d, flush_interval: %s}
metrics: {listen: "127.0.0.1:0"}
`, agentID, siteID, filepath.Join(h.dir, "agent-data"), h.BrokerLink.Addr(), c.KeepAlive, c.BatchMax, c.Flush)
	if c.SpoolMaxBytes != "" || c.Overflow != "" {
		fmt.Fprintf(&b, "spool: {")
		sep := ""
		if c.SpoolMaxBytes != "" {
			fmt.Fprintf(&b, "max_bytes: %s", c.SpoolMaxBytes)
			sep = ", "
		}
		if c.Overflow != "" {
			fmt.Fprintf(&b, "%soverflow: %s", sep, c.Overflow)
		}
		fmt.Fprintf(&b, "}\n")
	}
	fmt.Fprintf(&b, "profiles:\n  counter:\n    protocol: modbus\n    points:\n")
	fmt.Fprintf(&b, "      - {name: %s, table: holding, address: 0, type: uint64}\n", tickPoint)
	for i := 1; i < c.Points; i++ {
		fmt.Fprintf(&b, "      - {name: r%03d, table: holding, address: %d, type: uint16}\n", i+3, i+3)
	}
	fmt.Fprintf(&b, "devices:\n")
	for u := 1; u <= c.Devices; u++ {
		tap := h.SimTap
		if p := h.EdgeTaps[byte(u)]; p != nil {
			tap = p
		}
		fmt.Fprintf(&b, "  - {id: %s, profile: counter, interval: %s, modbus: {target: \"tcp://%s\", unit: %d, timeout: 1s}}\n",
			deviceName(byte(u)), c.Interval, tap.Addr(), u)
	}
	for i, addr := range faulty {
		fmt.Fprintf(&b, "  - {id: %s, profile: counter, interval: %s, modbus: {target: \"tcp://%s\", unit: 1, timeout: 1s}}\n",
			h.cfg.Faulty[i].Name, c.Interval, addr)
	}
	return b.String()
}

func deviceName(u byte) string { return fmt.Sprintf("dev%03d", u) }

func (h *Harness) write(name, content string) string {
	p := filepath.Join(h.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		h.t.Fatal(err)
	}
	return p
}

func (h *Harness) proc(name, bin string, args ...string) *Process {
	exe := filepath.Join(bin, name)
	if strings.HasPrefix(name, "weft-sim-") {
		exe = filepath.Join(bin, "weft-sim")
	}
	return &Process{Name: name, Bin: exe, Args: args, LogPath: filepath.Join(h.dir, name+".log")}
}

func (h *Harness) startWait(p *Process, re *regexp.Regexp) string {
	h.t.Helper()
	if err := p.Start(); err != nil {
		h.t.Fatal(err)
	}
	s, err := p.WaitLog(re, 30*time.Second)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

var (
	gatewayRunning = regexp.MustCompile(`msg="gateway running" http=(\S+)`)
	agentHTTP      = regexp.MustCompile(`msg="local HTTP endpoint".* listen=(\S+)`)
)

// StartGateway starts weft-gateway and waits until its subscriptions are
// in place (/healthz 200).
func (h *Harness) StartGateway() {
	h.t.Helper()
	h.gatewayHTTP = "http://" + h.startWait(h.Gateway, gatewayRunning)
	h.WaitFor("the gateway's subscriptions (/healthz 200)", 30*time.Second, func() bool {
		resp, err := h.client.Get(h.gatewayHTTP + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// StartAgent starts weft-agent and waits for its local HTTP endpoint.
func (h *Harness) StartAgent() {
	h.t.Helper()
	addr := h.startWait(h.Agent, agentHTTP)
	h.mu.Lock()
	h.agentHTTP = "http://" + addr
	h.mu.Unlock()
}

func (h *Harness) agentURL() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.agentHTTP
}

// WaitFor polls cond every 100ms until it holds, failing the test after
// timeout.
func (h *Harness) WaitFor(what string, timeout time.Duration, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("e2e: timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (h *Harness) close() {
	if h.Monitor != nil {
		h.Monitor.stop()
	}
	for _, p := range []*Process{h.Agent, h.Gateway, h.Sim} {
		if p != nil {
			p.Stop(10 * time.Second)
		}
	}
	for _, p := range h.Faulty {
		p.Stop(5 * time.Second)
	}
	for _, p := range []*Proxy{h.SimTap, h.BrokerLink, h.InfluxLink} {
		if p != nil {
			p.Close()
		}
	}
	for _, p := range h.EdgeTaps {
		p.Close()
	}
	if h.t.Failed() {
		for _, p := range append([]*Process{h.Agent, h.Gateway, h.Sim}, h.Faulty...) {
			if p != nil {
				b, _ := os.ReadFile(p.LogPath)
				h.t.Logf("%s log (%s), last part:\n%s", p.Name, p.LogPath, tail(string(b), 6000))
			}
		}
	}
}

// Metrics scrapes a Prometheus text endpoint into name{labels} → value.
func (h *Harness) metrics(url string, token string) (map[string]float64, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return parseProm(resp.Body)
}

// parseProm reads the Prometheus text format: every sample line as
// "name{labels}" (labels as written) → value.
func parseProm(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// AgentMetrics scrapes the running agent's /metrics.
func (h *Harness) AgentMetrics() (map[string]float64, error) {
	if !h.Agent.Running() {
		return nil, fmt.Errorf("weft-agent is not running")
	}
	return h.metrics(h.agentURL()+"/metrics", "")
}

// GatewayMetrics scrapes the running gateway's /metrics.
func (h *Harness) GatewayMetrics() (map[string]float64, error) {
	if !h.Gateway.Running() {
		return nil, fmt.Errorf("weft-gateway is not running")
	}
	return h.metrics(h.gatewayHTTP+"/metrics", readToken)
}

// sum adds every series of a metric whose labels contain all of want
// (e.g. `reason="oldest"`).
func sum(m map[string]float64, name string, want ...string) float64 {
	var s float64
	for k, v := range m {
		base, labels, _ := strings.Cut(k, "{")
		if base != name {
			continue
		}
		ok := true
		for _, w := range want {
			if !strings.Contains(labels, w) {
				ok = false
			}
		}
		if ok {
			s += v
		}
	}
	return s
}

// GatewayAgent returns the gateway's view of the agent (GET
// /api/v1/agents/{site}/{agent}): its "seq" and "dropped" parts.
func (h *Harness) GatewayAgent() (AgentView, error) {
	var v struct {
		Agent AgentView `json:"agent"`
	}
	req, _ := http.NewRequest("GET", h.gatewayHTTP+"/api/v1/agents/"+siteID+"/"+agentID, nil)
	req.Header.Set("Authorization", "Bearer "+readToken)
	resp, err := h.client.Do(req)
	if err != nil {
		return v.Agent, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return v.Agent, fmt.Errorf("gateway agent view: %s", resp.Status)
	}
	return v.Agent, json.NewDecoder(resp.Body).Decode(&v)
}

// AgentView is the part of the gateway's agent record the harness reads.
type AgentView struct {
	Seq struct {
		Last       uint64 `json:"last"`
		Gaps       int64  `json:"gaps"`
		Missing    int64  `json:"missing"`
		Duplicates int64  `json:"duplicates"`
		Late       int64  `json:"late"`
		Resets     int64  `json:"resets"`
	} `json:"seq"`
	Dropped struct {
		Oldest int64 `json:"oldest"`
		Newest int64 `json:"newest"`
	} `json:"dropped"`
}

// latestTime is the newest stored counter sample's source time (ms), 0
// when none is stored yet.
func (h *Harness) latestTime() (int64, error) {
	s, err := h.Influx.QueryErr(fmt.Sprintf(`SELECT last("value_int") FROM "weft" WHERE "point" = '%s'`, tickPoint))
	if err != nil || len(s) == 0 || len(s[0].Values) == 0 {
		return 0, err
	}
	return jsonInt(s[0].Values[0][0]), nil
}

func jsonInt(v any) int64 {
	switch x := v.(type) {
	case json.Number:
		n, err := x.Int64()
		if err != nil {
			f, _ := x.Float64()
			return int64(f)
		}
		return n
	case float64:
		return int64(x)
	}
	return 0
}

// Quiesce stops serving the devices (the tap blackholes the Modbus link, so
// every answer the tap recorded did reach the agent), then waits until the
// stored counter samples stop changing and match what was served, or
// until timeout. It returns how long the catch-up took.
func (h *Harness) Quiesce(timeout time.Duration) time.Duration {
	h.t.Helper()
	h.SimTap.Blackhole()
	for _, p := range h.EdgeTaps {
		p.Blackhole()
	}
	start := time.Now()
	served := 0
	for _, n := range h.Served.Count() {
		served += n
	}
	last, stable := -1, 0
	for time.Since(start) < timeout {
		time.Sleep(500 * time.Millisecond)
		n := h.storedPolls()
		if n >= served {
			return time.Since(start)
		}
		if n == last {
			stable++
		} else {
			stable = 0
		}
		last = n
		// Nothing new for 8 s: whatever is missing is not coming.
		if stable >= 16 {
			break
		}
	}
	return time.Since(start)
}

func (h *Harness) storedPolls() int {
	s, err := h.Influx.QueryErr(fmt.Sprintf(`SELECT count("value_int") FROM "weft" WHERE "point" = '%s' AND "agent" = '%s'`, tickPoint, agentID))
	if err != nil || len(s) == 0 || len(s[0].Values) == 0 {
		return 0
	}
	return int(jsonInt(s[0].Values[0][1]))
}

// Count compares what was served with what InfluxDB holds, device by
// device. Call it after Quiesce.
func (h *Harness) Count() Tally {
	h.t.Helper()
	var tally Tally
	tally.Rate = h.cfg.Rate()
	// Counter samples, every one, per device.
	s := h.Influx.Query(h.t, fmt.Sprintf(`SELECT "value_int" FROM "weft" WHERE "point" = '%s' AND "agent" = '%s' GROUP BY "device"`, tickPoint, agentID))
	stored := map[string][][2]int64{} // device → (time ms, counter)
	for _, ser := range s {
		ti, vi := ser.Column("time"), ser.Column("value_int")
		rows := make([][2]int64, 0, len(ser.Values))
		for _, r := range ser.Values {
			rows = append(rows, [2]int64{jsonInt(r[ti]), jsonInt(r[vi])})
		}
		stored[ser.Tags["device"]] = rows
	}
	// The other points: a count per device.
	others := map[string]int64{}
	if h.cfg.Points > 1 {
		s = h.Influx.Query(h.t, fmt.Sprintf(`SELECT count("value_int") FROM "weft" WHERE "point" != '%s' AND "agent" = '%s' GROUP BY "device"`, tickPoint, agentID))
		for _, ser := range s {
			if len(ser.Values) > 0 {
				others[ser.Tags["device"]] = jsonInt(ser.Values[0][1])
			}
		}
	}
	for u := 1; u <= h.cfg.Devices; u++ {
		name := deviceName(byte(u))
		d := DeviceTally{Device: name}
		polls := h.Served.Polls(byte(u))
		want, late := map[uint64]int{}, map[uint64]bool{}
		onTime := 0
		for _, p := range polls {
			if p.Late {
				late[p.Counter] = true
				d.Late++
				if p.Unread {
					d.Unread++
				}
				continue
			}
			want[p.Counter]++
			onTime++
		}
		rows := stored[name]
		got := map[uint64]int{}
		d.storedAt = make(map[uint64]int64, len(rows))
		var prev int64 = math.MinInt64
		for _, r := range rows { // InfluxDB returns them in time order
			got[uint64(r[1])]++
			d.storedAt[uint64(r[1])] = r[0]
			if r[1] < prev {
				d.OutOfOrder++
			}
			prev = r[1]
		}
		for c, n := range want {
			if g := got[c]; g < n {
				d.LostPolls += n - g
				d.lost = append(d.lost, c)
			}
		}
		for c, g := range got {
			n := want[c]
			if late[c] {
				n++ // a late answer the agent still took
			}
			switch {
			case n == 0:
				d.Unexpected += g
			case g > n:
				d.DupPolls += g - n
			}
		}
		sort.Slice(d.lost, func(i, j int) bool { return d.lost[i] < d.lost[j] })
		k := int64(h.cfg.Points - 1)
		// Late answers that were stored count as expected after all.
		for c := range late {
			if got[c] > 0 && want[c] == 0 {
				onTime++
			}
		}
		d.Expected = int64(onTime) * int64(h.cfg.Points)
		d.Stored = int64(len(rows)) + others[name]
		otherWant := int64(onTime) * k
		lostOther, dupOther := int64(0), int64(0)
		if others[name] < otherWant {
			lostOther = otherWant - others[name]
		} else {
			dupOther = others[name] - otherWant
		}
		d.Lost = int64(d.LostPolls) + lostOther
		d.Duplicated = int64(d.DupPolls) + dupOther
		d.servedAt = polls
		d.Overwritten = d.overwritten()
		for i := 1; i < len(polls); i++ {
			if polls[i].At.Sub(polls[i-1].At) < time.Millisecond {
				d.Tight++
			}
		}
		tally.Devices = append(tally.Devices, d)
		tally.Expected += d.Expected
		tally.Stored += d.Stored
		tally.Lost += d.Lost
		tally.Duplicated += d.Duplicated
		tally.OutOfOrder += d.OutOfOrder
		tally.Unexpected += d.Unexpected
		tally.Late += d.Late
		tally.Unread += d.Unread
		tally.Overwritten += d.Overwritten
		tally.Tight += d.Tight
	}
	tally.TapDesync, tally.TapUnmatched = h.Served.Anomalies()
	return tally
}

// Tally is one scenario's count.
type Tally struct {
	Rate                               float64
	Expected, Stored, Lost, Duplicated int64
	OutOfOrder, Unexpected             int
	TapDesync, TapUnmatched            int
	Late                               int // answers too late for the agent: not expected, not lost
	Unread                             int // of Late: answers the agent reset its connection without reading
	// Overwritten counts lost readings whose neighbouring poll of the
	// same device is stored at the millisecond the lost one was served
	// in: two polls under one timestamp, and InfluxDB kept the other.
	Overwritten int
	// Tight counts answers served less than 1 ms after the device's
	// previous one: polls that could share a millisecond timestamp.
	Tight   int
	Devices []DeviceTally
}

// DeviceTally is one device's count. Expected and the rest are samples;
// LostPolls and DupPolls count counter readings (one per poll).
type DeviceTally struct {
	Device                             string
	Expected, Stored, Lost, Duplicated int64
	LostPolls, DupPolls                int
	OutOfOrder, Unexpected             int
	// Late counts answers served too late for the agent's timeout: not
	// expected, not lost. Unread counts those of them the agent reset its
	// connection without reading.
	Late, Unread int
	// Overwritten: lost readings a neighbouring poll's point took the
	// timestamp of (Tally.Overwritten).
	Overwritten int
	Tight       int      // answers less than 1 ms after the previous one (Tally.Tight)
	lost        []uint64 // counter values served, not stored
	servedAt    []Poll
	storedAt    map[uint64]int64 // counter → stored time (ms)
}

// sameMs is how far (ms) a stored timestamp may be from the tap's time of
// the answer and still be that answer's read: the agent stamps a poll
// when it has read the answer, just after the tap forwarded it.
const sameMs = 1

// overwritten counts the lost readings whose previous or next served
// reading is stored at (about) the millisecond the lost one was served:
// both polls were stamped alike, so in InfluxDB one point replaced the
// other.
func (d DeviceTally) overwritten() int {
	if len(d.lost) == 0 {
		return 0
	}
	lost := map[uint64]bool{}
	for _, c := range d.lost {
		lost[c] = true
	}
	n := 0
	for i, p := range d.servedAt {
		if !lost[p.Counter] {
			continue
		}
		if _, ok := d.collidesWith(i); ok {
			n++
		}
	}
	return n
}

// collidesWith returns the neighbour of served answer i (previous or next)
// stored at the millisecond answer i was served in, if any.
func (d DeviceTally) collidesWith(i int) (Poll, bool) {
	at := d.servedAt[i].At.UnixMilli()
	for _, j := range []int{i + 1, i - 1} {
		if j < 0 || j >= len(d.servedAt) {
			continue
		}
		nb := d.servedAt[j]
		if ts, ok := d.storedAt[nb.Counter]; ok && ts >= at-sameMs && ts <= at+sameMs {
			return nb, true
		}
	}
	return Poll{}, false
}

// LostServedTimes returns, for every lost counter reading, when the tap
// served it.
func (t Tally) LostServedTimes() []time.Time {
	var out []time.Time
	for _, d := range t.Devices {
		at := map[uint64]time.Time{}
		for _, p := range d.servedAt {
			at[p.Counter] = p.At
		}
		for _, c := range d.lost {
			out = append(out, at[c])
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

// Report is a scenario's line in the table.
type Report struct {
	Scenario string
	Tally
	Recover string // time to recover, or "-"
	Notes   []string
}

// Print writes the scenario's table to the test log.
func (r Report) Print(t testing.TB) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "\n== %s (%.0f samples/s configured)\n", r.Scenario, r.Rate)
	fmt.Fprintf(&b, "%-10s %10s %10s %8s %10s %12s %10s\n", "", "expected", "stored", "lost", "duplicated", "out of order", "recover")
	fmt.Fprintf(&b, "%-10s %10d %10d %8d %10d %12d %10s\n", "all", r.Expected, r.Stored, r.Lost, r.Duplicated, r.OutOfOrder, r.Recover)
	shown := 0
	for _, d := range r.Devices {
		if d.Lost == 0 && d.Duplicated == 0 && d.OutOfOrder == 0 && d.Unexpected == 0 {
			continue
		}
		if shown++; shown > 10 {
			fmt.Fprintf(&b, "  … more devices with differences\n")
			break
		}
		fmt.Fprintf(&b, "%-10s %10d %10d %8d %10d %12d\n", d.Device, d.Expected, d.Stored, d.Lost, d.Duplicated, d.OutOfOrder)
	}
	if r.Late > 0 {
		fmt.Fprintf(&b, "answers served 0.9 s or more after their request, or never read by the agent (it had timed out; not expected, not lost): %d\n", r.Late)
	}
	if r.Unread > 0 {
		fmt.Fprintf(&b, "  of them never read: the agent reset its connection with the answer unread: %d\n", r.Unread)
	}
	if r.Unexpected > 0 || r.TapDesync > 0 || r.TapUnmatched > 0 {
		fmt.Fprintf(&b, "stored counter readings never served: %d; tap: %d desynchronised connections, %d unmatched answers\n", r.Unexpected, r.TapDesync, r.TapUnmatched)
	}
	if r.Tight > 0 {
		fmt.Fprintf(&b, "answers served less than 1 ms after the same device's previous answer: %d\n", r.Tight)
	}
	if r.Overwritten > 0 {
		fmt.Fprintf(&b, "lost readings overwritten in InfluxDB by a neighbouring poll stamped the same millisecond: %d\n", r.Overwritten)
	}
	for _, l := range r.lostDetail(5) {
		fmt.Fprintf(&b, "  lost: %s\n", l)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  %s\n", n)
	}
	t.Log(b.String())
}

// lostDetail describes up to n lost readings of devices that lost at most
// n: which poll of the device it was and when it was served, for chasing
// sporadic losses.
func (t Tally) lostDetail(n int) []string {
	var out []string
	for _, d := range t.Devices {
		if d.LostPolls == 0 || d.LostPolls > n {
			continue
		}
		lost := map[uint64]bool{}
		for _, c := range d.lost {
			lost[c] = true
		}
		for i, p := range d.servedAt {
			if lost[p.Counter] && len(out) < n {
				gap := ""
				if i > 0 {
					gap = fmt.Sprintf(", %s after the previous answer", p.At.Sub(d.servedAt[i-1].At).Round(10*time.Microsecond))
				}
				if i+1 < len(d.servedAt) {
					gap += fmt.Sprintf(", %s before the next", d.servedAt[i+1].At.Sub(p.At).Round(10*time.Microsecond))
				}
				if nb, ok := d.collidesWith(i); ok {
					gap += fmt.Sprintf("; OVERWRITTEN: counter %d is stored at %s, the same millisecond", nb.Counter, time.UnixMilli(d.storedAt[nb.Counter]).Format("15:04:05.000"))
				}
				out = append(out, fmt.Sprintf("%s counter %d: poll %d of %d, served %s%s", d.Device, p.Counter, i+1, len(d.servedAt), p.At.Format("15:04:05.000"), gap))
			}
		}
	}
	return out
}

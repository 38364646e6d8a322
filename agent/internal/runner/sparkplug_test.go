package runner

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftiot/weft/internal/testbin"
	"github.com/weftiot/weft/internal/testservers"
)

// gatewayProc is a weft-gateway process built from this tree.
type gatewayProc struct {
	t       *testing.T
	bin     string
	cfg     string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
}

func (g *gatewayProc) start() {
	g.t.Helper()
	f, err := os.OpenFile(g.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		g.t.Fatal(err)
	}
	g.cmd = exec.Command(g.bin, "run", "--config", g.cfg)
	g.cmd.Stdout, g.cmd.Stderr = f, f
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := g.cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	g.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); f.Close(); close(done) }(g.cmd, g.done)
}

func (g *gatewayProc) stop() {
	if g.cmd == nil {
		return
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(20 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
	}
	g.cmd = nil
}

// TestSparkplugEndToEnd: a Weft agent in Sparkplug mode (mqtt.format:
// sparkplug_b, primary host weft-gw) → Mosquitto → a weft-gateway process
// with mqtt.sparkplug enabled → InfluxDB, with the native schema. Then the
// gateway stops (STATE offline): the agent keeps collecting into its spool;
// when the gateway is back the agent is born again and replays the backlog
// as historical, and the points of the outage land in InfluxDB at their
// source times.
func TestSparkplugEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds weft-gateway; real Mosquitto, influxd and Modbus simulator")
	}
	mq := testservers.Mosquitto(t)
	db := testservers.Influx(t)
	sim := startSim(t, 2)
	dir := t.TempDir()

	gwCfg := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(gwCfg, []byte(fmt.Sprintf(`gateway: {id: weft-gw, data_dir: %s, http: "127.0.0.1:0"}
mqtt: {broker: %q, sparkplug: {enabled: true}}
influxdb: {url: %q, bucket: %q, flush_interval: 200ms}
`, filepath.Join(dir, "gw"), mq.URL, db.URL, db.Bucket)), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := &gatewayProc{t: t, bin: testbin.Path(t, "weft-gateway"), cfg: gwCfg, logPath: filepath.Join(dir, "gateway.log")}
	t.Cleanup(func() {
		gw.stop()
		if t.Failed() {
			b, _ := os.ReadFile(gw.logPath)
			t.Logf("gateway log:\n%s", b)
		}
	})
	gw.start()

	agentCfg := agentConfig(filepath.Join(dir, "agent"), mq.URL, sim.Addr(), 2, "")
	agentCfg = strings.Replace(agentCfg, "  keepalive: 2s\n", "  keepalive: 2s\n  format: sparkplug_b\n  sparkplug: {host_id: weft-gw}\n", 1)
	path := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(path, []byte(agentCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	a, stopAgent := startAgent(t, testOptions(path))

	count := func(where string) map[string]int64 {
		out := map[string]int64{}
		ser, err := db.QueryErr(fmt.Sprintf(`SELECT count(*) FROM weft WHERE agent = 'a1' AND site = '%s'%s GROUP BY device, point`, testSite, where))
		if err != nil {
			return out
		}
		for _, s := range ser {
			for _, row := range s.Values {
				for i := 1; i < len(row); i++ {
					if n, ok := row[i].(json.Number); ok {
						v, _ := n.Int64()
						out[s.Tags["device"]+"/"+s.Tags["point"]] += v
					}
				}
			}
		}
		return out
	}
	want := []string{"dev1/ticks", "dev1/reg4", "dev2/ticks", "dev2/reg4"}
	waitUntil(t, "every point of both devices in InfluxDB through Sparkplug", 60*time.Second, func() bool {
		c := count("")
		for _, k := range want {
			if c[k] < 5 {
				return false
			}
		}
		return true
	})

	// The host goes away.
	gw.stop()
	off := time.Now()
	waitUntil(t, "a backlog in the agent's spool", 20*time.Second, func() bool {
		return a.sp.Stats().Batches >= 5 && time.Since(off) > 3*time.Second
	})
	on := time.Now()
	window := fmt.Sprintf(" AND time > %dms AND time < %dms", off.Add(500*time.Millisecond).UnixMilli(), on.UnixMilli())
	if c := count(window); c["dev1/ticks"] != 0 {
		t.Fatalf("points of the outage stored while the host was away: %v", c)
	}

	gw.start()
	waitUntil(t, "the backlog replayed", 60*time.Second, func() bool { return a.sp.Stats().Batches == 0 })
	// The outage window, polled every 100 ms: most of its readings are there.
	expect := int64(on.Sub(off.Add(500*time.Millisecond)) / (100 * time.Millisecond) / 2)
	if expect < 10 {
		t.Fatalf("outage window too short to prove anything (%d readings expected)", expect)
	}
	waitUntil(t, "the outage's points in InfluxDB", 30*time.Second, func() bool {
		return count(window)["dev1/ticks"] >= expect && count(window)["dev2/ticks"] >= expect
	})
	stopAgent()
	b, _ := os.ReadFile(gw.logPath)
	if strings.Contains(string(b), "level=ERROR") {
		t.Errorf("gateway logged errors:\n%s", b)
	}
}

package sparkplug

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

// TestMain removes the binaries testbin built, if $WEFT_BIN lacked them.
func TestMain(m *testing.M) { testbin.Main(m) }

// gateway is a weft-gateway process built from this tree.
type gateway struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startGateway(t *testing.T, cfg, logPath string) *gateway {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{cmd: exec.Command(testbin.Path(t, "weft-gateway"), "run", "--config", cfg), log: logPath, done: make(chan struct{})}
	g.cmd.Stdout, g.cmd.Stderr = f, f
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.cmd.Wait(); f.Close(); close(g.done) }()
	t.Cleanup(func() {
		_ = g.cmd.Process.Signal(syscall.SIGCONT)
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.done:
		case <-time.After(20 * time.Second):
			_ = g.cmd.Process.Kill()
			<-g.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("gateway log:\n%s", b)
		}
	})
	return g
}

// TestBrokerCrashWeftGateway is TestBrokerRestartHostLate/killed with the
// Weft gateway as the host and InfluxDB as its store: Mosquitto is killed
// after an autosave, and the gateway process is frozen (SIGSTOP) until 3 s
// after the broker is back. Every sample the node collected must be in
// InfluxDB, once.
func TestBrokerCrashWeftGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("builds weft-gateway; real Mosquitto killed and restarted, real influxd, ~20 s")
	}
	mq := testservers.Mosquitto(t, testservers.WithConfig("autosave_interval 1"))
	db := testservers.Influx(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`gateway: {id: weft-gw, data_dir: %s, http: "127.0.0.1:0"}
mqtt: {broker: %q, sparkplug: {enabled: true}}
influxdb: {url: %q, bucket: %q, flush_interval: 200ms}
`, filepath.Join(dir, "gw"), mq.URL, db.URL, db.Bucket)), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, cfg, filepath.Join(dir, "gateway.log"))

	sp := openSpool(t, dir)
	devs := &devices{list: []Device{{ID: "d", Points: []Point{{Name: "count"}}}}}
	en := startNode(t, mq.URL, sp, dir, "weft-gw", devs)
	col := startCollector(t, sp)

	// stored returns how many times each value is in InfluxDB (a point is
	// stored once per timestamp, so at most once).
	stored := func() map[int64]int {
		out := map[int64]int{}
		ser, err := db.QueryErr(fmt.Sprintf(`SELECT * FROM weft WHERE site = '%s' AND agent = '%s' AND device = 'd' AND point = 'count'`, group, node))
		if err != nil {
			return out
		}
		for _, s := range ser {
			for _, row := range s.Values {
				for _, col := range []string{"value_int", "value"} {
					if i := s.Column(col); i >= 0 && i < len(row) {
						if n, ok := row[i].(json.Number); ok {
							v, _ := n.Float64()
							out[int64(v)]++
						}
					}
				}
			}
		}
		return out
	}
	missing := func(n int64) []int64 {
		have := stored()
		var out []int64
		for v := int64(1); v <= n; v++ {
			if have[v] == 0 {
				out = append(out, v)
			}
		}
		return out
	}
	waitLong := func(what string, d time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %v waiting for %s", d, what)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitLong("100 samples in InfluxDB through the gateway", 60*time.Second, func() bool {
		n := col.count()
		return n >= 100 && len(missing(n)) == 0
	})

	col.pause(true)
	waitLong("every sample so far in InfluxDB", 20*time.Second, func() bool { return len(missing(col.count())) == 0 })
	time.Sleep(2500 * time.Millisecond) // two autosaves: the gateway's STATE online is saved
	mq.Kill()
	if err := gw.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	births := en.e.Births()
	before := col.count()
	col.pause(false)
	time.Sleep(time.Second)
	mq.Start()
	up := col.count()
	time.Sleep(3 * time.Second)
	if en.e.Births() == births {
		t.Fatal("the node was not born on the restored STATE online before the gateway's return: the window this test is about did not happen")
	}
	if err := gw.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	back := col.count()
	time.Sleep(3 * time.Second)
	col.stop()
	n := col.count()

	deadline := time.Now().Add(30 * time.Second)
	for len(missing(n)) > 0 && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
	}
	lost := missing(n)
	t.Logf("%d samples collected (%d before the crash, %d while the broker was down, %d before the gateway was back); %d in InfluxDB, %d lost",
		n, before, up-before, back-up, n-int64(len(lost)), len(lost))
	if len(lost) > 0 {
		t.Errorf("%d of %d samples never reached InfluxDB (values %d..%d; %d..%d were collected between the broker's restart and the gateway's return)",
			len(lost), n, lost[0], lost[len(lost)-1], up+1, back)
	}
	for v, c := range stored() {
		if c > 1 {
			t.Errorf("value %d stored %d times", v, c)
			break
		}
	}
	waitFor(t, "the spool drained", func() bool { return sp.Stats().Batches == 0 })
	b, _ := os.ReadFile(gw.log)
	if strings.Contains(string(b), "level=ERROR") {
		t.Errorf("gateway logged errors:\n%s", b)
	}
}

package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/weftiot/weft/config"
	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
)

const (
	adminToken = "admin-token-0123456789"
	readToken  = "read-token-0123456789ab"
)

// gw is a gateway running in this test process.
type gw struct {
	HTTP   string // http://host:port
	Broker string // embedded broker URL, if any
	stop   func()
}

// gatewayYAML makes a gateway config for the test.
func gatewayYAML(t *testing.T, id, dir, broker string, influx *testservers.InfluxDB, extra string) string {
	t.Helper()
	y := fmt.Sprintf(`gateway: {id: %s, data_dir: %s, http: "127.0.0.1:0"%s}
mqtt: {broker: %q, topic_prefix: weft/v1, shared_group: weft-gateway}
auth: {admin_tokens: [%s], read_tokens: [%s]}
alerts: {offline_after: 2m, backlog_age_after: 10m}
`, id, dir, embeddedListen(broker), broker, adminToken, readToken)
	if influx != nil {
		y += fmt.Sprintf("influxdb: {url: %q, bucket: %q, token: %q, batch_size: 5000, flush_interval: 200ms}\n", influx.URL, influx.Bucket, influx.Token)
	}
	return y + extra
}

func embeddedListen(broker string) string {
	if broker == "embedded" {
		return `, embedded_listen: "127.0.0.1:0"`
	}
	return ""
}

// startGateway runs Run in the background until the test ends (or stop).
func startGateway(t *testing.T, yaml string) *gw {
	t.Helper()
	cfg, err := config.ParseGateway("gateway.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [2]string, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})).With("gw", cfg.Gateway.ID)
	go func() {
		done <- Run(ctx, cfg, Options{Log: log, Ready: func(h, b string) { ready <- [2]string{h, b} }})
	}()
	g := &gw{}
	select {
	case r := <-ready:
		g.HTTP, g.Broker = "http://"+r[0], r[1]
	case err := <-done:
		cancel()
		t.Fatalf("gateway did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("gateway did not start in 30s")
	}
	stopped := false
	g.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("gateway did not stop in 30s")
		}
	}
	t.Cleanup(g.stop)
	// Healthy once subscribed: before that, a first-time gateway has no
	// session in the broker and what agents publish reaches nobody.
	waitFor(t, 20*time.Second, "gateway subscribed", func() bool {
		resp, err := http.Get(g.HTTP + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return g
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() || os.Getenv("WEFT_TEST_LOG") != "" {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// agentClient connects as an agent would (client id = agent id).
func agentClient(t testing.TB, broker, id string) mqtt.Client {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID(id).SetCleanSession(true).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond).SetMaxReconnectInterval(time.Second)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("agent %s: connect %s: %v", id, broker, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

var topics = wire.Topics{Prefix: "weft/v1"}

func publish(t testing.TB, c mqtt.Client, topic string, payload []byte, retained bool) {
	t.Helper()
	tok := c.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("publish on %s: %v", topic, tok.Error())
	}
}

// floatBatch makes a batch of n float samples over `points` points of one
// device, time stamps from ts0 one ms apart, values that encode (seq, i).
func floatBatch(site, agent string, seq uint64, n, points int, ts0 int64) *wire.Batch {
	b := &wire.Batch{Site: site, Agent: agent, Seq: seq}
	for i := 0; i < n; i++ {
		b.Samples = append(b.Samples, wire.Sample{Device: "dev-1", Point: "p" + strconv.Itoa(i%points),
			Value: wire.FloatValue(float64(seq)*1000 + float64(i)), TS: ts0 + int64(i)})
	}
	return b
}

func statusMsg(site, agent, state string) []byte {
	b, _ := json.Marshal(wire.Status{V: 1, Site: site, Agent: agent, State: state, Version: "test", ConfigHash: "h1", TS: time.Now().UnixMilli()})
	return b
}

// countValues returns count(field) over the measurement, optionally WHERE.
func countValues(t testing.TB, db *testservers.InfluxDB, field, where string) int64 {
	t.Helper()
	q := fmt.Sprintf(`SELECT count(%q) FROM "weft"`, field)
	if where != "" {
		q += " WHERE " + where
	}
	s, err := db.QueryErr(q)
	if err != nil || len(s) == 0 || len(s[0].Values) == 0 {
		return 0
	}
	n, _ := s[0].Values[0][1].(json.Number).Int64()
	return n
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// apiGet does an authenticated GET and decodes JSON into v; it returns the status.
func apiDo(t testing.TB, method, url, token, body string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatalf("%s %s: HTTP %d: decode %q: %v", method, url, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode
}

// metric reads one sample of /metrics, e.g. `weft_gateway_messages_total{outcome="malformed"}`.
func metric(t testing.TB, g *gw, name string) float64 { return metricF(t, g, name) }

func metricF(t testing.TB, g *gw, name string) float64 {
	t.Helper()
	req, _ := http.NewRequest("GET", g.HTTP+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+readToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(rest, 64)
			return f
		}
	}
	return 0
}

func agentOpts(broker, id string) *mqtt.ClientOptions {
	return mqtt.NewClientOptions().AddBroker(broker).SetClientID(id).SetCleanSession(true).SetConnectRetry(false)
}

func newClient(o *mqtt.ClientOptions) mqtt.Client { return mqtt.NewClient(o) }

func waitForB(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	waitFor(t, d, "condition", cond)
}

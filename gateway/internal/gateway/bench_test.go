package gateway

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/weftiot/weft/internal/testbin"
	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
)

// BenchmarkIngest measures points per second from Mosquitto into influxd
// through one gateway process, all on this machine, with agents' batches of
// 1,000 points; one iteration is one batch. It also reports the gateway
// process's CPU seconds (user+system, from getrusage of the child) per
// million points. Run it with a fixed count so that setup is paid once:
//
//	go test -run '^$' -bench Ingest -benchtime 2000x ./gateway/internal/gateway/
func BenchmarkIngest(b *testing.B) {
	mq := testservers.Mosquitto(b, testservers.WithConfig("max_inflight_messages 100", "max_queued_messages 1000000"))
	db := testservers.Influx(b)
	bin := testbin.Path(b, "weft-gateway")
	dir := b.TempDir()
	cfg := filepath.Join(dir, "gateway.yaml")
	y := fmt.Sprintf(`gateway: {id: gw-bench, data_dir: %s, http: "127.0.0.1:0"}
mqtt: {broker: %q}
auth: {admin_tokens: [%s], read_tokens: [%s]}
influxdb: {url: %q, bucket: %q, batch_size: 5000, flush_interval: 1s}
`, filepath.Join(dir, "data"), mq.URL, adminToken, readToken, db.URL, db.Bucket)
	if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
		b.Fatal(err)
	}
	logPath := filepath.Join(dir, "gateway.log")
	cmd, httpURL := startProcessB(b, bin, cfg, logPath)
	g := &gw{HTTP: httpURL}
	waitForB(b, 10*time.Second, func() bool {
		resp, err := http.Get(httpURL + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})

	// Agents: 4 publishers, 1,000 points each batch, over 200 points of 5 devices.
	const perBatch, agents = 1000, 4
	payloads := make([][][]byte, agents)
	ts0 := time.Now().Add(-24 * time.Hour).UnixMilli()
	clients := make([]mqtt.Client, agents)
	for a := range agents {
		id := fmt.Sprintf("bench-%d", a)
		clients[a] = agentClient(b, mq.URL, id)
		n := b.N/agents + 1
		payloads[a] = make([][]byte, n)
		for i := range n {
			bt := &wire.Batch{Site: "s", Agent: id, Seq: uint64(i + 1)}
			for j := range perBatch {
				bt.Samples = append(bt.Samples, wire.Sample{Device: fmt.Sprintf("dev-%d", j%5), Point: fmt.Sprintf("p%d", j%200),
					Value: wire.FloatValue(float64(i*perBatch + j)), TS: ts0 + int64(i)*perBatch + int64(j)})
			}
			payloads[a][i] = wire.AppendBatch(nil, bt)
		}
	}
	total := 0
	counts := make([]int, agents)
	for i := range b.N {
		counts[i%agents]++
		total += perBatch
	}
	before := metricF(b, g, "weft_gateway_points_written_total")
	// The peak of messages the gateway holds unacknowledged, sampled.
	var peakPending float64
	sampled := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(100 * time.Millisecond):
				peakPending = max(peakPending, metricF(b, g, "weft_gateway_pending_messages"))
			}
		}
	}()
	b.ResetTimer()
	start := time.Now()
	errs := make(chan error, agents)
	for a := range agents {
		go func() {
			var toks []mqtt.Token
			for i := 0; i < counts[a]; i++ {
				toks = append(toks, clients[a].Publish(topics.Data("s", fmt.Sprintf("bench-%d", a)), 1, false, payloads[a][i]))
				if len(toks) >= 50 {
					toks[0].Wait()
					toks = toks[1:]
				}
			}
			for _, t := range toks {
				t.Wait()
			}
			errs <- nil
		}()
	}
	for range agents {
		<-errs
	}
	// With WEFT_PROFILE_DIR set (the gateway inherits it), profiles are
	// taken half-way, under load, and at the end (docs/gateway.md, Profiling).
	profiling, halfway := os.Getenv(ProfileDirEnv) != "", false
	waitForB(b, 10*time.Minute, func() bool {
		done := metricF(b, g, "weft_gateway_points_written_total") - before
		if profiling && !halfway && done >= float64(total)/2 {
			halfway = true
			_ = cmd.Process.Signal(syscall.SIGUSR1)
		}
		return done >= float64(total)
	})
	elapsed := time.Since(start)
	b.StopTimer()
	close(stopSampling)
	<-sampled
	if profiling {
		_ = cmd.Process.Signal(syscall.SIGUSR1)
		time.Sleep(2 * time.Second)
	}
	hwm := peakRSS(b, cmd.Process.Pid)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	b.ReportMetric(float64(total)/elapsed.Seconds(), "points/s")
	b.ReportMetric(cpu.Seconds()/(float64(total)/1e6), "cpu-s/Mpoints")
	// Not ru.Maxrss: Linux carries the parent's peak into a child started
	// with vfork+exec, as Go starts it, so that figure was this test
	// process's size (300-430 MiB of generated payloads), not the gateway's.
	b.ReportMetric(float64(hwm)/(1<<20), "gateway-peak-rss-MiB")
	b.ReportMetric(peakPending, "peak-pending-msgs")
}

// peakRSS reads a process's peak resident set size (VmHWM) in bytes.
func peakRSS(t testing.TB, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("peak RSS of the gateway: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("peak RSS of the gateway: %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("peak RSS of the gateway: no VmHWM in /proc/%d/status", pid)
	return 0
}

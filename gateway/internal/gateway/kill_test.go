package gateway

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/weftiot/weft/internal/testbin"
	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
)

// TestMain removes the weft-gateway testbin built, if $WEFT_BIN lacked it.
func TestMain(m *testing.M) { testbin.Main(m) }

var runningRE = regexp.MustCompile(`msg="gateway running" http=(\S+)`)

// startProcess runs the gateway binary and waits for its HTTP address.
func startProcess(t *testing.T, bin, cfg, logPath string) (*exec.Cmd, string) {
	return startProcessB(t, bin, cfg, logPath)
}

func startProcessB(t testing.TB, bin, cfg, logPath string) (*exec.Cmd, string) {
	t.Helper()
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	cmd := exec.Command(bin, "run", "--config", cfg)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	var addr string
	waitFor(t, 20*time.Second, "the gateway process to listen", func() bool {
		b, _ := os.ReadFile(logPath)
		m := runningRE.FindAllSubmatch(b, -1)
		if len(m) == 0 {
			return false
		}
		addr = string(m[len(m)-1][1])
		return true
	})
	return cmd, "http://" + addr
}

// TestSIGKILLLosesNothing kills a real gateway process with SIGKILL twice
// while an agent publishes, restarts it, and counts every point in InfluxDB:
// all there, none twice.
func TestSIGKILLLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the gateway binary")
	}
	mq := testservers.Mosquitto(t, testservers.WithConfig("max_queued_messages 100000"))
	db := testservers.Influx(t)
	bin := testbin.Path(t, "weft-gateway")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(cfg, []byte(gatewayYAML(t, "gw-kill", filepath.Join(dir, "data"), mq.URL, db, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "gateway.log")
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("gateway log:\n%s", b)
		}
	})
	cmd, _ := startProcess(t, bin, cfg, logPath)
	waitFor(t, 10*time.Second, "the gateway's subscription", func() bool {
		b, _ := os.ReadFile(logPath)
		return regexp.MustCompile(`connected to the broker`).Match(b)
	})

	const batches, perBatch = 600, 200
	ag := agentClient(t, mq.URL, "k1")
	ts := time.Now().Add(-2 * time.Hour).UnixMilli()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for seq := uint64(1); seq <= batches; seq++ {
			tok := ag.Publish(topics.Data("s", "k1"), 1, false, wire.AppendBatch(nil, floatBatch("s", "k1", seq, perBatch, 50, ts+int64(seq)*perBatch)))
			if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
				t.Errorf("publish %d: %v", seq, tok.Error())
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	for kill := 1; kill <= 2; kill++ {
		// Kill once some data is in InfluxDB, mid-stream.
		want := int64(kill * batches * perBatch / 4)
		waitFor(t, 60*time.Second, fmt.Sprintf("%d points before kill %d", want, kill), func() bool {
			return countValues(t, db, "value", "") >= want
		})
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		t.Logf("kill %d at %d points in InfluxDB", kill, countValues(t, db, "value", ""))
		time.Sleep(500 * time.Millisecond)
		cmd, _ = startProcess(t, bin, cfg, logPath)
	}
	<-done
	waitFor(t, 60*time.Second, "every point after two SIGKILLs", func() bool {
		return countValues(t, db, "value", "") == batches*perBatch
	})
	// Every batch's first point is there with its value: nothing lost, and
	// count() being exact means nothing stored twice.
	if n := countValues(t, db, "value", `point = 'p0'`); n != batches*perBatch/50 {
		t.Errorf("point p0: %d samples, want %d", n, batches*perBatch/50)
	}
}

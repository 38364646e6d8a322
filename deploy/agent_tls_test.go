package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/weftiot/weft/wire"
)

// TestAgentThroughBrokerACL runs the real weft-agent, with its certificate
// from make-plant-pki.sh, against Mosquitto with the shipped config and ACL,
// polling a simulated PLC (weft-sim). Everything the agent publishes (data,
// status, health) must get through the ACL and reach a client with the
// gateway's certificate: if the agent's topics and the ACL disagree, nothing
// arrives and the test fails.
func TestAgentThroughBrokerACL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs weft-agent and weft-sim; skipped with -short")
	}
	pki := plantPKI(t)
	url := startBroker(t, "mosquitto.conf", pki, nil)
	agentBin := buildCmd(t, "agent/cmd/weft-agent", hostArch())
	simBin := buildCmd(t, "sim/cmd/weft-sim", hostArch())

	simPort := freePort(t)
	startChild(t, "weft-sim", simBin, "--modbus", fmt.Sprintf("127.0.0.1:%d", simPort), "--profile", "counter", "--tick", "100ms")

	gw := mustConnect(t, url, "weft-gateway-1", clientTLS(t, pki, "weft-gateway"), "", "")
	got := make(chan mqtt.Message, 100)
	for _, f := range []string{"weft/v1/+/+/data", "weft/v1/+/+/status", "weft/v1/+/+/health"} {
		tok := gw.Subscribe(f, 1, func(_ mqtt.Client, m mqtt.Message) { got <- m })
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", f, tok.Error())
		}
	}

	dir := t.TempDir()
	cfg := fmt.Sprintf(`agent: {id: %s, site: %s, data_dir: %s, health_interval: 1s}
mqtt:
  broker: %s
  tls: {ca: %s, cert: %s, key: %s}
batch: {flush_interval: 200ms}
devices:
  - id: counter1
    protocol: modbus
    interval: 200ms
    modbus: {target: tcp://127.0.0.1:%d}
    points: [{name: count, table: holding, address: 0, type: uint64}]
`, agentA, site, filepath.Join(dir, "data"), url, filepath.Join(pki, "ca.crt"),
		filepath.Join(pki, "agents", agentA+".crt"), filepath.Join(pki, "agents", agentA+".key"), simPort)
	cfgPath := filepath.Join(dir, "agent.yaml")
	writeFile(t, cfgPath, cfg, 0o640)
	run(t, dir, nil, agentBin, "config", "check", cfgPath)
	startChild(t, "weft-agent", agentBin, "run", "--config", cfgPath)

	want := map[string]bool{topic(agentA, "data"): false, topic(agentA, "status"): false, topic(agentA, "health"): false}
	deadline := time.After(30 * time.Second)
	for seen := 0; seen < len(want); {
		select {
		case m := <-got:
			done, ok := want[m.Topic()]
			if !ok {
				t.Errorf("the gateway got a message on %s, not a topic of agent %s", m.Topic(), agentA)
				continue
			}
			if m.Topic() == topic(agentA, "data") {
				var b wire.Batch
				if err := wire.DecodeBatch(m.Payload(), &b); err != nil {
					t.Fatalf("data from the agent: %v", err)
				}
				if err := wire.CheckTopic(&b, site, agentA); err != nil {
					t.Fatal(err)
				}
				if len(b.Samples) == 0 || b.Samples[0].Device != "counter1" || b.Samples[0].Point != "count" {
					t.Fatalf("data from the agent: %+v; want samples of counter1/count", b.Samples)
				}
			}
			if !done {
				want[m.Topic()] = true
				seen++
			}
		case <-deadline:
			t.Fatalf("after 30 s the gateway had seen %v of agent %s's topics (true = arrived); the agent's log is above", want, agentA)
		}
	}
}

// startChild starts a binary whose output goes to the test log, and stops
// it with SIGTERM when the test ends.
func startChild(t *testing.T, name, bin string, args ...string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); f.Close(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, strings.TrimSpace(mustRead(t, logPath)))
		}
	})
}

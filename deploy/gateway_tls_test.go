package deploy

import (
	"bufio"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftiot/weft/wire"
)

// misconfiguredACL lets agent A and the gateway publish and read
// everything: the mistake an operator could make, for the defence-in-depth
// test.
const misconfiguredACL = "user " + agentA + "\ntopic readwrite weft/v1/#\nuser weft-gateway\ntopic readwrite weft/v1/#\n"

// TestGatewayThroughBrokerACL runs the real weft-gateway with the gateway
// certificate against Mosquitto with the shipped config, once with the
// shipped ACL and once with an ACL that lets anyone write anything. Agent A
// publishes a good batch, a batch on its own topic that claims to be agent
// B, and (where the broker lets it) a batch on B's topic that says it is
// A. The gateway stores the good one and counts both spoofs as mismatches,
// whatever the ACL.
func TestGatewayThroughBrokerACL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs weft-gateway; skipped with -short")
	}
	pki := plantPKI(t)
	gwBin := buildCmd(t, "gateway/cmd/weft-gateway", hostArch())
	for _, c := range []struct {
		name  string
		extra map[string]string
	}{
		{"shipped ACL", nil},
		{"misconfigured ACL", map[string]string{"weft.acl": misconfiguredACL}},
	} {
		t.Run(c.name, func(t *testing.T) {
			url := startBroker(t, "mosquitto.conf", pki, c.extra)
			dir := t.TempDir()
			httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			const token = "deploy-test-read-token-0123456789"
			cfg := fmt.Sprintf(`gateway: {id: gw-1, data_dir: %s, http: "%s"}
mqtt:
  broker: %s
  tls: {ca: %s, cert: %s, key: %s}
auth: {admin_tokens: ["deploy-test-admin-token-0123456789"], read_tokens: ["%s"]}
`, filepath.Join(dir, "data"), httpAddr, url, filepath.Join(pki, "ca.crt"),
				filepath.Join(pki, "weft-gateway.crt"), filepath.Join(pki, "weft-gateway.key"), token)
			cfgPath := filepath.Join(dir, "gateway.yaml")
			writeFile(t, cfgPath, cfg, 0o640)
			run(t, dir, nil, gwBin, "config", "check", cfgPath)
			startChild(t, "weft-gateway", gwBin, "run", "--config", cfgPath)

			metric := func(name string) (float64, error) {
				req, _ := http.NewRequest("GET", "http://"+httpAddr+"/metrics", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return 0, err
				}
				defer resp.Body.Close()
				sc := bufio.NewScanner(resp.Body)
				sc.Buffer(make([]byte, 1<<20), 1<<20)
				for sc.Scan() {
					if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
						return strconv.ParseFloat(rest, 64)
					}
				}
				return 0, nil
			}
			waitMetric := func(name string, want float64) {
				t.Helper()
				deadline := time.Now().Add(30 * time.Second)
				for {
					got, err := metric(name)
					if err == nil && got == want {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s = %v (%v); want %v", name, got, err, want)
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
			// The gateway is subscribed once it has counted the retained
			// status of a first agent.
			a := mustConnect(t, url, agentA, clientTLS(t, pki, "agents/"+agentA), "", "")
			ts := time.Now().UnixMilli()
			batch := func(agent string, seq uint64) []byte {
				return wire.AppendBatch(nil, &wire.Batch{Agent: agent, Site: site, Seq: seq,
					Samples: []wire.Sample{{Device: "dye", Point: "bath_temp", TS: ts + int64(seq), Value: wire.FloatValue(85.5)}}})
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				// Good batches until the gateway has one stored: before
				// that it may not have subscribed yet.
				pub(t, a, topic(agentA, "data"), string(batch(agentA, 1)))
				if n, _ := metric(`weft_gateway_messages_total{outcome="stored"}`); n >= 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the gateway stored no batch of agent A within 30 s")
				}
				time.Sleep(200 * time.Millisecond)
			}

			// On its own topic, a batch that claims agent B.
			pub(t, a, topic(agentA, "data"), string(batch(agentB, 2)))
			waitMetric(`weft_gateway_messages_total{outcome="mismatch"}`, 1)

			// On B's topic, a batch that says it is A: the shipped ACL
			// drops it at the broker; a broker that lets it through
			// still does not get it stored as B's.
			pub(t, a, topic(agentB, "data"), string(batch(agentA, 3)))
			if c.extra != nil {
				waitMetric(`weft_gateway_messages_total{outcome="mismatch"}`, 2)
			} else {
				// A good batch after it: once it is stored, the spoof
				// would have been counted.
				stored, _ := metric(`weft_gateway_messages_total{outcome="stored"}`)
				pub(t, a, topic(agentA, "data"), string(batch(agentA, 4)))
				waitMetric(`weft_gateway_messages_total{outcome="stored"}`, stored+1)
				if n, _ := metric(`weft_gateway_messages_total{outcome="mismatch"}`); n != 1 {
					t.Errorf("mismatches %v; want 1: the spoof on B's topic got past the shipped ACL", n)
				}
			}
		})
	}
}

package gateway

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	bolt "go.etcd.io/bbolt"

	"github.com/weftiot/weft/gateway/internal/registry"
	"github.com/weftiot/weft/wire"
)

// TestEmbeddedBrokerRestartWithAgentsWills stops a gateway in embedded mode
// while agents are connected: the broker closes their connections, their
// wills (offline status, QoS 1, retained) go to the gateway's persistent
// session, which is no longer connected, and broker.db keeps them as in-flight
// messages. A gateway started again on the same data_dir must resume that
// session, get the wills, acknowledge them and become ready; the agents come
// back on the same port and the registry sees them online again.
// (mochi v2.7.9's bolt hook loses the packet ids of in-flight messages; see
// gateway/internal/broker/store.go.)
func TestEmbeddedBrokerRestartWithAgentsWills(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	y := fmt.Sprintf(`gateway: {id: gw-r, data_dir: %s, http: "127.0.0.1:0", embedded_listen: "127.0.0.1:%d"}
mqtt: {broker: embedded, topic_prefix: weft/v1, shared_group: weft-gateway}
auth: {admin_tokens: [%s], read_tokens: [%s]}
alerts: {offline_after: 2m, backlog_age_after: 10m}
`, dir, port, adminToken, readToken)
	const site = "s"
	agents := []string{"dye-01-gw", "loom-01-gw"}

	g1 := startGateway(t, y)
	var clients []mqtt.Client
	for _, id := range agents {
		clients = append(clients, persistentAgent(t, g1.Broker, site, id))
	}
	for _, id := range agents {
		waitFor(t, 20*time.Second, id+" online in the registry", func() bool { return agentState(t, g1, site, id) == wire.Online })
	}
	g1.stop()

	// The wills are in broker.db as the gateway session's in-flight
	// messages: that is the case under test, not an empty file.
	if n := inflightFor(t, filepath.Join(dir, "broker.db"), "gw-r"); n < len(agents) {
		t.Fatalf("broker.db holds %d in-flight messages for the gateway, want the %d wills", n, len(agents))
	}

	g2 := startGateway(t, y) // fails here if the broker resets the gateway's connection
	// The gateway got the two wills from its session (in flight) and the two
	// retained offline statuses when it subscribed.
	statuses := func() float64 {
		return metric(t, g2, `weft_gateway_control_messages_total{kind="status",outcome="ok"}`) +
			metric(t, g2, `weft_gateway_control_messages_total{kind="status",outcome="ignored"}`)
	}
	waitFor(t, 10*time.Second, "the wills in flight and the retained statuses", func() bool { return statuses() >= float64(2*len(agents)) })
	time.Sleep(200 * time.Millisecond)
	if n := statuses(); n != float64(2*len(agents)) {
		t.Errorf("the restarted gateway got %v status messages, want %d (each agent's will, resent, and its retained status)", n, 2*len(agents))
	}
	for _, id := range agents {
		if st := agentState(t, g2, site, id); st != wire.Offline {
			t.Errorf("%s is %q after the restart, want offline (its will)", id, st)
		}
	}
	// The agents come back and say online again.
	for i, c := range clients {
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("agent %s: reconnect: %v", agents[i], tok.Error())
		}
	}
	for _, id := range agents {
		waitFor(t, 20*time.Second, id+" online again", func() bool { return agentState(t, g2, site, id) == wire.Online })
	}
	if p := metric(t, g2, "weft_gateway_pending_messages"); p != 0 {
		t.Errorf("pending messages %v after the restart, want 0", p)
	}
	// Still ready after a while: a broker that resets the session on resend
	// would have dropped the connection by now.
	time.Sleep(time.Second)
	if st := apiDo(t, "GET", g2.HTTP+"/healthz", "", "", nil); st != 200 {
		t.Fatalf("healthz after the restart: HTTP %d", st)
	}
	// The agents leave cleanly (no will this time) and the gateway stops:
	// every will of the first stop was acknowledged by the restarted
	// gateway, so nothing is left in flight for it (a message the broker
	// could not send would stay).
	for _, c := range clients {
		c.Disconnect(250)
	}
	time.Sleep(200 * time.Millisecond) // the broker handles the DISCONNECTs
	g2.stop()
	if n := inflightFor(t, filepath.Join(dir, "broker.db"), "gw-r"); n != 0 {
		t.Errorf("broker.db still holds %d in-flight messages for the gateway after it ran again", n)
	}
}

// persistentAgent connects as weft-agent does: persistent session, its
// offline status as a retained QoS 1 will, online status on every connect.
// Unlike weft-agent it does not reconnect by itself: the test says when.
func persistentAgent(t *testing.T, broker, site, id string) mqtt.Client {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID(id).SetCleanSession(false).
		SetBinaryWill(topics.Status(site, id), statusMsg(site, id, wire.Offline), 1, true).
		SetAutoReconnect(false).
		SetOnConnectHandler(func(c mqtt.Client) {
			c.Publish(topics.Status(site, id), 1, true, statusMsg(site, id, wire.Online))
		})
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("agent %s: connect %s: %v", id, broker, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func agentState(t *testing.T, g *gw, site, id string) string {
	t.Helper()
	var a struct{ Agent registry.Agent }
	if apiDo(t, "GET", g.HTTP+"/api/v1/agents/"+site+"/"+id, readToken, "", &a) != 200 {
		return ""
	}
	return a.Agent.State
}

// inflightFor counts the in-flight messages broker.db keeps for a client
// (mochi's bolt hook: keys IFM_{client}:{packet id} in bucket "mochi").
func inflightFor(t *testing.T, path, client string) int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	n := 0
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("mochi"))
		if b == nil {
			return fmt.Errorf("no bucket mochi in %s", path)
		}
		return b.ForEach(func(k, v []byte) error {
			if !strings.HasPrefix(string(k), "IFM_"+client+":") {
				return nil
			}
			var m struct {
				Client string `json:"client"`
			}
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			if m.Client == client {
				n++
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

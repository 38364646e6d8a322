package deploy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// The tests below run the shipped broker config (deploy/mosquitto) in a
// real Mosquitto, with certificates from the shipped script
// (deploy/pki/make-plant-pki.sh). Only paths and the port are rewritten:
// files into a temp dir, and the listener onto a free 127.0.0.1 port.

const (
	site   = "weihai-textile-park"
	agentA = "dye-01"
	agentB = "dye-02"
)

// plantPKI runs make-plant-pki.sh for agents A and B into a temp dir.
func plantPKI(t *testing.T) string {
	t.Helper()
	need(t, "openssl", "openssl")
	dir := filepath.Join(t.TempDir(), "pki")
	run(t, repoRoot(t), nil, "./deploy/pki/make-plant-pki.sh", "-o", dir, agentA, agentB)
	return dir
}

// startBroker starts Mosquitto the way Debian runs it: a main
// mosquitto.conf like Debian's (persistence on, include_dir conf.d) and
// the shipped config file conf dropped into conf.d, with its paths pointed
// into a temp dir (where the PKI files and weft.acl are copied) and its
// listener onto a free 127.0.0.1 port. It returns the ssl:// URL. The broker
// is stopped at the end of the test, and its log shown if the test failed.
func startBroker(t *testing.T, conf, pki string, extra map[string]string) string {
	t.Helper()
	bin := os.Getenv("WEFT_MOSQUITTO")
	if bin == "" {
		bin = need(t, "mosquitto", "mosquitto")
	}
	dir := t.TempDir()
	etc := filepath.Join(dir, "etc")
	files := map[string]string{
		"ca.crt": filepath.Join(pki, "ca.crt"), "broker.crt": filepath.Join(pki, "broker.crt"),
		"broker.key": filepath.Join(pki, "broker.key"), "weft.acl": filepath.Join(repoRoot(t), "deploy/mosquitto/weft.acl"),
	}
	for name, src := range files {
		writeFile(t, filepath.Join(etc, name), mustRead(t, src), 0o600)
	}
	for name, text := range extra {
		writeFile(t, filepath.Join(etc, name), text, 0o600)
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	text := mustRead(t, filepath.Join(repoRoot(t), "deploy/mosquitto", conf))
	for _, must := range []string{"/etc/mosquitto/weft/", "\nlistener 8883\n"} {
		if !strings.Contains(text, must) {
			t.Fatalf("%s has no %q: the test no longer knows how to relocate it", conf, must)
		}
	}
	text = strings.NewReplacer(
		"/etc/mosquitto/weft/", etc+"/",
		"\nlistener 8883\n", fmt.Sprintf("\nlistener %d 127.0.0.1\n", port),
	).Replace(text)
	writeFile(t, filepath.Join(dir, "conf.d", "weft.conf"), text, 0o600)

	// Debian's /etc/mosquitto/mosquitto.conf, relocated. Started as root,
	// Mosquitto would switch to the user mosquitto, who cannot read this
	// test's files: "user root" keeps it.
	var main strings.Builder
	if os.Geteuid() == 0 {
		main.WriteString("user root\n")
	}
	fmt.Fprintf(&main, "persistence true\npersistence_location %s/\n", filepath.Join(dir, "data"))
	main.WriteString("log_dest stderr\nlog_type all\nconnection_messages true\n")
	fmt.Fprintf(&main, "include_dir %s\n", filepath.Join(dir, "conf.d"))
	confPath := filepath.Join(dir, "mosquitto.conf")
	writeFile(t, confPath, main.String(), 0o600)

	logPath := filepath.Join(dir, "mosquitto.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", confPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", mustRead(t, logPath))
		}
	})
	// Ready when Mosquitto says it runs: it logs that after opening its
	// listeners. (A TCP probe would leave an OpenSSL error in the log.)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(mustRead(t, logPath), " running\n") {
		select {
		case <-exited:
			t.Fatalf("mosquitto exited at start:\n%s", mustRead(t, logPath))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto does not run on %s:\n%s", addr, mustRead(t, logPath))
		}
	}
	log := strings.ReplaceAll(mustRead(t, logPath), "Warning: Mosquitto should not be run as root", "")
	if strings.Contains(log, "Warning") || strings.Contains(log, "Error") {
		t.Errorf("mosquitto complains about %s:\n%s", conf, log)
	}
	return "ssl://" + addr
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

// clientTLS is a TLS config trusting the plant CA, with the client
// certificate certName (a path without .crt/.key) unless it is "".
func clientTLS(t *testing.T, pki, certName string) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(mustRead(t, filepath.Join(pki, "ca.crt")))) {
		t.Fatal("ca.crt holds no certificate")
	}
	c := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if certName != "" {
		cert, err := tls.LoadX509KeyPair(filepath.Join(pki, certName+".crt"), filepath.Join(pki, certName+".key"))
		if err != nil {
			t.Fatal(err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c
}

// received collects the messages a client gets, by topic, in order.
type received struct {
	mu   sync.Mutex
	msgs []string // "topic payload"
	ch   chan string
}

func newReceived() *received { return &received{ch: make(chan string, 100)} }

func (r *received) handler(_ mqtt.Client, m mqtt.Message) {
	s := m.Topic() + " " + string(m.Payload())
	r.mu.Lock()
	r.msgs = append(r.msgs, s)
	r.mu.Unlock()
	r.ch <- s
}

// waitFor waits until msg arrives and returns everything that came before
// it. MQTT keeps the order of one publisher's QoS 1 messages to one
// subscriber, so a denied message published before msg that had got
// through would be among them.
func (r *received) waitFor(t *testing.T, who, msg string) []string {
	t.Helper()
	var before []string
	timeout := time.After(10 * time.Second)
	for {
		select {
		case s := <-r.ch:
			if s == msg {
				return before
			}
			before = append(before, s)
		case <-timeout:
			t.Fatalf("%s never got %q (got %q)", who, msg, before)
			return nil
		}
	}
}

func connect(t *testing.T, url, id string, tc *tls.Config, user, pass string) (mqtt.Client, error) {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetTLSConfig(tc).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second)
	if user != "" {
		o.SetUsername(user).SetPassword(pass)
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("%s: connect %s: timed out", id, url)
	}
	if tok.Error() != nil {
		return nil, fmt.Errorf("%s: connect %s: %w", id, url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

func mustConnect(t *testing.T, url, id string, tc *tls.Config, user, pass string) mqtt.Client {
	t.Helper()
	c, err := connect(t, url, id, tc, user, pass)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pub(t *testing.T, c mqtt.Client, topic, payload string) {
	t.Helper()
	// A denied QoS 1 publish is still acknowledged by Mosquitto (MQTT 3.1.1
	// has no way to refuse it): the message is dropped silently.
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func sub(t *testing.T, c mqtt.Client, filter string, r *received) {
	t.Helper()
	tok := c.Subscribe(filter, 1, r.handler)
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("subscribe %s: timed out", filter)
	}
	// A denied subscription is answered with failure code 0x80 by
	// Mosquitto 2.0; what matters below is that nothing is delivered.
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		t.Logf("subscribe %s: granted %v", filter, st.Result())
	}
}

func topic(agent, kind string) string { return "weft/v1/" + site + "/" + agent + "/" + kind }

// checkACL is the part both broker setups share: each agent publishes only
// as itself, reads only its own commands, and the gateway reads everything.
// clients: "A", "B", "gw", "gw2", "gw3" connected with the identities of
// agent A, agent B and the gateway (three times, with different client ids).
func checkACL(t *testing.T, clients map[string]mqtt.Client) {
	a, b, gw, gw2, gw3 := clients["A"], clients["B"], clients["gw"], clients["gw2"], clients["gw3"]

	// The gateway reads every agent's data, status, health and replies.
	gwAll := newReceived()
	for _, f := range []string{"weft/v1/+/+/data", "weft/v1/+/+/status", "weft/v1/+/+/health", "weft/v1/+/+/reply/+"} {
		sub(t, gw, f, gwAll)
	}
	// Agent B listens on its own commands, and on its data topic as a
	// (misconfigured) reader would, to see whether A's spoof lands there.
	bCmd := newReceived()
	sub(t, b, "weft/v1/+/"+agentB+"/cmd/+", bCmd)
	// Agent A tries to read B's commands, and everything.
	aSpy := newReceived()
	sub(t, a, "weft/v1/+/"+agentB+"/cmd/+", aSpy)
	sub(t, a, "#", aSpy)
	sub(t, a, "weft/v1/+/"+agentA+"/cmd/+", aSpy)

	t.Run("agent A cannot publish as agent B", func(t *testing.T) {
		for _, kind := range []string{"data", "status", "health", "reply/r1"} {
			pub(t, a, topic(agentB, kind), "spoof from A")
		}
		pub(t, a, "weft/v1/other-site/"+agentB+"/data", "spoof from A")
		// A may publish its own; once that arrives, the spoofs would have.
		for _, kind := range []string{"data", "status", "health", "reply/r1"} {
			pub(t, a, topic(agentA, kind), "A's own "+kind)
		}
		got := gwAll.waitFor(t, "the gateway", topic(agentA, "reply/r1")+" A's own reply/r1")
		for _, s := range got {
			if strings.Contains(s, "spoof") {
				t.Errorf("the gateway received a spoofed message: %q", s)
			}
		}
		if len(got) != 3 {
			t.Errorf("the gateway got %q before A's reply; want A's own data, status and health", got)
		}
	})

	t.Run("agent A cannot command agent B", func(t *testing.T) {
		pub(t, a, topic(agentB, "cmd/config"), "spoofed command from A")
		pub(t, gw, topic(agentB, "cmd/status"), "from the gateway")
		if got := bCmd.waitFor(t, "agent B", topic(agentB, "cmd/status")+" from the gateway"); len(got) != 0 {
			t.Errorf("agent B received %q: another agent could command it", got)
		}
	})

	t.Run("agent A cannot read agent B's commands or data", func(t *testing.T) {
		pub(t, gw, topic(agentB, "cmd/rebirth"), "for B only")
		pub(t, b, topic(agentB, "data"), "B's data")
		pub(t, gw, topic(agentA, "cmd/status"), "for A")
		got := aSpy.waitFor(t, "agent A", topic(agentA, "cmd/status")+" for A")
		for _, s := range got {
			if strings.Contains(s, agentB) {
				t.Errorf("agent A read %q, a message of agent B", s)
			}
		}
	})

	t.Run("the gateway reads agent B's data too", func(t *testing.T) {
		// B's data reaches the gateway (it was published above, after the
		// spoofs of the first subtest had been checked).
		pub(t, b, topic(agentB, "health"), "B's health")
		got := gwAll.waitFor(t, "the gateway", topic(agentB, "health")+" B's health")
		found := false
		for _, s := range got {
			found = found || s == topic(agentB, "data")+" B's data"
		}
		if !found {
			t.Errorf("the gateway did not get B's data before B's health: got %q", got)
		}
	})

	t.Run("gateways share the data subscription", func(t *testing.T) {
		r1, r2 := newReceived(), newReceived()
		for _, c := range []struct {
			cl mqtt.Client
			r  *received
		}{{gw2, r1}, {gw3, r2}} {
			sub(t, c.cl, "$share/weft-gateway/weft/v1/+/+/data", c.r)
		}
		const n = 20
		for i := range n {
			pub(t, b, topic(agentB, "data"), fmt.Sprintf("shared %d", i))
		}
		seen := map[string]int{}
		timeout := time.After(10 * time.Second)
		for len(seen) < n {
			select {
			case s := <-r1.ch:
				seen[s]++
			case s := <-r2.ch:
				seen[s]++
			case <-timeout:
				t.Fatalf("the shared subscription delivered %d of %d messages", len(seen), n)
			}
		}
		for s, k := range seen {
			if k != 1 {
				t.Errorf("%q was delivered %d times to the shared group; want once", s, k)
			}
		}
	})
}

// TestBrokerCertificateACL runs deploy/mosquitto/mosquitto.conf: client
// certificates, CN as user name, weft.acl.
func TestBrokerCertificateACL(t *testing.T) {
	pki := plantPKI(t)
	url := startBroker(t, "mosquitto.conf", pki, nil)

	t.Run("a client without a certificate cannot connect", func(t *testing.T) {
		if _, err := connect(t, url, "nocert", clientTLS(t, pki, ""), "", ""); err == nil {
			t.Error("a client without a certificate connected")
		}
		// Nor with a user name and password instead.
		if _, err := connect(t, url, "nocert2", clientTLS(t, pki, ""), "weft-gateway", "guess"); err == nil {
			t.Error("a client without a certificate connected with a password")
		}
	})
	t.Run("a certificate from another CA cannot connect", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "other")
		run(t, repoRoot(t), nil, "./deploy/pki/make-plant-pki.sh", "-o", other, agentA)
		tc := clientTLS(t, pki, "")
		cert, err := tls.LoadX509KeyPair(filepath.Join(other, "weft-gateway.crt"), filepath.Join(other, "weft-gateway.key"))
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{cert}
		if _, err := connect(t, url, "forged", tc, "", ""); err == nil {
			t.Error("a gateway certificate signed by another CA connected")
		}
	})
	t.Run("a user name does not override the certificate", func(t *testing.T) {
		// A's certificate with user name weft-gateway: still A.
		c := mustConnect(t, url, "a-as-gw", clientTLS(t, pki, "agents/"+agentA), "weft-gateway", "x")
		r := newReceived()
		sub(t, c, "weft/v1/+/+/data", r)
		own := newReceived()
		sub(t, c, topic(agentA, "cmd/+"), own)
		gw := mustConnect(t, url, "gw-probe", clientTLS(t, pki, "weft-gateway"), "", "")
		b := mustConnect(t, url, "b-probe", clientTLS(t, pki, "agents/"+agentB), "", "")
		pub(t, b, topic(agentB, "data"), "B's data")
		pub(t, gw, topic(agentA, "cmd/status"), "marker")
		own.waitFor(t, "A", topic(agentA, "cmd/status")+" marker")
		select {
		case s := <-r.ch:
			t.Errorf("agent A with user name weft-gateway read %q", s)
		default:
		}
	})

	clients := map[string]mqtt.Client{
		"A":   mustConnect(t, url, agentA, clientTLS(t, pki, "agents/"+agentA), "", ""),
		"B":   mustConnect(t, url, agentB, clientTLS(t, pki, "agents/"+agentB), "", ""),
		"gw":  mustConnect(t, url, "weft-gateway-1", clientTLS(t, pki, "weft-gateway"), "", ""),
		"gw2": mustConnect(t, url, "weft-gateway-2", clientTLS(t, pki, "weft-gateway"), "", ""),
		"gw3": mustConnect(t, url, "weft-gateway-3", clientTLS(t, pki, "weft-gateway"), "", ""),
	}
	checkACL(t, clients)
}

// TestBrokerPasswordACL runs deploy/mosquitto/mosquitto-passwords.conf:
// TLS without client certificates, a password file made by the real
// mosquitto_passwd, the same weft.acl.
func TestBrokerPasswordACL(t *testing.T) {
	pki := plantPKI(t)
	mp := need(t, "mosquitto_passwd", "mosquitto")
	pw := filepath.Join(t.TempDir(), "passwords")
	users := map[string]string{agentA: "pa-" + agentA, agentB: "pb-" + agentB, "weft-gateway": "pg-gw"}
	first := true
	for u, p := range users {
		args := []string{"-b", pw, u, p}
		if first {
			args = append([]string{"-c"}, args...)
			first = false
		}
		run(t, "", nil, mp, args...)
	}
	url := startBroker(t, "mosquitto-passwords.conf", pki, map[string]string{"passwords": mustRead(t, pw)})

	t.Run("a wrong password cannot connect", func(t *testing.T) {
		if _, err := connect(t, url, "bad", clientTLS(t, pki, ""), agentB, "pa-"+agentA); err == nil {
			t.Error("agent B's name with A's password connected")
		}
		if _, err := connect(t, url, "anon", clientTLS(t, pki, ""), "", ""); err == nil {
			t.Error("an anonymous client connected")
		}
	})
	tc := func() *tls.Config { return clientTLS(t, pki, "") }
	clients := map[string]mqtt.Client{
		"A":   mustConnect(t, url, agentA, tc(), agentA, users[agentA]),
		"B":   mustConnect(t, url, agentB, tc(), agentB, users[agentB]),
		"gw":  mustConnect(t, url, "weft-gateway-1", tc(), "weft-gateway", users["weft-gateway"]),
		"gw2": mustConnect(t, url, "weft-gateway-2", tc(), "weft-gateway", users["weft-gateway"]),
		"gw3": mustConnect(t, url, "weft-gateway-3", tc(), "weft-gateway", users["weft-gateway"]),
	}
	checkACL(t, clients)
}

// TestPKIScript checks the certificates: signed by the CA, the broker's
// names, client and server usages, keys not readable by others, and ids
// that are not topic-safe refused.
func TestPKIScript(t *testing.T) {
	pki := plantPKI(t)
	for _, f := range []string{"ca.key", "broker.key", "weft-gateway.key", "agents/" + agentA + ".key"} {
		st, err := os.Stat(filepath.Join(pki, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v; want 0600", f, st.Mode().Perm())
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(mustRead(t, filepath.Join(pki, "ca.crt"))))
	load := func(f string) *x509.Certificate {
		pair, err := tls.LoadX509KeyPair(filepath.Join(pki, f+".crt"), filepath.Join(pki, f+".key"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	broker := load("broker")
	if _, err := broker.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
		t.Errorf("broker certificate for localhost: %v", err)
	}
	if err := broker.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("broker certificate for 127.0.0.1: %v", err)
	}
	for _, f := range []string{"weft-gateway", "agents/" + agentA} {
		c := load(f)
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s as a client certificate: %v", f, err)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
			t.Errorf("%s is also good as a server certificate", f)
		}
	}
	if cn := load("agents/" + agentA).Subject.CommonName; cn != agentA {
		t.Errorf("agent certificate CN %q; want the agent id %q", cn, agentA)
	}

	// A second run adds an agent and keeps everything else.
	before := mustRead(t, filepath.Join(pki, "agents/"+agentA+".crt"))
	out := run(t, repoRoot(t), nil, "./deploy/pki/make-plant-pki.sh", "-o", pki, agentA, "dye-03")
	if mustRead(t, filepath.Join(pki, "agents/"+agentA+".crt")) != before || !strings.Contains(out, "kept") {
		t.Errorf("a second run replaced %s's certificate:\n%s", agentA, out)
	}
	if _, err := load("agents/dye-03").Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("an agent added later is not signed by the same CA: %v", err)
	}

	for _, bad := range []string{"dye/01", "dye+", "#", "weft-gateway"} {
		out, err := runErr(repoRoot(t), nil, "./deploy/pki/make-plant-pki.sh", "-o", t.TempDir(), bad)
		if err == nil {
			t.Errorf("make-plant-pki.sh accepted agent id %q:\n%s", bad, out)
		}
	}
}

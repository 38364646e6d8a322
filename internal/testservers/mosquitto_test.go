package testservers

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// connect returns a connected paho client or the connection error.
func connect(url, user, pass string, tlsConf *tls.Config) (mqtt.Client, error) {
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID("test-" + rand.Text()[:8]).
		SetUsername(user).SetPassword(pass).SetConnectTimeout(5 * time.Second).
		SetAutoReconnect(false).SetConnectRetry(false)
	if tlsConf != nil {
		o.SetTLSConfig(tlsConf)
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	return c, nil
}

func mustConnect(t *testing.T, url string) mqtt.Client {
	t.Helper()
	c, err := connect(url, "", "", nil)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// readRetained subscribes to topic and returns the retained payload, or ""
// after a second.
func readRetained(t *testing.T, c mqtt.Client, topic string) string {
	t.Helper()
	got := make(chan string, 1)
	tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- string(m.Payload()):
		default:
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", topic, tok.Error())
	}
	defer c.Unsubscribe(topic)
	select {
	case s := <-got:
		return s
	case <-time.After(time.Second):
		return ""
	}
}

func TestMosquittoStartStopRestart(t *testing.T) {
	b := Mosquitto(t)
	if !strings.HasPrefix(b.URL, "tcp://127.0.0.1:") || b.URL != "tcp://"+b.Addr {
		t.Fatalf("URL %q Addr %q", b.URL, b.Addr)
	}
	c := mustConnect(t, b.URL)
	tok := c.Publish("weft/test/retained", 1, true, "kept")
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	c.Disconnect(100)

	b.Stop()
	if _, err := net.DialTimeout("tcp", b.Addr, time.Second); err == nil {
		t.Fatalf("%s still accepts connections after Stop", b.Addr)
	}
	b.Stop() // a second Stop does nothing

	b.Start()
	c2 := mustConnect(t, b.URL)
	if got := readRetained(t, c2, "weft/test/retained"); got != "kept" {
		t.Fatalf("retained message after restart = %q, want %q (persistence lost?)", got, "kept")
	}
	if !strings.Contains(b.Log(), "mosquitto version") {
		t.Errorf("log does not show Mosquitto's start:\n%s", b.Log())
	}
}

func TestMosquittoKillLosesUnsaved(t *testing.T) {
	b := Mosquitto(t)
	c := mustConnect(t, b.URL)
	if tok := c.Publish("weft/test/unsaved", 1, true, "x"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	c.Disconnect(100)
	b.Kill()
	b.Start()
	// Mosquitto saves persistence on a clean exit only (autosave is 30 min):
	// after a SIGKILL the retained message is gone. This is what crash tests
	// of the broker side rely on.
	if got := readRetained(t, mustConnect(t, b.URL), "weft/test/unsaved"); got != "" {
		t.Fatalf("retained message survived SIGKILL: %q", got)
	}
}

func TestMosquittoTwoBrokers(t *testing.T) {
	a, b := Mosquitto(t), Mosquitto(t)
	if a.Addr == b.Addr || a.Dir == b.Dir {
		t.Fatalf("two brokers share %s / %s", a.Addr, a.Dir)
	}
}

func TestMosquittoPasswordsAndACL(t *testing.T) {
	b := Mosquitto(t,
		WithPasswords(map[string]string{"agent": "s3cret", "gw": "other"}),
		WithACL("user agent\ntopic write weft/v1/s/agent/#\n\nuser gw\ntopic read weft/v1/#\n"))
	if _, err := connect(b.URL, "", "", nil); err == nil {
		t.Fatal("anonymous client was let in")
	}
	if _, err := connect(b.URL, "agent", "wrong", nil); err == nil {
		t.Fatal("wrong password was let in")
	}
	agent, err := connect(b.URL, "agent", "s3cret", nil)
	if err != nil {
		t.Fatalf("agent with its password: %v", err)
	}
	defer agent.Disconnect(100)
	gw, err := connect(b.URL, "gw", "other", nil)
	if err != nil {
		t.Fatalf("gw with its password: %v", err)
	}
	defer gw.Disconnect(100)
	got := make(chan string, 4)
	if tok := gw.Subscribe("weft/v1/#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m.Topic() }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	// The ACL drops the write outside the agent's subtree silently (MQTT 3.1.1
	// has no way to say no to a publish); the allowed one arrives.
	agent.Publish("weft/v1/s/other/data", 1, false, "x").WaitTimeout(5 * time.Second)
	agent.Publish("weft/v1/s/agent/data", 1, false, "x").WaitTimeout(5 * time.Second)
	select {
	case topic := <-got:
		if topic != "weft/v1/s/agent/data" {
			t.Fatalf("got %s: the ACL let a foreign topic through", topic)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the allowed publish did not arrive")
	}
}

func TestMosquittoTLS(t *testing.T) {
	dir := t.TempDir()
	files, pool := makeCerts(t, dir)
	b := Mosquitto(t, WithTLS(files))
	if !strings.HasPrefix(b.TLSURL, "ssl://127.0.0.1:") {
		t.Fatalf("TLSURL = %q", b.TLSURL)
	}
	c, err := connect(b.TLSURL, "", "", &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS connect: %v", err)
	}
	c.Disconnect(100)
	if _, err := connect(b.TLSURL, "", "", &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "127.0.0.1"}); err == nil {
		t.Fatal("TLS connect with an unknown CA succeeded")
	}
	// The plain listener is still there.
	mustConnect(t, b.URL)
}

// makeCerts writes a CA and a server certificate for 127.0.0.1.
func makeCerts(t *testing.T, dir string) (TLSFiles, *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "weft test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	f := TLSFiles{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "server.pem"), Key: filepath.Join(dir, "server.key")}
	for path, block := range map[string]*pem.Block{
		f.CA: {Type: "CERTIFICATE", Bytes: caDER}, f.Cert: {Type: "CERTIFICATE", Bytes: der}, f.Key: {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return f, pool
}

// TestMosquittoQueuesForAnOfflineSession: a persistent session's plain
// subscription and the QoS 1 messages queued for it while its client is
// away survive a broker restart, beyond Mosquitto's default queue of 1000
// messages (the generated config raises it, as the shipped one does).
func TestMosquittoQueuesForAnOfflineSession(t *testing.T) {
	b := Mosquitto(t)
	const n = 1500
	var got atomic.Int64
	opts := mqtt.NewClientOptions().AddBroker(b.URL).SetClientID("gw-queue").SetCleanSession(false).
		SetAutoReconnect(false).SetConnectRetry(false).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { got.Add(1) })
	sub := mqtt.NewClient(opts)
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	if tok := sub.Subscribe("weft/+/data", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	sub.Disconnect(100)

	pub := mustConnect(t, b.URL)
	for i := 0; i < n; i++ {
		if tok := pub.Publish("weft/a1/data", 1, false, "x"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	pub.Disconnect(100)
	b.Stop()
	b.Start()

	sub = mqtt.NewClient(opts)
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("reconnect: %v", tok.Error())
	}
	defer sub.Disconnect(100)
	deadline := time.Now().Add(10 * time.Second)
	for got.Load() < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // nothing more should come
	if g := got.Load(); g != n {
		t.Errorf("the session received %d of the %d messages queued for it across the restart; want all", g, n)
	}
}

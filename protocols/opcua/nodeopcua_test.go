package opcua

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftiot/weft/internal/testlog"
	"github.com/weftiot/weft/wire"
)

// nodeOPCUA is a node-opcua server (testdata/nodeopcua/server.js) run by a
// test: an independent OPC UA implementation that opens Sign and
// SignAndEncrypt channels with Basic256Sha256, Aes128_Sha256_RsaOaep and
// Aes256_Sha256_RsaPss, which gopcua v0.8.0's server cannot.
type nodeOPCUA struct {
	Endpoint string // opc.tcp://127.0.0.1:port
	CertFile string // the server's certificate (PEM)
	PKI      string // the server's PKI root: trusted/certs, rejected
	NS       int    // index of the server's own namespace (Loom1.* nodes)

	cmd   *exec.Cmd
	stdin io.WriteCloser
	log   *testlog.Buffer
	done  chan struct{}
}

type nodeOptions struct {
	Port          int               `json:"port"`
	PKI           string            `json:"pki"`
	Users         map[string]string `json:"users,omitempty"`
	Anonymous     bool              `json:"anonymous"`
	AcceptClients bool              `json:"acceptClients"`
	UpdateMs      int               `json:"updateMs,omitempty"`
}

// nodeOPCUADir is where .ci/deps installs node-opcua: $WEFT_NODE_OPCUA, else
// ${WEFT_CACHE:-${XDG_CACHE_HOME:-~/.cache}/weft}/node-opcua.
func nodeOPCUADir() string {
	if d := os.Getenv("WEFT_NODE_OPCUA"); d != "" {
		return d
	}
	cache := os.Getenv("WEFT_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, _ := os.UserHomeDir()
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "weft")
	}
	return filepath.Join(cache, "node-opcua")
}

// startNodeOPCUA starts the node-opcua server on a free 127.0.0.1 port and
// waits for it to listen. It fails the test (it does not skip) when node or
// the node-opcua install is missing, and says how to get them. The server
// stops when the test ends, or when the test binary dies (its stdin closes).
func startNodeOPCUA(t testing.TB, opts nodeOptions) *nodeOPCUA {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node-opcua tests need node (v20 or later) on PATH: run `make deps` (it installs Debian's nodejs and npm when missing)")
	}
	modules := filepath.Join(nodeOPCUADir(), "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "node-opcua-server")); err != nil {
		t.Fatalf("node-opcua is not installed in %s: run `make deps` (or ./.ci/deps), or set WEFT_NODE_OPCUA to a directory where `npm ci` was run with testdata/nodeopcua/package-lock.json", modules)
	}
	script, err := filepath.Abs("testdata/nodeopcua/server.js")
	if err != nil {
		t.Fatal(err)
	}
	if opts.PKI == "" {
		opts.PKI = t.TempDir()
		if err := writeNodeServerCert(filepath.Join(opts.PKI, "server", "own")); err != nil {
			t.Fatal(err)
		}
	}
	if opts.Port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		opts.Port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	arg, _ := json.Marshal(opts)
	s := &nodeOPCUA{log: &testlog.Buffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(node, script, string(arg))
	s.cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	s.cmd.Stderr = s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start node-opcua server: %v", err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "READY "); ok && !sent {
				ready <- rest
				sent = true
				continue
			}
			fmt.Fprintln(s.log, line)
		}
		s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("node-opcua server log:\n%s", tail(s.log.String(), 4000))
		}
	})
	select {
	case line := <-ready:
		var r struct {
			Endpoint    string `json:"endpoint"`
			Certificate string `json:"certificate"`
			PKI         string `json:"pki"`
			Namespace   int    `json:"namespace"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("node-opcua server: READY line %q: %v", line, err)
		}
		// The server advertises its host name; the driver dials what it is
		// configured with, so tests use the loopback address.
		s.Endpoint = fmt.Sprintf("opc.tcp://127.0.0.1:%d", opts.Port)
		s.CertFile, s.PKI, s.NS = r.Certificate, r.PKI, r.Namespace
	case <-s.done:
		t.Fatalf("node-opcua server exited before listening:\n%s", tail(s.log.String(), 4000))
	case <-time.After(60 * time.Second):
		t.Fatalf("node-opcua server did not listen within 60s:\n%s", tail(s.log.String(), 4000))
	}
	return s
}

// writeNodeServerCert gives the node-opcua server a certificate made here
// (node-opcua would take about five seconds to make its own): RSA 2048 with
// the server's application URI, localhost, the host name and 127.0.0.1.
func writeNodeServerCert(own string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	uri, _ := url.Parse("urn:weft:nodeopcua-test")
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "Weft node-opcua test server", Organization: []string{"Weft"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{uri},
		DNSNames:              []string{"localhost", host},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	for _, dir := range []string{"certs", "private"} {
		if err := os.MkdirAll(filepath.Join(own, dir), 0o700); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(own, "certs", "certificate.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(own, "private", "private_key.pem"),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
}

// stop closes the server's stdin (it shuts down), and kills it after 5 s.
func (s *nodeOPCUA) stop() {
	s.stdin.Close()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// node is a NodeId in the server's own namespace.
func (s *nodeOPCUA) node(name string) string { return fmt.Sprintf("ns=%d;s=%s", s.NS, name) }

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// TestNodeOPCUASecurity connects to node-opcua with every security policy
// and mode the driver supports, logging in with a username, and reads a
// value on each; subscribes over Basic256Sha256 SignAndEncrypt; then checks
// that a wrong password, an unknown user and an anonymous login (which this
// server does not offer) are refused with errors that say so.
func TestNodeOPCUASecurity(t *testing.T) {
	s := startNodeOPCUA(t, nodeOptions{Users: map[string]string{"operator": "s3cret"}, AcceptClients: true, UpdateMs: 50})
	dataDir := t.TempDir()
	base := DeviceConfig{Endpoint: s.Endpoint, Auth: "username", Username: "operator", Password: "s3cret",
		TrustedServerCerts: []string{s.CertFile}, Timeout: 5 * time.Second}
	style := []Point{{Name: "style", PointConfig: PointConfig{Node: s.node("Loom1.Style"), Mode: "poll"}}}
	connect := func(t *testing.T, cfg DeviceConfig, points []Point) (*Driver, error) {
		t.Helper()
		d, err := New("loom1", cfg, points, dataDir, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d, d.Connect(ctxT(t, 20*time.Second))
	}
	for _, policy := range []string{"Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"} {
		for _, mode := range []string{"Sign", "SignAndEncrypt"} {
			t.Run(policy+"/"+mode, func(t *testing.T) {
				cfg := base
				cfg.SecurityPolicy, cfg.SecurityMode = policy, mode
				d, err := connect(t, cfg, style)
				if err != nil {
					t.Fatal(err)
				}
				var c collector
				if err := d.Poll(ctxT(t, 10*time.Second), c.emit); err != nil {
					t.Fatal(err)
				}
				if got := c.byPoint()["style"]; got.Quality != wire.Good || got.Value.Str() != "Denim 3/1 twill 12oz" {
					t.Errorf("read over %s/%s = %+v", policy, mode, got)
				}
			})
		}
	}
	t.Run("subscribe", func(t *testing.T) {
		cfg := base
		cfg.SecurityPolicy, cfg.SecurityMode, cfg.PublishingInterval = "Basic256Sha256", "SignAndEncrypt", 100*time.Millisecond
		d, err := connect(t, cfg, []Point{{Name: "counter", PointConfig: PointConfig{Node: s.node("Loom1.Counter")}}})
		if err != nil {
			t.Fatal(err)
		}
		var c collector
		ctx, stop := context.WithCancel(ctxT(t, 30*time.Second))
		done := make(chan error, 1)
		go func() { done <- d.Subscribe(ctx, c.emit) }()
		waitFor(t, 15*time.Second, "3 counter changes over SignAndEncrypt", func() bool { return c.count("counter") >= 3 })
		stop()
		if err := <-done; err != nil {
			t.Errorf("Subscribe after cancel = %v", err)
		}
	})
	t.Run("wrong credentials", func(t *testing.T) {
		cfg := base
		cfg.SecurityPolicy, cfg.SecurityMode, cfg.Password = "Basic256Sha256", "SignAndEncrypt", "wrong"
		_, err := connect(t, cfg, style)
		if !errors.Is(err, ErrLogin) || !strings.Contains(err.Error(), `user "operator"`) || !strings.Contains(err.Error(), "check username and password") {
			t.Errorf("wrong password: err = %v, want ErrLogin naming the user", err)
		}
		cfg.Username, cfg.Password = "nobody", "s3cret"
		if _, err := connect(t, cfg, style); !errors.Is(err, ErrLogin) {
			t.Errorf("unknown user: err = %v, want ErrLogin", err)
		}
		cfg.Auth, cfg.Username, cfg.Password = "anonymous", "", ""
		if _, err := connect(t, cfg, style); !errors.Is(err, ErrNoEndpoint) || !strings.Contains(err.Error(), "offers no anonymous login; it offers username") {
			t.Errorf("anonymous on a server without it: err = %v, want ErrNoEndpoint listing the logins offered", err)
		}
	})
	t.Run("certificate login", func(t *testing.T) {
		cfg := base
		cfg.SecurityPolicy, cfg.SecurityMode, cfg.Auth, cfg.Username, cfg.Password = "Aes256_Sha256_RsaPss", "SignAndEncrypt", "certificate", "", ""
		d, err := connect(t, cfg, style)
		if err != nil {
			t.Fatal(err)
		}
		var c collector
		if err := d.Poll(ctxT(t, 10*time.Second), c.emit); err != nil || c.byPoint()["style"].Quality != wire.Good {
			t.Errorf("read after certificate login: %v %+v", err, c.byPoint())
		}
	})
}

// TestNodeOPCUATrust walks the whole certificate trust workflow against a
// server that trusts no client by default, as a field engineer meets it:
// the agent refuses the unknown server and saves its certificate under
// pki/rejected; once moved into pki/trusted, the server refuses the agent
// and the error names the agent's certificate; once the server trusts that
// (its rejected certificate moved into its trusted/certs), values are read.
// No new driver is made along the way: each step is the next reconnect.
func TestNodeOPCUATrust(t *testing.T) {
	s := startNodeOPCUA(t, nodeOptions{Anonymous: true})
	dataDir := t.TempDir()
	d, err := New("dye1", DeviceConfig{Endpoint: s.Endpoint, SecurityPolicy: "Basic256Sha256", SecurityMode: "SignAndEncrypt"},
		[]Point{{Name: "style", PointConfig: PointConfig{Node: s.node("Loom1.Style"), Mode: "poll"}}}, dataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := ctxT(t, 60*time.Second)

	err = d.Connect(ctx)
	if !errors.Is(err, ErrUntrustedServer) {
		t.Fatalf("unknown server: err = %v, want ErrUntrustedServer", err)
	}
	rejected, _ := filepath.Glob(filepath.Join(dataDir, "pki/rejected/*.der"))
	if len(rejected) != 1 || !strings.Contains(err.Error(), rejected[0]) || !strings.Contains(err.Error(), "Weft node-opcua test server") {
		t.Fatalf("error %q should name the rejected file %v and the server's subject", err, rejected)
	}
	os.MkdirAll(filepath.Join(dataDir, "pki/trusted"), 0o755)
	if err := os.Rename(rejected[0], filepath.Join(dataDir, "pki/trusted", filepath.Base(rejected[0]))); err != nil {
		t.Fatal(err)
	}

	err = d.Connect(ctx)
	own := filepath.Join(dataDir, "pki/own/cert.der")
	if !errors.Is(err, ErrClientUntrusted) || !strings.Contains(err.Error(), own) {
		t.Fatalf("server that does not trust the agent: err = %v, want ErrClientUntrusted naming %s", err, own)
	}
	var serverRejected []string
	waitFor(t, 10*time.Second, "the agent's certificate in the server's rejected folder", func() bool {
		serverRejected, _ = filepath.Glob(filepath.Join(s.PKI, "rejected", "*"))
		return len(serverRejected) == 1
	})
	if err := os.Rename(serverRejected[0], filepath.Join(s.PKI, "trusted", "certs", filepath.Base(serverRejected[0]))); err != nil {
		t.Fatal(err)
	}

	// node-opcua notices a new trusted certificate through a file watcher;
	// the agent's backoff gives it the moment it needs.
	waitFor(t, 20*time.Second, "a connect once the server trusts the agent", func() bool {
		err = d.Connect(ctx)
		return err == nil
	})
	var c collector
	if err := d.Poll(ctx, c.emit); err != nil || c.byPoint()["style"].Value.Str() != "Denim 3/1 twill 12oz" {
		t.Errorf("read after trust: %v %+v", err, c.byPoint())
	}
	if st := d.Stats(); st.Connects != 1 {
		t.Errorf("stats %+v, want one successful connect", st)
	}
}

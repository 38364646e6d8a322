package mqttconn

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftiot/weft/config"
	"github.com/weftiot/weft/internal/testservers"
)

// plantPKI makes a plant's certificates the way a site does, with
// deploy/pki/make-plant-pki.sh (openssl): ca.crt, broker.crt/key for
// localhost and 127.0.0.1, weft-gateway.crt/key and agents/a1.crt/key.
func plantPKI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	script, err := filepath.Abs("../../deploy/pki/make-plant-pki.sh")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(script, "-o", dir, "a1").CombinedOutput(); err != nil {
		t.Fatalf("make-plant-pki.sh: %v\n%s", err, out)
	}
	return dir
}

// TestTLSConfigErrors: a section that cannot make a TLS setup is refused
// with the key and the file named.
func TestTLSConfigErrors(t *testing.T) {
	pki := plantPKI(t)
	notPEM := filepath.Join(t.TempDir(), "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := func(name string) string { return filepath.Join(pki, name) }
	for _, tc := range []struct {
		name string
		tls  config.TLS
		want []string // substrings of the error
	}{
		{"cert without key", config.TLS{Cert: p("agents/a1.crt")}, []string{"mqtt.tls.cert " + p("agents/a1.crt") + " is given without mqtt.tls.key"}},
		{"key without cert", config.TLS{CA: p("ca.crt"), Key: p("agents/a1.key")}, []string{"mqtt.tls.key " + p("agents/a1.key") + " is given without mqtt.tls.cert"}},
		{"missing CA file", config.TLS{CA: p("nope.crt")}, []string{"mqtt.tls.ca", p("nope.crt"), "no such file"}},
		{"CA file without a certificate", config.TLS{CA: notPEM}, []string{"mqtt.tls.ca: " + notPEM + " holds no PEM certificate"}},
		{"key of another certificate", config.TLS{Cert: p("agents/a1.crt"), Key: p("weft-gateway.key")},
			[]string{"mqtt.tls.cert " + p("agents/a1.crt") + ", mqtt.tls.key " + p("weft-gateway.key"), "private key does not match"}},
		{"certificate file is a key", config.TLS{Cert: p("ca.key"), Key: p("ca.key")}, []string{"mqtt.tls.cert " + p("ca.key")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := TLSConfig(tc.tls)
			if err == nil {
				t.Fatalf("TLSConfig(%+v) = %v, want an error", tc.tls, got)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if got, err := TLSConfig(config.TLS{}); got != nil || err != nil {
		t.Errorf("TLSConfig of an empty section = %v, %v; want nil, nil (system roots)", got, err)
	}
}

// TestTLSConfigMosquitto connects to a real Mosquitto that requires a
// client certificate from the plant CA, with the TLS setup TLSConfig builds
// from each section: only the full one (CA, cert, key) gets in, and the
// broker's name is checked (server_name).
func TestTLSConfigMosquitto(t *testing.T) {
	pki := plantPKI(t)
	p := func(name string) string { return filepath.Join(pki, name) }
	b := testservers.Mosquitto(t, testservers.WithTLS(testservers.TLSFiles{
		CA: p("ca.crt"), Cert: p("broker.crt"), Key: p("broker.key"), RequireClientCert: true}))
	full := config.TLS{CA: p("ca.crt"), Cert: p("agents/a1.crt"), Key: p("agents/a1.key")}
	withName := full
	withName.ServerName = "localhost" // in the broker certificate's names
	wrongName := full
	wrongName.ServerName = "broker.other-plant.example"
	noClientCert := config.TLS{CA: p("ca.crt")}
	noCA := config.TLS{Cert: p("agents/a1.crt"), Key: p("agents/a1.key")} // system roots do not know the plant CA
	for _, tc := range []struct {
		name    string
		tls     config.TLS
		wantErr string // "" connects
	}{
		{"CA, cert and key", full, ""},
		{"server_name in the certificate", withName, ""},
		{"server_name not in the certificate", wrongName, "certificate"},
		{"no client certificate", noClientCert, "network Error"}, // the broker hangs up: EOF or a reset
		{"no CA", noCA, "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf, err := TLSConfig(tc.tls)
			if err != nil {
				t.Fatalf("TLSConfig: %v", err)
			}
			o, _ := Conn{Broker: b.TLSURL, ClientID: "tls-" + strings.ReplaceAll(tc.name, " ", "-"), TLS: conf,
				CleanSession: true, KeepAlive: 5 * time.Second, ConnectTimeout: 5 * time.Second}.Options()
			c, err := Connect(context.Background(), o)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("connect: %v", err)
			case tc.wantErr == "":
				c.Disconnect(0)
			case err == nil:
				c.Disconnect(0)
				t.Fatalf("connected; want a refusal (%s)", tc.wantErr)
			case !strings.Contains(err.Error(), tc.wantErr):
				t.Errorf("connect error %q does not say %q", err, tc.wantErr)
			}
		})
	}
}

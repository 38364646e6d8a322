package mqttconn

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/weftiot/weft/config"
)

// TLSConfig builds the client TLS setup of an mqtt.tls config section, the
// same for the agent and the gateway: the CA that signs the broker's
// certificate (ca; the system roots when empty), a client certificate for
// mutual TLS (cert and key, PEM files, always both), the name the broker's
// certificate must carry (server_name) and insecure_skip_verify. It returns
// nil when the section is empty: ssl:// brokers then use the system roots.
// Errors name the config key and the file.
func TLSConfig(c config.TLS) (*tls.Config, error) {
	if c == (config.TLS{}) {
		return nil, nil
	}
	switch {
	case c.Cert != "" && c.Key == "":
		return nil, fmt.Errorf("mqtt.tls.cert %s is given without mqtt.tls.key: a client certificate needs both (PEM files)", c.Cert)
	case c.Key != "" && c.Cert == "":
		return nil, fmt.Errorf("mqtt.tls.key %s is given without mqtt.tls.cert: a client certificate needs both (PEM files)", c.Key)
	}
	t := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify,
	}
	if c.CA != "" {
		pem, err := os.ReadFile(c.CA)
		if err != nil {
			return nil, fmt.Errorf("mqtt.tls.ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt.tls.ca: %s holds no PEM certificate", c.CA)
		}
		t.RootCAs = pool
	}
	if c.Cert != "" {
		pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("mqtt.tls.cert %s, mqtt.tls.key %s: %w", c.Cert, c.Key, err)
		}
		t.Certificates = []tls.Certificate{pair}
	}
	return t, nil
}

package runner

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftiot/weft/internal/testservers"
)

// Issue 6: username/password from the config file (inline or
// password_file) reach the broker connection. Mosquitto lets only a1 in
// with its password; mutual TLS through the agent binary is
// deploy.TestAgentThroughBrokerACL.
func TestBrokerCredentialsFromTheConfig(t *testing.T) {
	sim := startSim(t, 1)
	broker := testservers.Mosquitto(t, testservers.WithPasswords(map[string]string{"a1": "s3cret"}))
	dir := t.TempDir()
	secret := filepath.Join(dir, "mqtt.password")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, mqtt string
		connects   bool
	}{
		{"inline password", "  username: a1\n  password: s3cret\n", true},
		{"password_file", fmt.Sprintf("  username: a1\n  password_file: %s\n", secret), true},
		{"wrong password", "  username: a1\n  password: guess\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			cfg := agentConfig(filepath.Join(sub, "data"), broker.URL, sim.Addr(), 1, "")
			withCreds := strings.Replace(cfg, "  keepalive: 2s\n", "  keepalive: 2s\n"+tc.mqtt, 1)
			if withCreds == cfg {
				t.Fatalf("the test config has no mqtt section to extend:\n%s", cfg)
			}
			os.MkdirAll(sub, 0o755)
			path := filepath.Join(sub, "agent.yaml")
			os.WriteFile(path, []byte(withCreds), 0o600)
			a, stop := startAgent(t, testOptions(path))
			defer stop()
			if tc.connects {
				waitUntil(t, "batches published with the credentials", 10*time.Second, func() bool {
					return a.Health().Forwarder.PublishedBatch > 0
				})
				return
			}
			waitUntil(t, "the refusal", 10*time.Second, func() bool { return a.Health().Forwarder.LastError != "" })
			time.Sleep(500 * time.Millisecond)
			if h := a.Health().Forwarder; h.Connected || h.PublishedBatch != 0 || !strings.Contains(strings.ToLower(h.LastError), "not authorized") {
				t.Errorf("wrong password: forwarder %+v, want refused as not authorized", h)
			}
		})
	}
}

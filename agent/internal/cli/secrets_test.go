package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A password written into a config file every user can read stops `run`
// before it touches the spool or the broker, and the message names the fix.
func TestRunRefusesWorldReadableSecrets(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "agent.yaml")
	cfg := "agent: {id: gw-1, site: lab, data_dir: " + filepath.Join(dir, "data") + "}\n" +
		"mqtt: {broker: tcp://127.0.0.1:1, username: gw-1, password: hunter2}\n" +
		"devices:\n  - {id: d1, protocol: modbus, modbus: {target: tcp://127.0.0.1:1}, points: [{name: p, table: holding, address: 0, type: uint16}]}\n"
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := Main(ctx, []string{"run", "--config", file}, &out, &errb, nil)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, errb.String())
	}
	msg := errb.String()
	for _, want := range []string{"mqtt.password", "chmod 640 " + file, "did not start"} {
		if !strings.Contains(msg, want) {
			t.Errorf("stderr lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Errorf("stderr shows the password:\n%s", msg)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Errorf("run created the data dir although it refused to start")
	}
}

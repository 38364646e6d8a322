package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = Main(context.Background(), args, &o, &e, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return code, o.String(), e.String()
}

// TestConfigCommands: the printed sample passes config check; a bad file
// fails with FILE:LINE:COL messages; usage errors exit 2.
func TestConfigCommands(t *testing.T) {
	code, sample, _ := run("config", "sample")
	if code != 0 || !strings.Contains(sample, "gateway:") {
		t.Fatalf("config sample: exit %d\n%s", code, sample)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "gateway.yaml")
	os.WriteFile(good, []byte(sample), 0o644)
	if code, out, errOut := run("config", "check", good); code != 0 || !strings.Contains(out, ": ok: gateway gw-1") {
		t.Errorf("check sample: exit %d\n%s%s", code, out, errOut)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("gateway: {id: gw-1}\nmqtt: {brokr: tcp://x:1883}\nauth: {admin_tokens: [short]}\n"), 0o644)
	code, out, errOut := run("config", "check", bad)
	if code != 1 || !strings.Contains(out, bad+":2:") || !strings.Contains(out, bad+":3:") || !strings.Contains(errOut, "problems") {
		t.Errorf("check bad: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if code, _, _ := run("config", "check"); code != 2 {
		t.Errorf("check without a file: exit %d, want 2", code)
	}
	if code, _, errOut := run("run"); code != 2 || !strings.Contains(errOut, "--config") {
		t.Errorf("run without --config: exit %d %s", code, errOut)
	}
	if code, _, errOut := run("run", "--config", bad); code != 1 || !strings.Contains(errOut, bad+":2:") {
		t.Errorf("run with a bad config: exit %d %s", code, errOut)
	}
	if code, out, _ := run("version"); code != 0 || !strings.HasPrefix(out, "weft-gateway ") {
		t.Errorf("version: %d %q", code, out)
	}
	if code, _, _ := run("frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

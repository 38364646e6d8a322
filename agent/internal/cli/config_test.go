package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/weftiot/weft/config"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, &out, &errb, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return code, out.String(), errb.String()
}

func TestConfigCheckExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, config.AgentSample(), 0o644); err != nil {
		t.Fatal(err)
	}

	code, out, errs := runCLI(t, "config", "check", good)
	if code != 0 || errs != "" {
		t.Fatalf("good file: exit %d, stderr %q", code, errs)
	}
	if !strings.HasPrefix(out, good+": ok: agent dye-01-gw") || strings.Count(out, "\n") != 1 || !strings.Contains(out, "hash "+config.Hash(config.AgentSample())) {
		t.Errorf("summary line: %q", out)
	}

	five := "../../../config/testdata/errors/five-mistakes.yaml"
	code, out, errs = runCLI(t, "config", "check", five)
	if code != 1 {
		t.Fatalf("five mistakes: exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	pos := regexp.MustCompile(`^` + regexp.QuoteMeta(five) + `:\d+:\d+: \S+: `)
	if len(lines) != 5 {
		t.Fatalf("want 5 problems, got %d:\n%s", len(lines), out)
	}
	for _, l := range lines {
		if !pos.MatchString(l) {
			t.Errorf("not FILE:LINE:COL: path: message: %q", l)
		}
	}
	if errs != five+": 5 problems\n" || strings.Contains(out+errs, "goroutine") {
		t.Errorf("stderr %q", errs)
	}

	code, _, errs = runCLI(t, "config", "check", filepath.Join(dir, "missing.yaml"))
	if code != 1 || !strings.Contains(errs, "no such file") {
		t.Errorf("missing file: exit %d, stderr %q", code, errs)
	}
	if code, _, _ = runCLI(t, "config", "check"); code != 2 {
		t.Errorf("no file: exit %d, want 2", code)
	}
	if code, _, _ = runCLI(t, "config", "check", "--bogus", good); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
	code, out, _ = runCLI(t, "config", "check", "--help")
	if code != 0 || !strings.Contains(out, "usage: weft-agent config check FILE") {
		t.Errorf("--help: exit %d, %q", code, out)
	}
}

func TestConfigSample(t *testing.T) {
	code, out, errs := runCLI(t, "config", "sample")
	if code != 0 || errs != "" || out != string(config.AgentSample()) {
		t.Fatalf("config sample: exit %d, stderr %q", code, errs)
	}
	if _, err := config.ParseAgent("sample.yaml", []byte(out)); err != nil {
		t.Errorf("printed sample does not load: %v", err)
	}
	if code, out, _ = runCLI(t, "config", "sample", "-h"); code != 0 || !strings.Contains(out, "usage: weft-agent config sample") {
		t.Errorf("-h: exit %d", code)
	}
}

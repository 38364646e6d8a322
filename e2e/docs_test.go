package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocsNameEveryMetricAndFlag reads the sources for the metric names the
// agent and the gateway serve and the flags of every command, and checks
// that the docs name each one: metrics in docs/metrics.md or
// docs/gateway.md and in their zh-CN pages, flags (as --flag) in an English
// page and in a zh-CN page.
// A new metric or flag lands with its documentation.
func TestDocsNameEveryMetricAndFlag(t *testing.T) {
	root := ".."
	read := func(pattern string) string {
		t.Helper()
		files, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no files (%v)", pattern, err)
		}
		var b strings.Builder
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(data)
		}
		return b.String()
	}

	metricDocs := map[string]string{
		"docs/metrics.md nor docs/gateway.md":             read("docs/metrics.md") + read("docs/gateway.md"),
		"docs/metrics.zh-CN.md nor docs/gateway.zh-CN.md": read("docs/metrics.zh-CN.md") + read("docs/gateway.zh-CN.md"),
	}
	metrics := map[string]bool{}
	for _, src := range []string{read("agent/internal/runner/http.go")} {
		for _, m := range regexp.MustCompile(`"(weft_agent_[a-z0-9_]+)"`).FindAllStringSubmatch(src, -1) {
			metrics[m[1]] = true
		}
	}
	for _, pattern := range []string{"gateway/internal/*/*.go"} {
		for _, m := range regexp.MustCompile(`Name:\s*"(weft_gateway_[a-z0-9_]+)"`).FindAllStringSubmatch(read(pattern), -1) {
			metrics[m[1]] = true
		}
	}
	if len(metrics) < 40 {
		t.Fatalf("found only %d metric names in the sources: the patterns are stale", len(metrics))
	}
	for m := range metrics {
		for pages, text := range metricDocs {
			if !strings.Contains(text, "`"+m) {
				t.Errorf("metric %s is in neither %s", m, pages)
			}
		}
	}

	var en, zh strings.Builder
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	for _, f := range docs {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".zh-CN.md") {
			zh.Write(data)
		} else {
			en.Write(data)
		}
	}
	flagDef := regexp.MustCompile(`fs\.(?:String|Bool|Int|Int64|Uint|Uint64|Float64|Duration|Func|Var)(?:Var)?\((?:&?[\w.]+, )?"([a-z][a-z0-9-]*)"`)
	flags := 0
	for _, pattern := range []string{"agent/internal/cli/*.go", "gateway/internal/cli/*.go", "sim/cmd/weft-sim/*.go"} {
		for _, m := range flagDef.FindAllStringSubmatch(read(pattern), -1) {
			flags++
			flag := regexp.MustCompile(`--` + regexp.QuoteMeta(m[1]) + `\b`)
			if !flag.MatchString(en.String()) {
				t.Errorf("%s: flag --%s is not in any English page of docs/", pattern, m[1])
			}
			if !flag.MatchString(zh.String()) {
				t.Errorf("%s: flag --%s is not in any zh-CN page of docs/", pattern, m[1])
			}
		}
	}
	if flags < 40 {
		t.Fatalf("found only %d flag definitions in the sources: the pattern is stale", flags)
	}
}

package dashboard

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/weftiot/weft/gateway/internal/api"
	"github.com/weftiot/weft/gateway/internal/registry"
	"github.com/weftiot/weft/wire"
)

const (
	admin = "admin-token-0123456789"
	read  = "read-token-0123456789"
)

// Every language has every message, and every message the templates and the
// script ask for exists.
func TestMessagesComplete(t *testing.T) {
	if err := loadMessages(); err != nil {
		t.Fatal(err)
	}
	keysOf := func(m map[string]string) []string {
		ks := make([]string, 0, len(m))
		for k, v := range m {
			ks = append(ks, k)
			if strings.TrimSpace(v) == "" {
				t.Errorf("message %q is empty", k)
			}
		}
		sort.Strings(ks)
		return ks
	}
	en := keysOf(messages["en"])
	for _, l := range languages[1:] {
		other := keysOf(messages[l])
		for _, k := range en {
			if _, ok := messages[l][k]; !ok {
				t.Errorf("%s.json lacks %q", l, k)
			}
		}
		for _, k := range other {
			if _, ok := messages["en"][k]; !ok {
				t.Errorf("%s.json has %q, en.json does not", l, k)
			}
		}
		// A placeholder in one language is in the other.
		ph := regexp.MustCompile(`\{\d\}`)
		for _, k := range en {
			a, b := ph.FindAllString(messages["en"][k], -1), ph.FindAllString(messages[l][k], -1)
			sort.Strings(a)
			sort.Strings(b)
			if !slices.Equal(a, b) {
				t.Errorf("%q: en has placeholders %v, %s has %v", k, a, l, b)
			}
		}
	}

	used := map[string]string{}
	tmpl, _ := assets.ReadDir("assets/templates")
	for _, e := range tmpl {
		b, _ := assets.ReadFile("assets/templates/" + e.Name())
		for _, m := range regexp.MustCompile(`\.T "([^"]+)"`).FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = e.Name()
		}
	}
	js, _ := assets.ReadFile("assets/static/app.js")
	for _, m := range regexp.MustCompile(`\bT\('([^']+)'`).FindAllStringSubmatch(string(js), -1) {
		if !strings.HasSuffix(m[1], ".") { // T('kind.' + x.kind): checked below
			used[m[1]] = "app.js"
		}
	}
	if len(used) < 50 {
		t.Fatalf("found only %d message keys in the templates and script; is the pattern still right?", len(used))
	}
	// The keys made from data: every value the API can send.
	for _, s := range []string{registry.StateOnline, registry.StateOffline, registry.StateUnknown} {
		used["state."+s] = "state"
	}
	for _, s := range []string{wire.DeviceOK, wire.DeviceDegraded, wire.DeviceDown, "unknown"} {
		used["device."+s] = "device state"
	}
	for _, s := range []string{wire.Good.String(), wire.Uncertain.String(), wire.Bad.String()} {
		used["quality."+s] = "quality"
	}
	for _, k := range []string{registry.KindAgentOffline, registry.KindBacklogOld, registry.KindBacklogGrowing,
		registry.KindSamplesDropped, registry.KindDeviceDown, registry.KindSeqGap} {
		used["kind."+k] = "alert kind"
	}
	// Every API error code docs/api.md lists.
	doc, err := os.ReadFile("../../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	codes := regexp.MustCompile("(?m)^Codes: (.*)$").FindSubmatch(doc)
	if codes == nil {
		t.Fatal("docs/api.md has no 'Codes:' line any more; update this test")
	}
	for _, c := range regexp.MustCompile("`([a-z_]+)`").FindAllSubmatch(codes[1], -1) {
		used["err."+string(c[1])] = "API error code"
	}
	for k, where := range used {
		for _, l := range languages {
			if _, ok := messages[l][k]; !ok {
				t.Errorf("%s uses %q, missing from %s.json", where, k, l)
			}
		}
	}
}

func TestPickLang(t *testing.T) {
	for _, c := range []struct{ accept, cookie, want string }{
		{"", "", "en"},
		{"zh-CN,zh;q=0.9,en;q=0.8", "", "zh-CN"},
		{"en-US,en;q=0.9,zh-CN;q=0.8", "", "en"},
		{"zh-TW", "", "zh-CN"},
		{"zh-Hans-CN", "", "zh-CN"},
		{"fr-FR,zh;q=0.5,en;q=0.4", "", "zh-CN"},
		{"en;q=0.2,zh;q=0.9", "", "zh-CN"},
		{"de-DE", "", "en"},
		{"zh;q=0", "", "en"},
		{"zh;q=abc", "", "en"},
		{"zh-CN", "en", "en"},
		{"en", "zh-CN", "zh-CN"},
		{"zh-CN", "klingon", "zh-CN"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept-Language", c.accept)
		if c.cookie != "" {
			r.AddCookie(&http.Cookie{Name: LangCookie, Value: c.cookie})
		}
		if got := pickLang(r); got != c.want {
			t.Errorf("Accept-Language %q cookie %q: %s, want %s", c.accept, c.cookie, got, c.want)
		}
	}
}

// FuzzPickLang: any Accept-Language header or cookie gives an offered language.
func FuzzPickLang(f *testing.F) {
	f.Add("zh-CN,zh;q=0.9,en;q=0.8", "")
	f.Add(";;;q=,,", "zh")
	f.Add("en;q=1e309", "\x00")
	f.Fuzz(func(t *testing.T, accept, cookie string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept-Language", accept)
		r.Header.Set("Cookie", LangCookie+"="+cookie)
		if l := pickLang(r); !slices.Contains(languages, l) {
			t.Fatalf("pickLang gave %q", l)
		}
	})
}

// server is an API server with the dashboard, on a registry in a temp file.
func server(t *testing.T) (*httptest.Server, *registry.Registry) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "gw.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := slog.New(slog.DiscardHandler)
	reg, err := registry.Open(db, registry.Rules{}, log)
	if err != nil {
		t.Fatal(err)
	}
	s := api.New(api.Options{Registry: reg, AdminTokens: []string{admin}, ReadTokens: []string{read},
		Gatherer: prometheus.NewRegistry(), Log: log})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if _, err := Mount(ctx, s, Options{Log: log, SampleEvery: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return hs, reg
}

func get(t *testing.T, url, token string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestPages(t *testing.T) {
	hs, _ := server(t)
	for _, c := range []struct {
		path, accept, want, lang string
	}{
		{"/", "en-US", "Agents online", "en"},
		{"/", "zh-CN,zh", "在线代理", "zh-CN"},
		{"/alerts", "en", "Recently ended", "en"},
		{"/alerts", "zh", "最近结束", "zh-CN"},
		{"/login", "en", "API token", "en"},
		{"/login", "zh-CN", "API 令牌", "zh-CN"},
		{"/agents/weihai/dye-01-gw", "en", "Push config", "en"},
		{"/agents/weihai/dye-01-gw", "zh-CN", "下发配置", "zh-CN"},
	} {
		resp, body := get(t, hs.URL+c.path, "", "Accept-Language", c.accept)
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: HTTP %d", c.path, resp.StatusCode)
			continue
		}
		if !strings.Contains(body, c.want) || !strings.Contains(body, `<html lang="`+c.lang+`">`) {
			t.Errorf("GET %s (Accept-Language %s): want %q in %s", c.path, c.accept, c.want, c.lang)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", c.path, csp)
		}
		if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
			t.Errorf("GET %s: the page links outside the gateway", c.path)
		}
	}
	// Static files, from the binary.
	for _, p := range []string{"/static/app.js", "/static/style.css"} {
		resp, body := get(t, hs.URL+p, "")
		if resp.StatusCode != 200 || len(body) < 1000 {
			t.Errorf("GET %s: HTTP %d, %d bytes", p, resp.StatusCode, len(body))
		}
	}
	// A path element is text in the page, never markup.
	resp, body := get(t, hs.URL+"/agents/%3Cscript%3Ealert(1)%3C%2Fscript%3E/x", "")
	if resp.StatusCode != 200 || strings.Contains(body, "<script>alert(1)") {
		t.Errorf("agent page with markup in the site: HTTP %d, escaped: %v", resp.StatusCode, !strings.Contains(body, "<script>alert(1)"))
	}
	// The API keeps its own routes and 404s.
	resp, _ = get(t, hs.URL+"/api/v1/nothing", admin)
	if resp.StatusCode != 404 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("GET /api/v1/nothing: HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	resp, _ = get(t, hs.URL+"/nothing", "")
	if resp.StatusCode != 404 {
		t.Errorf("GET /nothing: HTTP %d", resp.StatusCode)
	}
}

func TestTokens(t *testing.T) {
	hs, _ := server(t)
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{"/ui/can-push", admin, 204},
		{"/ui/can-push", read, 403},
		{"/ui/can-push", "", 401},
		{"/ui/can-push", "wrong-token-0123456789", 401},
		{"/ui/history/s/a", read, 200},
		{"/ui/history/s/a", "", 401},
	} {
		if resp, _ := get(t, hs.URL+c.path, c.token); resp.StatusCode != c.want {
			t.Errorf("GET %s with %q: HTTP %d, want %d", c.path, c.token, resp.StatusCode, c.want)
		}
	}
}

// The history endpoint serves what the sampler took from the registry.
func TestHistoryFromRegistry(t *testing.T) {
	hs, reg := server(t)
	now := time.Now().UnixMilli()
	reg.Status(&wire.Status{V: 1, Site: "s1", Agent: "a1", State: wire.Online, TS: now})
	reg.Health(&wire.Health{V: 1, Site: "s1", Agent: "a1", TS: now,
		Spool: wire.SpoolHealth{Samples: 42, OldestAgeMs: 1500}})
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body := get(t, hs.URL+"/ui/history/s1/a1", read)
		if strings.Contains(body, `"backlog":42`) && strings.Contains(body, `"online":true`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history never showed the backlog: %s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHistoryRates(t *testing.T) {
	h := newHistory(10*time.Second, time.Minute) // keeps 6 points
	t0 := time.UnixMilli(1_700_000_000_000)
	ag := func(published uint64, health int64, backlog int64) registry.Agent {
		return registry.Agent{Site: "s", ID: "a", State: registry.StateOnline, LastHealth: health,
			Link: registry.Link{PublishedSamples: published}, Backlog: registry.Backlog{Samples: backlog},
			Received: registry.Received{SamplesPerSec: 7}}
	}
	h.sample([]registry.Agent{ag(1000, t0.UnixMilli(), 0)}, t0)
	// 10 s later a new health message: 500 samples in 10 s.
	h.sample([]registry.Agent{ag(1500, t0.UnixMilli()+10000, 5)}, t0.Add(10*time.Second))
	// No new health: the rate carries on.
	h.sample([]registry.Agent{ag(1500, t0.UnixMilli()+10000, 5)}, t0.Add(20*time.Second))
	// The agent restarted: its counter went back; the rate is unknown.
	h.sample([]registry.Agent{ag(10, t0.UnixMilli()+30000, 0)}, t0.Add(30*time.Second))
	ps := h.points("s", "a")
	rates := []float64{}
	for _, p := range ps {
		rates = append(rates, p.PublishRate)
	}
	if want := []float64{-1, 50, 50, -1}; !slices.Equal(rates, want) {
		t.Errorf("publish rates %v, want %v", rates, want)
	}
	if ps[1].Backlog != 5 || ps[1].ReceiveRate != 7 {
		t.Errorf("point 1: %+v", ps[1])
	}
	// The ring keeps the newest 6, oldest first.
	for i := 4; i < 10; i++ {
		h.sample([]registry.Agent{ag(10, t0.UnixMilli()+30000, int64(i))}, t0.Add(time.Duration(i)*10*time.Second))
	}
	ps = h.points("s", "a")
	if len(ps) != 6 || ps[0].Backlog != 4 || ps[5].Backlog != 9 {
		t.Errorf("after wrapping: %d points, first backlog %d, last %d", len(ps), ps[0].Backlog, ps[len(ps)-1].Backlog)
	}
	for i := 1; i < len(ps); i++ {
		if ps[i].T <= ps[i-1].T {
			t.Errorf("points out of order at %d", i)
		}
	}
	// An agent the registry forgot is forgotten here too.
	h.sample(nil, t0.Add(time.Hour))
	if len(h.points("s", "a")) != 0 {
		t.Error("a removed agent kept its history")
	}
}

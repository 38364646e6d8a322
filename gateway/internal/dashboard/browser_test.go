package dashboard_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/weftiot/weft/config"
	"github.com/weftiot/weft/gateway/internal/api"
	"github.com/weftiot/weft/gateway/internal/dashboard"
	"github.com/weftiot/weft/gateway/internal/gateway"
	"github.com/weftiot/weft/internal/testbin"
)

// TestMain removes the binaries testbin built, if $WEFT_BIN lacked them.
func TestMain(m *testing.M) { testbin.Main(m) }

const (
	adminToken = "ui-admin-token-0123456789"
	readToken  = "ui-read-token-0123456789"
	demoDir    = "../../../deploy/demo"
)

// TestDashboardInBrowser drives Debian's headless Chromium against a gateway
// (embedded broker, embedded store, dashboard mounted as weft-gateway does)
// fed by two real `weft-agent run` processes reading a real weft-sim, all
// with the configs `make demo` uses. Screenshots go to the test's artifact
// dir (go test -artifacts keeps them), and to $WEFT_SCREENSHOT_DIR if set.
func TestDashboardInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium, weft-sim and two weft-agents")
	}
	chromium := chromiumPath(t)
	bins := testbin.Dir(t, "weft-agent", "weft-sim")
	dir := t.TempDir()

	// Simulators, as in make demo, on free ports instead of the demo's.
	ports := map[string]string{} // the demo's address → this test's
	for _, demo := range []string{"127.0.0.1:25020", "127.0.0.1:25021", "127.0.0.1:24840"} {
		ports[demo] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	}
	startProc(t, dir, "weft-sim", nil, filepath.Join(bins, "weft-sim"), "--tick", "200ms",
		"--modbus", ports["127.0.0.1:25020"]+"=dyeing",
		"--modbus", ports["127.0.0.1:25021"]+"=loom",
		"--opcua", ports["127.0.0.1:24840"]+"=winder")
	waitPort(t, ports["127.0.0.1:24840"])

	// The gateway, in this process, from the demo's config.
	t.Setenv("WEFT_DEMO_DIR", dir)
	t.Setenv("WEFT_ADMIN_TOKEN", adminToken)
	t.Setenv("WEFT_READ_TOKEN", readToken)
	cfg, err := config.LoadGateway(filepath.Join(demoDir, "gateway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.HTTP, cfg.Gateway.EmbeddedListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Alerts.OfflineAfter = 2 * time.Second // the demo's 30s is too long to wait for here
	base, brokerURL := startGateway(t, cfg)
	bu, err := url.Parse(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	ports["127.0.0.1:18830"] = bu.Host

	// Two agents, from copies of the demo's configs with this test's ports,
	// as run.sh makes them (a pushed config is saved over the agent's file).
	agents := map[string]*exec.Cmd{}
	agentConfig := map[string]string{}
	for _, a := range []string{"dyehouse", "weaving"} {
		src, err := os.ReadFile(filepath.Join(demoDir, "agent-"+a+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		text := string(src)
		for demo, here := range ports {
			text = strings.ReplaceAll(text, demo, here)
		}
		path := filepath.Join(dir, "agent-"+a+".yaml")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		agentConfig[a] = text
		agents[a] = startProc(t, dir, a+"-gw", []string{"WEFT_DEMO_DIR=" + dir}, filepath.Join(bins, "weft-agent"), "run", "--config", path)
	}

	b := newBrowser(t, chromium)
	shot := b.shot

	// Login: no token goes to the login page; an unknown token is refused.
	b.run(chromedp.Navigate(base + "/"))
	b.waitJS("the login page", `location.pathname === "/login" && !!document.getElementById("token")`)
	b.run(chromedp.SendKeys(css("#token"), "not-a-token-at-all"), chromedp.Click(css("#login-submit")))
	b.waitJS("the unknown token refused", `!document.getElementById("login-error").hidden`)
	b.expectText("#login-error", "does not know this token")
	shot("login")
	b.setValue("#token", "")
	b.run(chromedp.SendKeys(css("#token"), adminToken), chromedp.Click(css("#login-submit")))

	// Fleet: both agents online with their devices.
	b.waitJS("the fleet page", `location.pathname === "/" && document.body.dataset.page === "fleet"`)
	b.waitJS("two agents online", `document.getElementById("count-online").textContent === "2"`)
	b.waitJS("every device ok", `[...document.querySelectorAll("#fleet tbody tr")].map(r => r.querySelector(".dev-ok").textContent).join() === "● 1,● 2" ||
		[...document.querySelectorAll("#fleet tbody tr")].map(r => r.querySelector(".dev-ok").textContent).join() === "● 2,● 1"`)
	b.expectText("#count-offline", "0")
	b.expectText("#role", "Admin")
	row := `#fleet tr[data-agent="dyehouse-gw"]`
	b.expectText(row, "weihai-dyeworks")
	b.expectText(row, "Online")
	b.expectText(row+" td:nth-child(4)", "dyehouse-gw")
	shot("fleet-en")
	// Filter by site.
	b.setValue("#filter-site", "keqiao-weaving")
	b.waitJS("the site filter", `document.querySelectorAll("#fleet tbody tr").length === 1 && !!document.querySelector('#fleet tr[data-agent="weaving-gw"]')`)
	b.setValue("#filter-site", "")
	b.waitJS("the filter cleared", `document.querySelectorAll("#fleet tbody tr").length === 2`)
	// Sort by agent name, then the other way.
	order := `[...document.querySelectorAll("#fleet tbody tr")].map(r => r.dataset.agent).join()`
	b.run(chromedp.Click(css(`#fleet th[data-sort="id"]`)))
	b.waitJS("sorted by agent A to Z", order+` === "dyehouse-gw,weaving-gw"`)
	b.run(chromedp.Click(css(`#fleet th[data-sort="id"]`)))
	b.waitJS("sorted by agent Z to A", order+` === "weaving-gw,dyehouse-gw" && location.search.includes("sort=id")`)
	b.run(chromedp.Click(css(`#fleet th[data-sort="worst"]`)))

	// Language: the switcher reloads the page in Chinese, labels and data.
	b.switchLang("zh-CN")
	b.waitJS("Chinese counts", `document.getElementById("count-online").textContent === "2"`)
	b.expectText("#counts", "在线代理")
	b.expectText("#fleet thead", "最后通信")
	b.expectText(row, "在线")
	shot("fleet-zh")

	// The agent page: devices, latest values, a chart of a point.
	b.run(chromedp.Click(css(row + " a.agent-link")))
	b.waitJS("the agent page", `document.body.dataset.page === "agent" && document.body.dataset.agent === "dyehouse-gw"`)
	b.waitJS("the device row", `!!document.querySelector('#devices tr[data-device="dye-01"] .dev-ok')`)
	b.waitJS("latest values", `[...document.querySelectorAll("#latest tbody tr")].some(r => r.textContent.includes("bath_temp"))`)
	b.run(chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll("#latest tbody tr")].find(r => r.textContent.includes("bath_temp")).click()`))
	b.waitJS("the bath_temp chart", `document.getElementById("chart-point").value.endsWith("bath_temp") &&
		!!document.querySelector("#chart-point-svg polyline")`)
	b.waitJS("the backlog chart", `!!document.querySelector("#chart-backlog-svg polyline")`)
	b.waitJS("the rate chart", `!!document.querySelector("#chart-rate-svg polyline.s2")`)
	// Units travel from the agent's config (bath_temp: unit "°C") in its
	// retained status through the broker and the API to the table and the
	// chart's axis.
	b.waitJS("bath_temp's unit in the table", `[...document.querySelectorAll("#latest tbody tr")].find(r => r.textContent.includes("bath_temp")).querySelector("td.unit").textContent === "°C"`)
	b.waitJS("pressure's unit in the table", `[...document.querySelectorAll("#latest tbody tr")].find(r => r.textContent.includes("pressure")).querySelector("td.unit").textContent === "bar"`)
	b.waitJS("the chart's unit", `document.querySelector("#chart-point-svg text.unit")?.textContent === "°C"`)
	b.expectText("#latest thead", "单位")
	b.expectText("#devices thead", "轮询延迟")
	shot("agent-zh")
	b.switchLang("en")
	b.waitJS("the agent page in English", `!!document.querySelector("#chart-point-svg polyline") && !!document.querySelector('#devices tr[data-device="dye-01"]')`)
	b.expectText("#devices thead", "Poll latency")
	b.expectText("#latest thead", "Unit")
	b.waitJS("the chart's unit in English", `document.querySelector("#chart-point-svg text.unit")?.textContent === "°C"`)
	shot("agent-en")

	// Request status.
	b.run(chromedp.Click(css("#request-status")))
	b.waitJS("the status reply", `document.getElementById("status-result").textContent.includes("answered")`)

	// An invalid config: the agent's own check errors are shown, nothing applied.
	bad := "agent: {id: dyehouse-gw, site: weihai-dyeworks}\nmqtt: {broker: \"tcp://127.0.0.1:1883\"}\n" +
		"devices:\n  - id: dye-01\n    modbus: {target: \"tcp://127.0.0.1:502\", unit: 300}\n" +
		"    points:\n      - {name: bath_temp, table: holding, address: 0, type: float33}\n"
	b.setValue("#push-config", bad)
	b.run(chromedp.Click(css("#push-submit")))
	b.waitJS("the agent's refusal", `document.querySelectorAll("#push-problems li").length >= 2`)
	b.expectText("#push-error", "refused this config")
	b.expectText("#push-problems", "float33")
	b.expectText("#push-problems", "300")
	b.run(chromedp.Evaluate[chromedp.Void](`document.getElementById("push-result").scrollIntoView()`))
	shot("push-rejected")

	// A good config: the new hash is shown and becomes the agent's.
	good := agentConfig["dyehouse"]
	goodText := strings.Replace(good, "deadband: 0.2}", "deadband: 0.3}", 1)
	if goodText == good {
		t.Fatal("the demo's dyehouse config no longer has bath_temp's deadband: 0.2; change this test")
	}
	b.setValue("#push-config", goodText)
	b.run(chromedp.Click(css("#push-submit")))
	b.waitJS("the applied config", `!!document.getElementById("push-ok")`)
	newHash := evaluate[string](b, `document.querySelector("#push-ok code").textContent`)
	if len(newHash) < 8 {
		t.Fatalf("applied config hash %q", newHash)
	}
	b.waitJS("the agent's new hash", fmt.Sprintf(`document.querySelector("#fact-config code").title === %q && !document.querySelector("#fact-config .mark")`, newHash))

	// Kill an agent: its will marks it offline, the alert follows.
	if err := agents["weaving"].Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b.run(chromedp.Navigate(base + "/"))
	b.waitJS("the killed agent offline", `document.getElementById("count-offline").textContent === "1" &&
		document.querySelector('#fleet tr[data-agent="weaving-gw"]').textContent.includes("Offline")`)
	b.waitJS("the offline agent listed first", `document.querySelector("#fleet tbody tr").dataset.agent === "weaving-gw"`)
	b.expectText("#count-online", "1")
	b.setValue("#filter-state", "problem")
	b.waitJS("only the agent with a problem", `document.querySelectorAll("#fleet tbody tr").length === 1 && !!document.querySelector('#fleet tr[data-agent="weaving-gw"]')`)
	b.setValue("#filter-state", "")
	b.waitJS("the offline alert counted", `document.getElementById("count-alerts").textContent === "1"`)
	shot("fleet-offline")
	b.run(chromedp.Click(css("#nav-alerts")))
	b.waitJS("the alerts page", `document.body.dataset.page === "alerts" && document.querySelectorAll("#alerts-active tbody tr").length === 1`)
	b.expectText("#alerts-active", "Agent offline")
	b.expectText("#alerts-active", "keqiao-weaving/weaving-gw")
	shot("alerts-en")
	b.switchLang("zh-CN")
	b.waitJS("the alerts in Chinese", `document.querySelector("#alerts-active tbody tr") !== null`)
	b.expectText("#alerts-active", "代理离线")
	shot("alerts-zh")
	b.switchLang("en")

	// A read-only token: everything readable, the push form disabled, and
	// the API refuses the push itself.
	b.run(chromedp.Click(css("#logout")))
	b.waitJS("the login page again", `location.pathname === "/login"`)
	b.run(chromedp.Navigate(base + "/login?next=" + url.QueryEscape("/agents/weihai-dyeworks/dyehouse-gw")))
	b.waitJS("the login form", `!!document.getElementById("token")`)
	b.run(chromedp.SendKeys(css("#token"), readToken), chromedp.Click(css("#login-submit")))
	b.waitJS("the agent page, read-only", `document.body.dataset.page === "agent" && document.getElementById("push-submit").disabled &&
		!document.getElementById("push-readonly").hidden && document.getElementById("role").textContent === "Read-only"`)
	b.waitJS("values for the read-only user", `document.querySelectorAll("#latest tbody tr").length > 5`)
	status := evaluate[int](b, `fetch("/api/v1/agents/weihai-dyeworks/dyehouse-gw/config", {method: "POST",
		headers: {Authorization: "Bearer " + localStorage.getItem("weft.token")}, body: "agent: {}"}).then(r => r.status)`, chromedp.EvalAwaitPromise)
	if status != 403 {
		t.Errorf("a config POST with the read token: HTTP %d, want 403", status)
	}
	b.run(chromedp.Evaluate[chromedp.Void](`document.getElementById("push-form").scrollIntoView()`))
	shot("agent-readonly")
}

func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

// evaluate runs a JavaScript expression and returns its value.
func evaluate[T any](b *browser, expr string, opts ...chromedp.EvaluateOption) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		b.fail("evaluate %s: %v", expr, err)
	}
	return v
}

// browser is one headless Chromium tab.
type browser struct {
	t     *testing.T
	ctx   context.Context
	shots string
	n     int
}

func newBrowser(t *testing.T, chromium string) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx, shots: t.ArtifactDir()}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", chromium, err)
	}
	return b
}

func (b *browser) run(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail("browser: %v", err)
	}
}

// waitJS evaluates a JavaScript condition until it is true (20s at most).
func (b *browser) waitJS(what, cond string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { try { return !!(`+cond+`); } catch (e) { return false; } })()`))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.fail("timed out waiting for %s (last error: %v)", what, err)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// expectText checks that the element's text contains want.
func (b *browser) expectText(sel, want string) {
	b.t.Helper()
	got := evaluate[string](b, fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel))
	if !strings.Contains(got, want) {
		b.fail("%s: text %q does not contain %q", sel, got, want)
	}
}

// setValue sets a form field's value as typing or choosing would, with
// its input and change events.
func (b *browser) setValue(sel, value string) {
	b.t.Helper()
	if !evaluate[bool](b, fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false;
		e.value = %q; e.dispatchEvent(new Event("input", {bubbles: true})); e.dispatchEvent(new Event("change", {bubbles: true})); return true; })()`, sel, value)) {
		b.fail("no element %s", sel)
	}
}

// switchLang uses the page's language switcher and waits for the reload.
func (b *browser) switchLang(lang string) {
	b.t.Helper()
	b.setValue("#lang-switch", lang)
	b.waitJS("the page in "+lang, fmt.Sprintf(`document.documentElement.lang === %q && document.readyState === "complete"`, lang))
}

// shot saves a full-page PNG as NN-name.png.
func (b *browser) shot(name string) {
	b.t.Helper()
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	cancel()
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	b.n++
	file := fmt.Sprintf("%02d-%s.png", b.n, name)
	for _, dir := range []string{b.shots, os.Getenv("WEFT_SCREENSHOT_DIR")} {
		if dir == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, file), png, 0o644); err != nil {
			b.t.Errorf("screenshot %s: %v", file, err)
		}
	}
}

func (b *browser) fail(format string, args ...any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText.slice(0, 3000)`))
	cancel()
	b.shot("failure")
	b.t.Fatalf(format+"\npage: %s", append(args, text)...)
}

func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("WEFT_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium: install Debian's chromium (make deps) or set WEFT_CHROMIUM to its path")
	return ""
}

// startProc starts a process with its output in dir/NAME.log, printed when
// the test fails, and kills it when the test ends.
func startProc(t *testing.T, dir, name string, env []string, bin string, args ...string) *exec.Cmd {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("---- %s log (end) ----\n%s", name, b)
		}
	})
	return cmd
}

// startGateway runs the gateway with the dashboard mounted, as
// `weft-gateway run` does, and returns its HTTP base URL and broker URL.
func startGateway(t *testing.T, cfg *config.Gateway) (string, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [2]string, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(logWriter{t}, nil))
	go func() {
		done <- gateway.Run(ctx, cfg, gateway.Options{Log: log,
			Ready: func(h, b string) { ready <- [2]string{h, b} },
			Mount: func(s *api.Server) {
				if _, err := dashboard.Mount(ctx, s, dashboard.Options{Log: log, SampleEvery: time.Second}); err != nil {
					t.Errorf("dashboard: %v", err)
				}
			}})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("gateway did not stop in 20s")
		}
	})
	select {
	case r := <-ready:
		return "http://" + r[0], r[1]
	case err := <-done:
		t.Fatalf("gateway did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not start in 30s")
	}
	return "", ""
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	if os.Getenv("WEFT_TEST_LOG") != "" {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitPort(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after 20s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Package demo holds `make demo`'s script and configs; this test runs the
// script as a new user would, twice on the same data dir, with the real
// binaries.
package demo

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftiot/weft/e2e"
	"github.com/weftiot/weft/internal/testlog"
)

func TestMain(m *testing.M) {
	code := m.Run()
	e2e.RemoveBuilt()
	os.Exit(code)
}

// TestMakeDemo runs deploy/demo/run.sh: within 30 s both agents are online
// with every device ok and values moving, the dashboard answers, and Ctrl-C
// stops every process. A second run on the same data dir works as well.
func TestMakeDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs weft-sim, weft-gateway and two weft-agents")
	}
	bin := e2e.Binaries(t)
	dir := t.TempDir()
	env := append(os.Environ(), "WEFT_BIN="+bin, "WEFT_DEMO_DIR="+filepath.Join(dir, "demo"))
	ports := map[string]int{}
	for _, v := range []string{"WEFT_DEMO_HTTP_PORT", "WEFT_DEMO_MQTT_PORT", "WEFT_DEMO_DYEING_PORT", "WEFT_DEMO_LOOM_PORT", "WEFT_DEMO_OPCUA_PORT"} {
		ports[v] = freePort(t)
		env = append(env, fmt.Sprintf("%s=%d", v, ports[v]))
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", ports["WEFT_DEMO_HTTP_PORT"])

	for run := 1; run <= 2; run++ {
		out := &testlog.Buffer{}
		cmd := exec.Command("./run.sh")
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		stopped := false
		t.Cleanup(func() {
			if !stopped {
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
			}
		})
		fail := func(format string, args ...any) {
			t.Helper()
			logs, _ := filepath.Glob(filepath.Join(dir, "demo", "logs", "*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				if len(b) > 3000 {
					b = b[len(b)-3000:]
				}
				t.Logf("---- %s (end) ----\n%s", filepath.Base(l), b)
			}
			t.Fatalf("run %d: "+format+"\n---- run.sh output ----\n%s", append([]any{run}, append(args, out.String())...)...)
		}

		waitUntil := func(what string, d time.Duration, cond func() bool) {
			t.Helper()
			deadline := time.Now().Add(d)
			for !cond() {
				select {
				case err := <-done:
					stopped = true
					fail("run.sh exited (%v) while waiting for %s", err, what)
				default:
				}
				if time.Now().After(deadline) {
					fail("no %s within %s", what, d)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		waitUntil("dashboard URL printed", 60*time.Second, func() bool { return strings.Contains(out.String(), "Press Ctrl-C") })
		token := tokenFrom(t, out.String())

		// Within 30 s of starting: both agents online, every device ok.
		var agents []agentView
		waitUntil("two agents online with every device ok", 30*time.Second-time.Since(start), func() bool {
			agents = nil
			var v struct{ Agents []agentView }
			if getJSON(base+"/api/v1/agents", token, &v) != nil || len(v.Agents) != 2 {
				return false
			}
			for _, a := range v.Agents {
				if a.State != "online" || len(a.Devices) == 0 {
					return false
				}
				for _, d := range a.Devices {
					if d.State != "ok" {
						return false
					}
				}
			}
			agents = v.Agents
			return true
		})
		devices := 0
		for _, a := range agents {
			devices += len(a.Devices)
		}
		if devices != 3 {
			t.Errorf("run %d: %d devices, want 3 (dye-01, loom-07, winder-02)", run, devices)
		}
		// Values move: the winder's length grows every second.
		length := func() float64 {
			var v struct {
				Latest []struct {
					Device, Point string
					Value         any
				}
			}
			if getJSON(base+"/api/v1/agents/keqiao-weaving/weaving-gw", token, &v) != nil {
				return -1
			}
			for _, l := range v.Latest {
				if l.Device == "winder-02" && l.Point == "length" {
					if f, ok := l.Value.(float64); ok {
						return f
					}
				}
			}
			return -1
		}
		var first float64
		waitUntil("a winder length", 10*time.Second, func() bool { first = length(); return first >= 0 })
		waitUntil("the winder length moving", 10*time.Second, func() bool { return length() > first })
		// The dashboard is served.
		resp, err := http.Get(base + "/")
		if err != nil || resp.StatusCode != 200 {
			fail("GET / : %v %v", err, resp)
		}
		resp.Body.Close()

		// Ctrl-C: the terminal sends SIGINT to the whole process group. Under
		// a parent that ignores SIGINT (a background job) the children
		// inherit that, so the test uses SIGTERM, which run.sh treats alike.
		sig := syscall.SIGINT
		if signal.Ignored(os.Interrupt) {
			sig = syscall.SIGTERM
		}
		_ = syscall.Kill(-cmd.Process.Pid, sig)
		select {
		case <-done:
			stopped = true
		case <-time.After(30 * time.Second):
			fail("still running 30 s after %v", sig)
		}
		if !strings.Contains(out.String(), "demo: stopped.") {
			fail("no 'demo: stopped.' after %v", sig)
		}
		for name, p := range ports {
			if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second); err == nil {
				c.Close()
				t.Errorf("run %d: something still listens on %s %d after the stop", run, name, p)
			}
		}
		t.Logf("run %d: ready and stopped in %s", run, time.Since(start).Round(time.Millisecond))
	}
}

type agentView struct {
	ID, Site, State string
	Devices         []struct{ ID, State string }
}

func tokenFrom(t *testing.T, out string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 3 && f[0] == "Admin" && f[1] == "token:" {
			return f[2]
		}
	}
	t.Fatalf("run.sh printed no admin token:\n%s", out)
	return ""
}

func getJSON(url, token string, v any) error {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
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

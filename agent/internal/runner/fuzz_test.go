package runner

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftiot/weft/wire"
)

// FuzzHandleCommand feeds arbitrary payloads (and command names) to the
// agent's command handler, as if they arrived on its command topic: it
// must never panic, and the agent must go on running. The broker is
// unreachable, so replies are dropped; the handler's decisions are what is
// exercised.
func FuzzHandleCommand(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	cfg := "agent: {id: a1, site: " + testSite + ", data_dir: " + filepath.Join(dir, "data") + "}\nmqtt: {broker: \"tcp://127.0.0.1:1\"}\n" +
		"devices: [{id: d1, modbus: {target: \"tcp://127.0.0.1:1\"}, points: [{name: x, table: holding, address: 0, type: uint16}]}]\n"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		f.Fatal(err)
	}
	opts := testOptions(path)
	opts.RollbackAfter = 50 * time.Millisecond
	started := make(chan *Agent, 1)
	opts.Started = func(a *Agent) { started <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, opts) }()
	var a *Agent
	select {
	case a = <-started:
	case err := <-done:
		f.Fatalf("agent did not start: %v", err)
	}
	f.Cleanup(func() { cancel(); <-done })

	f.Add("status", []byte(`{"v":1,"id":"x1","name":"status","ts":1}`))
	f.Add("rebirth", []byte(`{"v":1,"id":"x2","name":"rebirth"}`))
	f.Add("config", []byte(`{"v":1,"id":"x3","name":"config","config":"agent: {id: a1}\n"}`))
	f.Add("config", []byte(`{"v":1,"id":"x4","name":"config","config":"agent: {id: a1, site: other, data_dir: /x}\nmqtt: {broker: \"tcp://127.0.0.1:1\"}\n" +
		"devices: [{id: d1, modbus: {target: \"tcp://127.0.0.1:1\"}, points: [{name: x, table: holding, address: 0, type: uint16}]}]\n"}`))
	f.Add("reboot", []byte(`{"v":1,"id":"x5","name":"reboot"}`))
	f.Add("status", []byte(`{"v":2,"id":"x6","name":"status"}`))
	f.Add("status", []byte(`{"id":"a/b","name":"status"}`))
	f.Add("status", []byte("\x00\xff{"))
	f.Add("", []byte(`null`))
	f.Fuzz(func(t *testing.T, name string, payload []byte) {
		topic := wire.Topics{Prefix: "weft/v1"}.Cmd(testSite, "a1", name)
		a.handle(ctx, cmdMsg{topic: topic, payload: payload})
		if _, h := a.Config(); h == "" {
			t.Fatal("the agent lost its config")
		}
	})
}

package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseAgent feeds arbitrary bytes to the agent loader: it must never
// panic, and must return either a config or problems with positions.
func FuzzParseAgent(f *testing.F) {
	f.Add(AgentSample())
	f.Add(GatewaySample())
	f.Add([]byte(profileSrc))
	f.Add([]byte("a: &x [*x, *x]\nb: *x\n"))
	f.Add([]byte("devices: [{<<: {id: d}, modbus: {unit: 0x7fffffffffffffff}}]\n"))
	f.Add([]byte("agent: {id: \"${A:-${B}}\"}\n"))
	files, _ := filepath.Glob("testdata/errors/*.yaml")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAgent("fuzz.yaml", data)
		if err == nil {
			if a == nil || len(a.Devices) == 0 {
				t.Fatalf("no problems but no usable config: %+v", a)
			}
			return
		}
		es := AsErrors(err)
		if len(es) == 0 {
			t.Fatalf("ParseAgent returned %T %v, want Errors", err, err)
		}
		for _, e := range es {
			if e.Line < 0 || e.Col < 0 || e.Msg == "" {
				t.Fatalf("bad problem %#v", e)
			}
		}
	})
}

// FuzzParseGateway is FuzzParseAgent for the gateway's file.
func FuzzParseGateway(f *testing.F) {
	f.Add(GatewaySample())
	f.Add(AgentSample())
	f.Add([]byte("gateway: {id: gw}\nmqtt: {broker: embedded}\nauth: {admin_tokens: [\"${T:-0123456789abcdef}\"]}\n"))
	files, _ := filepath.Glob("testdata/errors/gw-*.yaml")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ParseGateway("fuzz.yaml", data)
		if err == nil {
			if g == nil || g.MQTT.Broker == "" {
				t.Fatalf("no problems but no usable config: %+v", g)
			}
			return
		}
		for _, e := range AsErrors(err) {
			if e.Line < 0 || e.Col < 0 || e.Msg == "" {
				t.Fatalf("bad problem %#v", e)
			}
		}
		if AsErrors(err) == nil {
			t.Fatalf("ParseGateway returned %T %v, want Errors", err, err)
		}
	})
}

package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftiot/weft/protocols/modbus"
	"github.com/weftiot/weft/protocols/opcua"
)

func mustAgent(t *testing.T, src string) *Agent {
	t.Helper()
	a, err := ParseAgent("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("ParseAgent: %v", err)
	}
	return a
}

func problemsOf(t *testing.T, src string) Errors {
	t.Helper()
	_, err := ParseAgent("test.yaml", []byte(src))
	es := AsErrors(err)
	if es == nil {
		t.Fatalf("want problems, got %v", err)
	}
	return es
}

const head = "agent: {id: a1, site: s1}\nmqtt: {broker: tcp://127.0.0.1:1883}\n"

// TestSamplesParse parses the built-in samples; they are what `config
// sample` prints and what field engineers start from.
func TestSamplesParse(t *testing.T) {
	a, err := ParseAgent("agent-sample.yaml", AgentSample())
	if err != nil {
		t.Fatalf("agent sample: %v", err)
	}
	protocols := map[string]bool{}
	for _, d := range a.Devices {
		protocols[d.Protocol] = true
	}
	if !protocols["modbus"] || !protocols["opcua"] {
		t.Errorf("agent sample should show both drivers, has %v", protocols)
	}
	for _, s := range [][]byte{modbus.Sample, opcua.Sample} {
		if !strings.Contains(string(AgentSample()), strings.SplitN(string(s), "\n", 2)[0]) {
			t.Errorf("agent sample misses a driver sample starting %q", strings.SplitN(string(s), "\n", 2)[0])
		}
	}
	if _, err := ParseGateway("gateway-sample.yaml", GatewaySample()); err != nil {
		t.Fatalf("gateway sample: %v", err)
	}
	for name, s := range map[string][]byte{"agent": AgentSample(), "gateway": GatewaySample()} {
		for _, bad := range []string{"10.", "192.168.", "0.0.0.0"} {
			if strings.Contains(string(s), bad) {
				t.Errorf("%s sample mentions %s; samples use loopback addresses only", name, bad)
			}
		}
	}
}

// TestDeployFilesParse loads every Weft config under deploy/. A YAML file
// is a Weft agent config when its top level has an agent: key, a gateway
// config when it has gateway:; other YAML (compose files, CI) is skipped.
// Those files get their secrets and per-instance values from the
// environment of their deployment: here a variable that is not set reads as
// deployPlaceholder(NAME), a valid id and a long enough token. A file that
// needs a number from the environment must give it a default (${N:-3}).
func TestDeployFilesParse(t *testing.T) {
	getenv := func(name string) (string, bool) {
		if v, ok := os.LookupEnv(name); ok {
			return v, true
		}
		return deployPlaceholder(name), true
	}
	n := 0
	err := filepath.WalkDir("../deploy", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		switch weftKind(data) {
		case "agent":
			n++
			if _, err := parseAgent(path, data, getenv); err != nil {
				t.Errorf("%v", err)
			}
		case "gateway":
			n++
			if _, err := parseGateway(path, data, getenv); err != nil {
				t.Errorf("%v", err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d Weft config files under deploy/", n)
}

func deployPlaceholder(name string) string {
	return "placeholder-" + strings.ToLower(strings.ReplaceAll(name, "_", "-"))
}

// weftKind tells a Weft config by its top-level key.
func weftKind(data []byte) string {
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "agent:"):
			return "agent"
		case strings.HasPrefix(line, "gateway:"):
			return "gateway"
		}
	}
	return ""
}

func TestDefaults(t *testing.T) {
	a := mustAgent(t, head+`
devices:
  - id: d1
    modbus: {target: tcp://127.0.0.1:502}
    points: [{name: p, table: holding, address: 1, type: float32}, {name: c, table: coil, address: 2}]
  - id: d2
    opcua: {endpoint: opc.tcp://127.0.0.1:4840}
    interval: 2s
    points: [{name: s, node: "ns=2;s=S"}]
`)
	if a.Agent.DataDir != "/var/lib/weft" || a.Agent.HealthInterval != 10*time.Second {
		t.Errorf("agent defaults: %+v", a.Agent)
	}
	m := a.MQTT
	if m.TopicPrefix != "weft/v1" || m.ClientID != "a1" || m.KeepAlive != 30*time.Second || m.MaxInflight != 32 || m.Format != "native" {
		t.Errorf("mqtt defaults: %+v", m)
	}
	if a.Spool.MaxBytes != 1<<30 || a.Spool.MaxAge != 168*time.Hour || a.Spool.Overflow != "drop_oldest" {
		t.Errorf("spool defaults: %+v", a.Spool)
	}
	if a.Batch.MaxSamples != 1000 || a.Batch.FlushInterval != time.Second {
		t.Errorf("batch defaults: %+v", a.Batch)
	}
	d1 := a.Devices[0]
	if d1.Protocol != "modbus" || d1.Interval != time.Second || d1.Heartbeat != time.Minute {
		t.Errorf("device defaults: %+v", d1)
	}
	mb := d1.Modbus
	if *mb.Unit != 1 || mb.Timeout != time.Second || *mb.Retries != 2 || mb.MaxRegistersPerRequest != 125 || mb.MaxBitsPerRequest != 2000 || *mb.MaxGap != 50 {
		t.Errorf("modbus defaults: %+v", mb)
	}
	p, c := d1.Points[0], d1.Points[1]
	if p.Modbus.Order != "ABCD" || *p.Scale != 1 || p.Heartbeat != time.Minute {
		t.Errorf("point defaults: %+v", p)
	}
	if c.Modbus.Type != "bool" || c.Modbus.Order != "" {
		t.Errorf("coil defaults: %+v", c.Modbus)
	}
	d2 := a.Devices[1]
	o := d2.OPCUA
	if d2.Protocol != "opcua" || o.SecurityPolicy != "None" || o.SecurityMode != "None" || o.Auth != "anonymous" || o.Timeout != 5*time.Second || o.PublishingInterval != 2*time.Second {
		t.Errorf("opcua defaults: %+v", o)
	}
	op := d2.Points[0].OPCUA
	if op.Mode != "subscribe" || op.QueueSize != 10 || op.SamplingInterval != 2*time.Second {
		t.Errorf("opcua point defaults: %+v", op)
	}
	if a.Hash() != Hash([]byte(head+"")) && len(a.Hash()) != 12 {
		t.Errorf("hash %q", a.Hash())
	}
}

func TestSpoolMaxAgeZeroKeepsForever(t *testing.T) {
	a := mustAgent(t, head+"spool: {max_age: 0}\ndevices: [{id: d, modbus: {target: tcp://127.0.0.1:502}, points: [{name: p, table: coil, address: 0}]}]\n")
	if a.Spool.MaxAge != 0 {
		t.Errorf("max_age: 0 written out must stay 0 (keep forever), got %s", a.Spool.MaxAge)
	}
}

func TestGatewayDefaults(t *testing.T) {
	g, err := ParseGateway("gw.yaml", []byte("mqtt: {broker: embedded}\ninfluxdb: {url: http://127.0.0.1:8086, bucket: weft/autogen}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if g.Gateway.ID != "gw-1" || g.Gateway.DataDir != "/var/lib/weft-gateway" || g.Gateway.HTTP != "127.0.0.1:8080" || g.Gateway.EmbeddedListen != "127.0.0.1:1883" {
		t.Errorf("gateway defaults: %+v", g.Gateway)
	}
	if g.MQTT.TopicPrefix != "weft/v1" || g.MQTT.SharedGroup != "" || g.MQTT.ClientID != "gw-1" {
		t.Errorf("gateway mqtt defaults: %+v", g.MQTT)
	}
	if g.InfluxDB.Measurement != "weft" || g.InfluxDB.BatchSize != 5000 || g.InfluxDB.FlushInterval != time.Second {
		t.Errorf("influx defaults: %+v", g.InfluxDB)
	}
	if g.Alerts.OfflineAfter != 2*time.Minute || g.Alerts.BacklogAgeAfter != 10*time.Minute {
		t.Errorf("alerts defaults: %+v", g.Alerts)
	}
}

const profileSrc = head + `
profiles:
  dyeing-v2:
    protocol: modbus
    points:
      - {name: bath_temp, table: holding, address: 100, type: float32, order: CDAB, unit: "°C", deadband: 0.2}
      - {name: pump_on, table: coil, address: 5}
devices:
  - id: dye-01
    profile: dyeing-v2
    modbus: {target: tcp://127.0.0.1:502}
    points:
      - {name: bath_temp, address: 102, deadband: ~, deadband_percent: 1}
      - {name: level, table: input, address: 7, type: uint16}
  - id: dye-02
    profile: dyeing-v2
    modbus: {target: tcp://127.0.0.1:502, unit: 2}
`

// TestProfileOverride: a device point of a profile point's name overrides
// the keys it writes (null removes one), keeps the others; other device
// points extend the list; devices share no pointers.
func TestProfileOverride(t *testing.T) {
	a := mustAgent(t, profileSrc)
	d1, d2 := a.Devices[0], a.Devices[1]
	if d1.Protocol != "modbus" || d2.Protocol != "modbus" {
		t.Fatalf("protocol from profile: %q %q", d1.Protocol, d2.Protocol)
	}
	names := func(d Device) string {
		var n []string
		for _, p := range d.Points {
			n = append(n, p.Name)
		}
		return strings.Join(n, ",")
	}
	if got := names(d1); got != "bath_temp,pump_on,level" {
		t.Errorf("dye-01 points %s", got)
	}
	if got := names(d2); got != "bath_temp,pump_on" {
		t.Errorf("dye-02 points %s", got)
	}
	bt := d1.Points[0]
	if *bt.Modbus.Address != 102 || bt.Modbus.Type != "float32" || bt.Modbus.Order != "CDAB" || bt.Unit != "°C" {
		t.Errorf("override kept the wrong keys: %+v %+v", bt, bt.Modbus)
	}
	if bt.Deadband != nil || bt.DeadbandPercent == nil || *bt.DeadbandPercent != 1 {
		t.Errorf("deadband: ~ should remove the profile's deadband, got %v %v", bt.Deadband, bt.DeadbandPercent)
	}
	if *d2.Points[0].Modbus.Address != 100 || *d2.Points[0].Deadband != 0.2 {
		t.Errorf("dye-02 must see the profile unchanged: %+v", d2.Points[0])
	}
	*d2.Points[0].Modbus.Address = 999
	if *a.Profiles["dyeing-v2"].Points[0].Modbus.Address != 100 {
		t.Errorf("devices share pointers with the profile")
	}
}

// TestProfileErrorsAtProfileLine: a mistake in a profile is reported once,
// at the profile's line, however many devices use it; a mistake made by an
// override is reported at the device's line.
func TestProfileErrorsAtProfileLine(t *testing.T) {
	src := strings.Replace(profileSrc, "{name: pump_on, table: coil, address: 5}", "{name: pump_on, table: coil, address: 5, bit: 3}", 1)
	src = strings.Replace(src, "{name: bath_temp, address: 102,", "{name: bath_temp, address: 65535,", 1)
	es := problemsOf(t, src)
	if len(es) != 2 {
		t.Fatalf("want 2 problems, got:\n%v", es)
	}
	if es[0].Path != "profiles.dyeing-v2.points[1].bit" || es[0].Line != 9 {
		t.Errorf("profile problem at %d %s", es[0].Line, es[0].Path)
	}
	if es[1].Path != "devices[0].points[0].address" || es[1].Line != 15 {
		t.Errorf("override problem at %d %s", es[1].Line, es[1].Path)
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("WEFT_T_HOST", "127.0.0.1")
	t.Setenv("WEFT_T_UNIT", "7")
	t.Setenv("WEFT_T_PASS", "pa$$word")
	os.Unsetenv("WEFT_T_UNSET")
	a := mustAgent(t, `agent: {id: a1, site: "${WEFT_T_SITE:-plant-3}"}
mqtt: {broker: "tcp://${WEFT_T_HOST}:1883", username: u, password: "${WEFT_T_PASS}"}
devices:
  - id: d1
    modbus: {target: "tcp://${WEFT_T_HOST}:502", unit: "${WEFT_T_UNIT}"}
    points: [{name: cost, unit: "USD$$", table: coil, address: 0}]
`)
	if a.Agent.Site != "plant-3" || a.MQTT.Broker != "tcp://127.0.0.1:1883" || *a.Devices[0].Modbus.Unit != 7 {
		t.Errorf("expansion: %q %q %v", a.Agent.Site, a.MQTT.Broker, *a.Devices[0].Modbus.Unit)
	}
	if a.Devices[0].Points[0].Unit != "USD$" {
		t.Errorf("$$ is a literal $: %q", a.Devices[0].Points[0].Unit)
	}
	if a.MQTT.Password != "pa$$word" {
		t.Errorf("a value from the environment is not expanded again: %q", a.MQTT.Password)
	}
	for _, c := range []struct{ src, want string }{
		{`mqtt: {broker: "tcp://${WEFT_T_UNSET}:1883"}`, "mqtt.broker: environment variable WEFT_T_UNSET is not set"},
		{`mqtt: {broker: "tcp://${WEFT_T_HOST:1883"}`, "mqtt.broker: ${ without a closing }"},
		{`mqtt: {broker: "tcp://${1X}:1883"}`, "mqtt.broker: ${1X} is not a variable reference"},
	} {
		es := problemsOf(t, "agent: {id: a1, site: s1}\n"+c.src+"\ndevices: [{id: d, modbus: {target: tcp://127.0.0.1:502}, points: [{name: p, table: coil, address: 0}]}]\n")
		if len(es) != 1 || !strings.Contains(es[0].Error(), c.want) {
			t.Errorf("%s: want %q, got\n%v", c.src, c.want, es)
		}
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mqtt.pass"), []byte("top-secret-1\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "opcua.pass"), []byte("top-secret-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "empty.pass"), []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := `agent: {id: a1, site: s1}
mqtt: {broker: tcp://127.0.0.1:1883, username: u, password_file: mqtt.pass}
devices:
  - id: d1
    opcua: {endpoint: opc.tcp://127.0.0.1:4840, auth: username, username: op, password_file: ` + filepath.Join(dir, "opcua.pass") + `}
    points: [{name: s, node: "ns=2;s=S"}]
`
	file := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := LoadAgent(file)
	if err != nil {
		t.Fatal(err)
	}
	if a.MQTT.Password != "top-secret-1" || a.Devices[0].OPCUA.Password != "top-secret-2" {
		t.Errorf("secrets: %q %q", a.MQTT.Password, a.Devices[0].OPCUA.Password)
	}

	// Problems never show a secret's value.
	t.Setenv("WEFT_T_SECRET", "hunter2-hunter2")
	bad := strings.Replace(cfg, "password_file: mqtt.pass", "password_file: empty.pass", 1)
	bad = strings.Replace(bad, "auth: username, username: op, password_file: "+filepath.Join(dir, "opcua.pass"), `auth: username, username: op, password: "${WEFT_T_SECRET}", password_file: x`, 1)
	_, err = ParseAgent(file, []byte(bad))
	es := AsErrors(err)
	if len(es) != 2 {
		t.Fatalf("want 2 problems, got %v", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("a problem shows the secret: %v", err)
	}
	if !strings.Contains(es[0].Error(), "mqtt.password_file: ") || !strings.Contains(es[0].Error(), "empty.pass is empty") {
		t.Errorf("empty file: %v", es[0])
	}

	g, err := ParseGateway(filepath.Join(dir, "gw.yaml"), []byte("mqtt: {broker: embedded}\ninfluxdb: {url: http://127.0.0.1:8086, bucket: b, token_file: mqtt.pass}\n"))
	if err != nil || g.InfluxDB.Token != "top-secret-1" {
		t.Errorf("token_file: %v %+v", err, g)
	}
	_, err = ParseGateway("gw.yaml", []byte("mqtt: {broker: embedded}\nauth: {admin_tokens: [\"sh0rt\"]}\n"))
	if err == nil || strings.Contains(err.Error(), "sh0rt") {
		t.Errorf("a short token must be refused without being shown: %v", err)
	}
}

// TestDecoderFormsAccepted covers the YAML the decoder accepts: block and
// flow style, anchors, aliases and merge keys, sizes, durations, number forms.
func TestDecoderFormsAccepted(t *testing.T) {
	src := head + `spool: {max_bytes: 10MB, max_age: 7d}
devices:
  - &base
    id: d1
    modbus: &plc
      target: tcp://127.0.0.1:502
      timeout: 250ms
    points:
      - {name: p1, table: holding, address: 0x10, type: uint16}
      - name: p2
        table: holding
        address: 0017
        type: int32
        scale: 1e-1
  - <<: *base
    id: d2
    modbus:
      <<: *plc
      unit: 3
`
	a := mustAgent(t, src)
	if a.Spool.MaxBytes != 10_000_000 || a.Spool.MaxAge != 168*time.Hour {
		t.Errorf("spool: %+v", a.Spool)
	}
	d1, d2 := a.Devices[0], a.Devices[1]
	if *d1.Points[0].Modbus.Address != 16 || *d1.Points[1].Modbus.Address != 17 || *d1.Points[1].Scale != 0.1 {
		t.Errorf("numbers: %v %v %v", *d1.Points[0].Modbus.Address, *d1.Points[1].Modbus.Address, *d1.Points[1].Scale)
	}
	if d2.ID != "d2" || len(d2.Points) != 2 || *d2.Modbus.Unit != 3 || d2.Modbus.Timeout != 250*time.Millisecond || d2.Modbus.Target != "tcp://127.0.0.1:502" {
		t.Errorf("merge keys: %+v %+v", d2, d2.Modbus)
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{
		"1GiB": 1 << 30, "512MiB": 512 << 20, "64KiB": 64 << 10, "10MB": 10e6, "1kB": 1000,
		"123": 123, "1.5GiB": 3 << 29, "2 TiB": 2 << 40, "0": 0,
	} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "-1MiB", "1 GB GB", "1PiB", "99999999999TiB", "NaN"} {
		if got, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", in, got)
		}
	}
	if s := ByteSize(1 << 30).String(); s != "1GiB" {
		t.Errorf("String: %s", s)
	}
}

func TestHash(t *testing.T) {
	if h := Hash([]byte("x")); h != "2d711642b726" {
		t.Errorf("Hash(x) = %s", h)
	}
	a := mustAgent(t, head+"devices: [{id: d, modbus: {target: tcp://127.0.0.1:502}, points: [{name: p, table: coil, address: 0}]}]\n")
	if a.Hash() != Hash([]byte(head+"devices: [{id: d, modbus: {target: tcp://127.0.0.1:502}, points: [{name: p, table: coil, address: 0}]}]\n")) {
		t.Errorf("Agent.Hash %s", a.Hash())
	}
}

// TestEveryProblemAtOnce: problems in many sections are all reported,
// sorted by position.
func TestEveryProblemAtOnce(t *testing.T) {
	es := problemsOf(t, `agent: {id: "", site: s1, colour: red}
mqtt: {broker: tcp://127.0.0.1:1883, max_inflight: 0}
batch: {max_samples: -1}
devices:
  - {id: d1, interval: -1s, modbus: {target: tcp://127.0.0.1:70000}, points: [{name: p, table: coils, address: 0}]}
`)
	want := []string{"agent.id", "agent.colour", "mqtt.max_inflight", "batch.max_samples", "devices[0].interval", "devices[0].modbus.target", "devices[0].points[0].table"}
	if len(es) != len(want) {
		t.Fatalf("want %d problems, got:\n%v", len(want), es)
	}
	for i, e := range es {
		if e.Path != want[i] {
			t.Errorf("problem %d at %s, want %s", i, e.Path, want[i])
		}
		if i > 0 && (e.Line < es[i-1].Line || e.Line == es[i-1].Line && e.Col < es[i-1].Col) {
			t.Errorf("problems not sorted: %v before %v", es[i-1], e)
		}
	}
}

func TestEmptyAndOddFiles(t *testing.T) {
	for name, src := range map[string]string{
		"empty":    "",
		"comment":  "# nothing\n",
		"scalar":   "hello\n",
		"list":     "- a\n- b\n",
		"null doc": "~\n",
		"bom":      "\uFEFF" + head,
	} {
		_, err := ParseAgent("t.yaml", []byte(src))
		if AsErrors(err) == nil {
			t.Errorf("%s: want problems, got %v", name, err)
		}
	}
	if _, err := LoadAgent(filepath.Join(t.TempDir(), "none.yaml")); err == nil || AsErrors(err) != nil {
		t.Errorf("a missing file is an ordinary error, got %v", err)
	}
}

// TestURLPasswordHidden: a password written into a URL is refused without
// being shown.
func TestURLPasswordHidden(t *testing.T) {
	es := problemsOf(t, "agent: {id: a1, site: s1}\nmqtt: {broker: \"tcp://u:hunter2-hunter2@127.0.0.1\", tls: {ca: x.pem}}\n"+
		"devices: [{id: d, modbus: {target: tcp://127.0.0.1:502}, points: [{name: p, table: coil, address: 0}]}]\n")
	if len(es) != 3 {
		t.Errorf("want no port, user information and tls problems, got\n%v", es)
	}
	if strings.Contains(es.Error(), "hunter2") {
		t.Errorf("a problem shows the password:\n%v", es)
	}
}

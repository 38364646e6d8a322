package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeSecretTest writes files into a temp dir: name -> (mode, text).
func writeSecretTest(t *testing.T, files map[string]struct {
	mode os.FileMode
	text string
}) string {
	t.Helper()
	dir := t.TempDir()
	for name, f := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(f.text), f.mode); err != nil {
			t.Fatal(err)
		}
		// WriteFile's mode is masked by the umask; set it exactly.
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type file = struct {
	mode os.FileMode
	text string
}

const secretHead = "agent: {id: a1, site: s1}\n"

const opcuaDevice = `devices:
  - id: m1
    protocol: modbus
    modbus: {target: tcp://127.0.0.1:502}
    points: [{name: p, table: holding, address: 0, type: uint16}]
  - id: o1
    protocol: opcua
    opcua:
      endpoint: opc.tcp://127.0.0.1:4840
      security_policy: Basic256Sha256
      security_mode: SignAndEncrypt
      auth: username
      username: weft
      %s
      certificate: client.crt
      private_key: DIR/%s
    points: [{name: q, node: "ns=2;s=Q"}]
`

func TestCheckSecrets(t *testing.T) {
	t.Setenv("WEFT_TEST_MQTT_PW", "s3cret-from-env")
	mqttLit := "mqtt: {broker: ssl://127.0.0.1:8883, username: a1, password: hunter2-literal, tls: {ca: ca.crt, cert: a1.crt, key: DIR/a1.key}}\n"
	mqttEnv := "mqtt: {broker: ssl://127.0.0.1:8883, username: a1, password: '${WEFT_TEST_MQTT_PW}', tls: {ca: ca.crt, cert: a1.crt, key: DIR/a1.key}}\n"
	mqttDef := "mqtt: {broker: ssl://127.0.0.1:8883, username: a1, password: '${WEFT_TEST_UNSET_PW:-hunter2-default}', tls: {ca: ca.crt, cert: a1.crt, key: DIR/a1.key}}\n"
	mqttFile := "mqtt: {broker: ssl://127.0.0.1:8883, username: a1, password_file: mqtt.pass, tls: {ca: ca.crt, cert: a1.crt, key: DIR/a1.key}}\n"
	devs := func(pw, key string) string {
		return strings.Replace(strings.Replace(opcuaDevice, "%s", pw, 1), "%s", key, 1)
	}
	cases := []struct {
		name  string
		files map[string]file
		want  []string // one substring set per expected error, "|"-separated
	}{
		{"all private", map[string]file{
			"agent.yaml": {0o640, secretHead + mqttLit + devs("password: opc-literal", "client.key")},
			"a1.key":     {0o600, "KEY"}, "client.key": {0o600, "KEY"},
		}, nil},
		{"literal passwords in a world-readable file", map[string]file{
			"agent.yaml": {0o644, secretHead + mqttLit + devs("password: opc-literal", "client.key")},
			"a1.key":     {0o600, "KEY"}, "client.key": {0o600, "KEY"},
		}, []string{
			"agent.yaml: mqtt.password: a secret written in a file readable by every user of this box (mode 0644)|chmod 640 |agent.yaml|mqtt.password_file (a file of mode 600) or ${ENV_VAR}",
			"agent.yaml: devices[1].opcua.password: |chmod 640 |devices[1].opcua.password_file",
		}},
		{"password from the environment", map[string]file{
			"agent.yaml": {0o644, secretHead + mqttEnv + devs("password_file: opc.pass", "client.key")},
			"a1.key":     {0o600, "KEY"}, "client.key": {0o600, "KEY"}, "opc.pass": {0o600, "pw"},
		}, nil},
		{"a default after :- is written in the file", map[string]file{
			"agent.yaml": {0o604, secretHead + mqttDef + devs("password_file: opc.pass", "client.key")},
			"a1.key":     {0o600, "KEY"}, "client.key": {0o600, "KEY"}, "opc.pass": {0o600, "pw"},
		}, []string{"mqtt.password: |(mode 0604)"}},
		{"world-readable key and password files", map[string]file{
			"agent.yaml": {0o640, secretHead + mqttFile + devs("password_file: opc.pass", "client.key")},
			"a1.key":     {0o644, "KEY"}, "client.key": {0o604, "KEY"}, "mqtt.pass": {0o666, "pw"}, "opc.pass": {0o640, "pw"},
		}, []string{
			"agent.yaml: mqtt.tls.key: |a1.key holds a secret and is readable by every user of this box (mode 0644); fix: chmod 600 |a1.key",
			"mqtt.password_file: |mqtt.pass|(mode 0666)|chmod 600",
			"devices[1].opcua.private_key: |client.key|(mode 0604)|chmod 600",
		}},
		{"missing key file is not this check's business", map[string]file{
			"agent.yaml": {0o640, secretHead + mqttFile + devs("password_file: opc.pass", "nonexistent/client.key")},
			"a1.key":     {0o600, "KEY"}, "mqtt.pass": {0o600, "pw"}, "opc.pass": {0o600, "pw"},
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for name, f := range c.files {
				f.text = strings.ReplaceAll(f.text, "DIR/", "%DIR%/")
				c.files[name] = f
			}
			dir := writeSecretTest(t, c.files)
			path := filepath.Join(dir, "agent.yaml")
			// Key files are opened relative to the working directory:
			// the test names them by absolute path.
			text := strings.ReplaceAll(mustReadFile(t, path), "%DIR%/", dir+"/")
			if err := os.WriteFile(path, []byte(text), c.files["agent.yaml"].mode); err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadAgent(path)
			if err != nil {
				t.Fatalf("LoadAgent: %v", err)
			}
			errs := CheckSecrets(path, cfg)
			if len(errs) != len(c.want) {
				t.Fatalf("CheckSecrets gave %d errors, want %d:\n%v", len(errs), len(c.want), errs)
			}
			for i, e := range errs {
				msg := e.Error()
				for _, part := range strings.Split(c.want[i], "|") {
					if !strings.Contains(msg, part) {
						t.Errorf("error %d: %q\nlacks %q", i, msg, part)
					}
				}
				if !strings.HasPrefix(msg, path+": ") {
					t.Errorf("error %d does not start with the config file: %q", i, msg)
				}
				for _, secret := range []string{"hunter2", "opc-literal", "s3cret", "KEY"} {
					if strings.Contains(msg, secret) {
						t.Errorf("error %d shows the secret %q: %q", i, secret, msg)
					}
				}
			}
		})
	}
}

func TestCheckGatewaySecrets(t *testing.T) {
	gw := `gateway: {id: gw1}
mqtt: {broker: tcp://127.0.0.1:1883, username: gw1, password_file: mqtt.pass}
influxdb: {url: http://127.0.0.1:8086, bucket: weft/autogen, token: influx-literal}
auth: {admin_tokens: ["admin-literal-token-0123456789"], read_tokens: ["${WEFT_TEST_READ_TOKEN}"]}
`
	t.Setenv("WEFT_TEST_READ_TOKEN", "read-token-from-env-0123456789")
	dir := writeSecretTest(t, map[string]file{"gateway.yaml": {0o644, gw}, "mqtt.pass": {0o644, "pw"}})
	path := filepath.Join(dir, "gateway.yaml")
	cfg, err := LoadGateway(path)
	if err != nil {
		t.Fatalf("LoadGateway: %v", err)
	}
	errs := CheckGatewaySecrets(path, cfg)
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
		for _, secret := range []string{"influx-literal", "admin-literal", "read-token"} {
			if strings.Contains(e.Error(), secret) {
				t.Errorf("error shows the secret %q: %q", secret, e)
			}
		}
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{"mqtt.password_file: ", "influxdb.token: ", "influxdb.token_file (a file of mode 600)", "auth.admin_tokens[0]: "} {
		if !strings.Contains(all, want) {
			t.Errorf("no error about %q in:\n%s", want, all)
		}
	}
	if strings.Contains(all, "read_tokens") {
		t.Errorf("a token from the environment was reported:\n%s", all)
	}
	if len(errs) != 3 {
		t.Errorf("got %d errors, want 3:\n%s", len(errs), all)
	}

	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "mqtt.pass"), 0o600); err != nil {
		t.Fatal(err)
	}
	if errs := CheckGatewaySecrets(path, cfg); len(errs) != 0 {
		t.Errorf("private files still refused: %v", errs)
	}
}

func TestIsEnvRef(t *testing.T) {
	for v, want := range map[string]bool{
		"${PW}": true, " ${PW} ": true, "${PW:-}": true, "${PW:-x}": false, "pre${PW}": false,
		"${PW}${Q}": false, "${1PW}": false, "hunter2": false, "$PW": false, "": false,
	} {
		if got := isEnvRef(v); got != want {
			t.Errorf("isEnvRef(%q) = %v, want %v", v, got, want)
		}
	}
}

func mustReadFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCheckSecretsRelativePaths: password_file is read from the config's
// directory, a TLS key from the working directory, as the code that opens
// each one does.
func TestCheckSecretsRelativePaths(t *testing.T) {
	dir := t.TempDir()
	cfg := &Agent{MQTT: MQTT{PasswordFile: "mqtt.pass", TLS: TLS{Key: "tls.key"}}}
	for _, f := range []string{"mqtt.pass", "tls.key"} {
		p := filepath.Join(dir, f)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfgPath, []byte("agent: {id: a1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errs := CheckSecrets(cfgPath, cfg)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "mqtt.password_file: "+filepath.Join(dir, "mqtt.pass")) {
		t.Errorf("from another working directory: %v; want only mqtt.password_file, found beside the config", errs)
	}
	t.Chdir(dir)
	errs = CheckSecrets(cfgPath, cfg)
	if len(errs) != 2 || !strings.Contains(errs[0].Error(), "mqtt.tls.key: tls.key holds a secret") {
		t.Errorf("from the config's directory: %v; want mqtt.tls.key (relative to here) and mqtt.password_file", errs)
	}
}

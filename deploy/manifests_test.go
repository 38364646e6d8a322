package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/weftiot/weft/config"
)

// Docker cannot run on the build machine, so the container files are
// checked by reading them: every YAML parses, the structure the docs
// promise is there (images, the shared group, non-root, read-only), the
// files they mount exist, and the gateway config they carry passes the
// gateway's own loader.

type obj = map[string]any

// loadYAML parses one YAML file into a generic tree; goccy resolves
// anchors and merge keys and refuses duplicate keys.
func loadYAML(t *testing.T, path string) obj {
	t.Helper()
	var o obj
	if err := yaml.Unmarshal([]byte(mustRead(t, path)), &o); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return o
}

// at walks a tree by keys; a missing key fails the test with the path.
func at(t *testing.T, where string, o any, keys ...string) any {
	t.Helper()
	cur := o
	for i, k := range keys {
		m, ok := cur.(obj)
		if !ok {
			t.Fatalf("%s: %s is not a mapping", where, strings.Join(keys[:i], "."))
		}
		if cur, ok = m[k]; !ok {
			t.Fatalf("%s: no %s", where, strings.Join(keys[:i+1], "."))
		}
	}
	return cur
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// TestAllYAMLParses parses every YAML file under deploy/compose and
// deploy/k8s.
func TestAllYAMLParses(t *testing.T) {
	n := 0
	for _, dir := range []string{"compose", "k8s"} {
		err := filepath.WalkDir(filepath.Join(repoRoot(t), "deploy", dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
				return err
			}
			loadYAML(t, p)
			n++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n < 8 {
		t.Errorf("parsed %d YAML files; want the compose stack and the k8s manifests", n)
	}
}

// gatewayEnv is what compose and Kubernetes put in the gateway's
// environment; the values are only for loading the config here.
var gatewayEnv = map[string]string{
	"WEFT_GATEWAY_ID": "gw-1", "WEFT_ADMIN_TOKEN": "test-admin-token-0123456789",
	"WEFT_READ_TOKEN": "test-read-token-0123456789", "INFLUX_TOKEN": "test-influx-token",
}

func TestCompose(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "deploy/compose")
	path := filepath.Join(dir, "compose.yaml")
	c := loadYAML(t, path)
	services := at(t, path, c, "services").(obj)

	if img := str(at(t, path, services, "mosquitto", "image")); !strings.HasPrefix(img, "eclipse-mosquitto:2") {
		t.Errorf("mosquitto image %q; want eclipse-mosquitto:2.x (the ACL syntax is 2.0's)", img)
	}
	if img := str(at(t, path, services, "influxdb", "image")); !strings.HasPrefix(img, "influxdb:2") {
		t.Errorf("influxdb image %q; want InfluxDB 2", img)
	}
	// Mosquitto keeps its persistence in a named volume, and runs the
	// shipped broker config.
	mvols := list(at(t, path, services, "mosquitto", "volumes"))
	if !slices.Contains(mvols, any("mosquitto-data:/mosquitto/data")) {
		t.Errorf("mosquitto volumes %v: no named volume for its persistence", mvols)
	}
	if _, ok := at(t, path, c, "volumes").(obj)["mosquitto-data"]; !ok {
		t.Error("volume mosquitto-data is not declared")
	}

	var gateways []string
	for name, s := range services {
		b, ok := s.(obj)["build"].(obj)
		if !ok || !strings.HasSuffix(str(b["dockerfile"]), "Dockerfile.gateway") {
			continue
		}
		gateways = append(gateways, name)
		where := path + ": " + name
		if u := str(at(t, where, s, "user")); u != "65532:65532" {
			t.Errorf("%s: user %q; want 65532:65532 (non-root)", where, u)
		}
		if ro, _ := s.(obj)["read_only"].(bool); !ro {
			t.Errorf("%s: read_only is not true", where)
		}
		if !slices.Contains(list(s.(obj)["cap_drop"]), any("ALL")) {
			t.Errorf("%s: cap_drop does not drop ALL", where)
		}
		if !slices.Contains(list(at(t, where, s, "volumes")), any("./gateway.yaml:/etc/weft/gateway.yaml:ro")) {
			t.Errorf("%s does not mount the shared gateway.yaml", where)
		}
		for _, p := range list(s.(obj)["ports"]) {
			if !strings.HasPrefix(str(p), "127.0.0.1:") {
				t.Errorf("%s publishes %v on every interface; the dashboard goes behind a proxy with TLS", where, p)
			}
		}
	}
	// The stack's broker is Mosquitto, which does not restore $share
	// subscriptions after a restart: one gateway with its own
	// subscription (a second one would only store everything again).
	if len(gateways) != 1 {
		t.Fatalf("compose has gateway services %v; want one (Mosquitto loses shared subscriptions at its restart, docs/gateway.md)", gateways)
	}
	ids := map[string]bool{}
	for _, g := range gateways {
		ids[str(at(t, path, services, g, "environment", "WEFT_GATEWAY_ID"))] = true
	}
	if len(ids) != len(gateways) {
		t.Errorf("gateways %v do not all have their own WEFT_GATEWAY_ID (MQTT client id): %v", gateways, ids)
	}

	// Every bind-mounted file exists, except what the operator makes
	// (pki/ from make-plant-pki.sh).
	for name, s := range services {
		for _, v := range list(s.(obj)["volumes"]) {
			src, _, _ := strings.Cut(str(v), ":")
			if !strings.HasPrefix(src, ".") || strings.HasPrefix(src, "./pki/") {
				continue
			}
			if _, err := os.Stat(filepath.Join(dir, src)); err != nil {
				t.Errorf("%s mounts %s, which is not in the repository: %v", name, src, err)
			}
		}
	}

	// The gateway config passes the gateway's loader, without a shared group.
	for k, v := range gatewayEnv {
		t.Setenv(k, v)
	}
	g, err := config.LoadGateway(filepath.Join(dir, "gateway.yaml"))
	if err != nil {
		t.Fatalf("deploy/compose/gateway.yaml: %v", err)
	}
	if g.MQTT.SharedGroup != "" || !strings.HasPrefix(g.MQTT.Broker, "ssl://mosquitto:") {
		t.Errorf("compose gateway.yaml: broker %q group %q; want ssl://mosquitto:8883 and no shared group (Mosquitto does not restore $share subscriptions after a restart)", g.MQTT.Broker, g.MQTT.SharedGroup)
	}
	if g.MQTT.TLS.Cert == "" || g.MQTT.TLS.Key == "" {
		t.Error("compose gateway.yaml has no client certificate for the broker")
	}
}

// TestComposeMosquittoConfInStep checks that the container's broker config
// is the shipped one with persistence added at the top (Debian's main
// config sets it; the eclipse-mosquitto image's does not).
func TestComposeMosquittoConfInStep(t *testing.T) {
	shipped := mustRead(t, filepath.Join(repoRoot(t), "deploy/mosquitto/mosquitto.conf"))
	compose := mustRead(t, filepath.Join(repoRoot(t), "deploy/compose/mosquitto.conf"))
	head, body, ok := strings.Cut(compose, "\n\n")
	if !ok || body != shipped {
		t.Error("deploy/compose/mosquitto.conf is out of step with deploy/mosquitto/mosquitto.conf; regenerate it with the command at its top")
	}
	if !strings.Contains(head, "\npersistence true\npersistence_location /mosquitto/data/") {
		t.Errorf("deploy/compose/mosquitto.conf does not keep its persistence in /mosquitto/data/:\n%s", head)
	}
}

func TestKubernetes(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "deploy/k8s")
	kust := loadYAML(t, filepath.Join(dir, "kustomization.yaml"))
	byKind := map[string]obj{}
	for _, r := range list(at(t, "kustomization.yaml", kust, "resources")) {
		o := loadYAML(t, filepath.Join(dir, str(r)))
		kind := str(at(t, str(r), o, "kind"))
		if byKind[kind] != nil {
			t.Fatalf("two %s manifests; the test expects one each", kind)
		}
		byKind[kind] = o
	}
	for _, k := range []string{"Deployment", "Service", "Secret", "ConfigMap"} {
		if byKind[k] == nil {
			t.Fatalf("no %s in kustomization.yaml resources", k)
		}
	}

	d := byKind["Deployment"]
	if r, _ := at(t, "deployment", d, "spec", "replicas").(uint64); r < 2 {
		t.Errorf("deployment replicas %v; want 2 or more on the shared subscription", at(t, "deployment", d, "spec", "replicas"))
	}
	pod := at(t, "deployment", d, "spec", "template", "spec").(obj)
	psc := at(t, "deployment", pod, "securityContext").(obj)
	if psc["runAsNonRoot"] != true || psc["runAsUser"] != uint64(65532) {
		t.Errorf("pod securityContext %v; want runAsNonRoot and runAsUser 65532", psc)
	}
	containers := list(pod["containers"])
	if len(containers) != 1 {
		t.Fatalf("want one container, have %d", len(containers))
	}
	ctr := containers[0].(obj)
	csc := at(t, "container", ctr, "securityContext").(obj)
	if csc["allowPrivilegeEscalation"] != false || csc["readOnlyRootFilesystem"] != true ||
		!slices.Contains(list(at(t, "container", csc, "capabilities", "drop")), any("ALL")) {
		t.Errorf("container securityContext %v; want no privilege escalation, read-only root, all capabilities dropped", csc)
	}

	// Every secret key the container reads is in the Secret.
	secret := byKind["Secret"]
	secretName := str(at(t, "secret", secret, "metadata", "name"))
	keys := at(t, "secret", secret, "stringData").(obj)
	envNames := map[string]bool{}
	for _, e := range list(ctr["env"]) {
		envNames[str(e.(obj)["name"])] = true
		ref, ok := e.(obj)["valueFrom"].(obj)["secretKeyRef"].(obj)
		if !ok {
			continue
		}
		if str(ref["name"]) != secretName {
			t.Errorf("env %v reads secret %v; the manifests define %s", e.(obj)["name"], ref["name"], secretName)
		} else if _, ok := keys[str(ref["key"])]; !ok {
			t.Errorf("env %v reads key %v, which secret %s lacks", e.(obj)["name"], ref["key"], secretName)
		}
	}
	for k := range gatewayEnv {
		if !envNames[k] {
			t.Errorf("the container does not set %s, which the config needs", k)
		}
	}

	// The Service selects the pods and targets the container's port.
	svc := byKind["Service"]
	sel := at(t, "service", svc, "spec", "selector").(obj)
	labels := at(t, "deployment", d, "spec", "template", "metadata", "labels").(obj)
	for k, v := range sel {
		if labels[k] != v {
			t.Errorf("service selector %s=%v does not match the pod labels %v", k, v, labels)
		}
	}
	var portNames []any
	for _, p := range list(ctr["ports"]) {
		portNames = append(portNames, p.(obj)["name"])
	}
	for _, p := range list(at(t, "service", svc, "spec", "ports")) {
		if !slices.Contains(portNames, p.(obj)["targetPort"]) {
			t.Errorf("service port %v targets %v; the container has %v", p.(obj)["name"], p.(obj)["targetPort"], portNames)
		}
	}

	// The ConfigMap's gateway.yaml loads, with the shared group the
	// replicas need (else each stores everything), set explicitly.
	cm := byKind["ConfigMap"]
	text := str(at(t, "configmap", cm, "data", "gateway.yaml"))
	for k, v := range gatewayEnv {
		t.Setenv(k, v)
	}
	g, err := config.ParseGateway(filepath.Join(t.TempDir(), "gateway.yaml"), []byte(text))
	if err != nil {
		t.Fatalf("configmap gateway.yaml: %v", err)
	}
	if g.MQTT.SharedGroup != "weft-gateway" {
		t.Errorf("configmap gateway.yaml shared_group %q; want weft-gateway", g.MQTT.SharedGroup)
	}
}

// TestDockerfiles checks the final stage of each Dockerfile: a distroless
// or scratch base, user 65532, and an entrypoint that is the binary built
// from a command package that exists.
func TestDockerfiles(t *testing.T) {
	for _, c := range []string{"agent", "gateway"} {
		t.Run(c, func(t *testing.T) {
			root := repoRoot(t)
			text := mustRead(t, filepath.Join(root, "deploy/docker/Dockerfile."+c))
			stages := regexp.MustCompile(`(?m)^FROM `).Split(text, -1)
			final := stages[len(stages)-1]
			if !strings.HasPrefix(final, "gcr.io/distroless/static") && !strings.HasPrefix(final, "scratch") {
				t.Errorf("final stage FROM %s; want distroless/static or scratch", strings.SplitN(final, "\n", 2)[0])
			}
			if !regexp.MustCompile(`(?m)^USER 65532(:65532)?$`).MatchString(final) {
				t.Error("final stage does not run as USER 65532")
			}
			bin := "/usr/local/bin/weft-" + c
			if !strings.Contains(final, `ENTRYPOINT ["`+bin+`"]`) || !strings.Contains(final, "COPY --from=build /out"+bin+" "+bin) {
				t.Errorf("final stage does not copy and run %s", bin)
			}
			if !strings.Contains(text, "CGO_ENABLED=0") || !strings.Contains(text, "./"+c+"/cmd/weft-"+c) {
				t.Errorf("build stage does not build ./%s/cmd/weft-%s statically", c, c)
			}
			if _, err := os.Stat(filepath.Join(root, c, "cmd", "weft-"+c)); err != nil {
				t.Error(err)
			}
		})
	}
}

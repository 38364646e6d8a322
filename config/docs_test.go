package config

import (
	"os"
	"strings"
	"testing"
)

// TestDocExamples loads the example agent file at the top of docs/config.md
// and docs/config.zh-CN.md, so that the docs cannot drift from the loader.
func TestDocExamples(t *testing.T) {
	t.Setenv("MQTT_PASSWORD", "test-password")
	for _, doc := range []string{"../docs/config.md", "../docs/config.zh-CN.md"} {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		_, rest, ok := strings.Cut(string(data), "```yaml\nagent:")
		if !ok {
			t.Fatalf("%s: no example agent file", doc)
		}
		example, _, _ := strings.Cut(rest, "```")
		a, err := ParseAgent(doc, []byte("agent:"+example))
		if err != nil {
			t.Errorf("%s: example does not load:\n%v", doc, err)
			continue
		}
		if len(a.Devices) != 2 || len(a.Devices[0].Points) != 3 {
			t.Errorf("%s: example has %d devices", doc, len(a.Devices))
		}
	}
}

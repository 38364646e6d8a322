package config

import (
	"os"
	"reflect"
	"regexp"
	"slices"
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

// TestDocsNameEveryKey checks docs/config.md and docs/config.zh-CN.md
// against the schema structs: every key of the agent's and the gateway's file
// (the drivers' keys included) is written in backquotes on both pages, every
// key a table row documents exists, and both pages document the same keys
// in their tables. A new key lands with its documentation in both languages.
func TestDocsNameEveryKey(t *testing.T) {
	keys := map[string]string{} // leaf key -> one dotted path it has
	schemaKeys(reflect.TypeFor[Agent](), "", keys)
	schemaKeys(reflect.TypeFor[Gateway](), "", keys)
	if len(keys) < 50 {
		t.Fatalf("found only %d keys in the schema structs: the walk is broken", len(keys))
	}
	var rowsEN []string
	for _, doc := range []string{"../docs/config.md", "../docs/config.zh-CN.md"} {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		for leaf, path := range keys {
			// `leaf`, `parent.leaf` (`tls.ca`) or, for a section, `leaf.child`
			// (`sparkplug.host_id`).
			re := regexp.MustCompile("`(?:[a-z_]+\\.)*" + regexp.QuoteMeta(leaf) + "(?:\\.[a-z_]+)*`")
			if !re.MatchString(text) {
				t.Errorf("%s: key %s (%q) is not documented", doc, path, leaf)
			}
		}
		rows := tableKeys(text)
		for _, k := range rows {
			if _, ok := keys[k[strings.LastIndexByte(k, '.')+1:]]; !ok {
				t.Errorf("%s: table row documents %q, which is no key of the schema", doc, k)
			}
		}
		if rowsEN == nil {
			rowsEN = rows
		} else if !slices.Equal(rowsEN, rows) {
			t.Errorf("%s documents keys %v in its tables, the English page %v", doc, rows, rowsEN)
		}
	}
}

// schemaKeys collects the yaml keys of struct type t (and of the structs it
// holds) into keys, leaf name -> dotted path below prefix.
func schemaKeys(t reflect.Type, prefix string, keys map[string]string) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t.PkgPath() == "time" {
		return
	}
	for f := range t.Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case !f.IsExported():
		case name == "" && opts == "inline":
			schemaKeys(f.Type, prefix, keys)
		case name == "" || name == "-":
		default:
			if _, ok := keys[name]; !ok {
				keys[name] = prefix + name
			}
			schemaKeys(f.Type, prefix+name+".", keys)
		}
	}
}

// tableKeys lists, in order, the backquoted keys in the first cell of the
// table rows of a docs page (| `key` | type | default | meaning |).
func tableKeys(text string) []string {
	var keys []string
	for line := range strings.Lines(text) {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cell, _, _ := strings.Cut(line[1:], "|")
		for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(cell, -1) {
			keys = append(keys, m[1])
		}
	}
	return keys
}

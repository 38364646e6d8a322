package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestTopics(t *testing.T) {
	for _, tt := range []struct {
		prefix, want string
	}{{"weft/v1", "weft/v1/"}, {"", ""}, {"plant/a/weft", "plant/a/weft/"}} {
		tp := Topics{Prefix: tt.prefix}
		got := []string{
			tp.Data("site", "gw"), tp.Status("site", "gw"), tp.Health("site", "gw"),
			tp.Cmd("site", "gw", "config"), tp.Reply("site", "gw", "c-17"),
			tp.DataWildcard(), tp.StatusWildcard(), tp.HealthWildcard(), tp.ReplyWildcard(), tp.CmdWildcard("site", "gw"),
		}
		p := tt.want
		want := []string{
			p + "site/gw/data", p + "site/gw/status", p + "site/gw/health",
			p + "site/gw/cmd/config", p + "site/gw/reply/c-17",
			p + "+/+/data", p + "+/+/status", p + "+/+/health", p + "+/+/reply/+", p + "site/gw/cmd/+",
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("prefix %q:\n got %q\nwant %q", tt.prefix, got, want)
		}
		// Every concrete topic parses back.
		for i, topic := range got[:5] {
			site, agent, kind, rest, err := ParseTopic(tt.prefix, topic)
			if err != nil {
				t.Fatalf("ParseTopic(%q, %q): %v", tt.prefix, topic, err)
			}
			wantKind := []string{KindData, KindStatus, KindHealth, KindCmd, KindReply}[i]
			wantRest := []string{"", "", "", "config", "c-17"}[i]
			if site != "site" || agent != "gw" || kind != wantKind || rest != wantRest {
				t.Errorf("ParseTopic(%q) = %q %q %q %q", topic, site, agent, kind, rest)
			}
		}
	}
}

func TestParseTopicRejects(t *testing.T) {
	for _, tt := range []struct {
		prefix, topic, want string
	}{
		{"weft/v1", "other/v1/s/a/data", `wire: topic "other/v1/s/a/data": topic mismatch: not under the prefix "weft/v1"`},
		{"weft/v1", "weft/v1s/a/data", `wire: topic "weft/v1s/a/data": topic mismatch: not under the prefix "weft/v1"`},
		{"weft/v1", "weft/v1/s/a", `wire: topic "weft/v1/s/a": topic mismatch: want {site}/{agent}/{kind} after the prefix`},
		{"weft/v1", "weft/v1/s/a/data/x", `wire: topic "weft/v1/s/a/data/x": topic mismatch: nothing may follow "data"`},
		{"weft/v1", "weft/v1/s/a/cmd", `wire: topic "weft/v1/s/a/cmd": topic mismatch: want one level, the command name, after "cmd"`},
		{"weft/v1", "weft/v1/s/a/reply/1/2", `wire: topic "weft/v1/s/a/reply/1/2": topic mismatch: want one level, the command id, after "reply"`},
		{"weft/v1", "weft/v1/s/a/metrics", `wire: topic "weft/v1/s/a/metrics": topic mismatch: unknown kind "metrics"; want data, status, health, cmd or reply`},
		{"weft/v1", "weft/v1//a/data", `wire: topic "weft/v1//a/data": topic mismatch: level 1: topic level "": must not be empty`},
		{"weft/v1", "weft/v1/+/a/data", `wire: topic "weft/v1/+/a/data": topic mismatch: level 1: topic level "+": must not contain the MQTT wildcards '+' or '#'`},
		{"weft/v1", "weft/v1/s/#/data", `wire: topic "weft/v1/s/#/data": topic mismatch: level 2: topic level "#": must not contain the MQTT wildcards '+' or '#'`},
		{"weft/v1", "weft/v1/s/a\x00/data", `wire: topic "weft/v1/s/a\x00/data": topic mismatch: level 2: topic level "a\x00": must not contain control characters`},
		{"weft/v1", "weft/v1/s/a\xff/data", `wire: topic "weft/v1/s/a\xff/data": topic mismatch: level 2: topic level "a\xff": is not valid UTF-8`},
		{"", "s/a/cmd/", `wire: topic "s/a/cmd/": topic mismatch: level 4: topic level "": must not be empty`},
	} {
		_, _, _, _, err := ParseTopic(tt.prefix, tt.topic)
		if err == nil {
			t.Errorf("ParseTopic(%q, %q) accepted it", tt.prefix, tt.topic)
			continue
		}
		if !errors.Is(err, ErrTopic) {
			t.Errorf("ParseTopic(%q): %v is not ErrTopic", tt.topic, err)
		}
		if err.Error() != tt.want {
			t.Errorf("ParseTopic(%q):\n got %s\nwant %s", tt.topic, err, tt.want)
		}
	}
}

func TestTopicsValidate(t *testing.T) {
	for _, ok := range []string{"", "weft/v1", "a", "工厂/weft"} {
		if err := (Topics{Prefix: ok}).Validate(); err != nil {
			t.Errorf("prefix %q: %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"weft/":   `wire: topic prefix "weft/": topic level "": must not be empty`,
		"/weft":   `wire: topic prefix "/weft": topic level "": must not be empty`,
		"weft/+":  `wire: topic prefix "weft/+": topic level "+": must not contain the MQTT wildcards '+' or '#'`,
		"$SYS/x":  `wire: topic prefix "$SYS/x": must not start with '$' (reserved for the broker)`,
		"we\nft":  `wire: topic prefix "we\nft": topic level "we\nft": must not contain control characters`,
		"a//b":    `wire: topic prefix "a//b": topic level "": must not be empty`,
		"weft/v#": `wire: topic prefix "weft/v#": topic level "v#": must not contain the MQTT wildcards '+' or '#'`,
	} {
		err := (Topics{Prefix: bad}).Validate()
		if err == nil || err.Error() != want {
			t.Errorf("prefix %q: got %v, want %s", bad, err, want)
		}
	}
}

func TestCheckLevelLength(t *testing.T) {
	if err := CheckLevel(strings.Repeat("a", MaxNameBytes)); err != nil {
		t.Errorf("a name of MaxNameBytes: %v", err)
	}
	if err := CheckLevel(strings.Repeat("a", MaxNameBytes+1)); err == nil || !strings.Contains(err.Error(), "longer than 256 bytes") {
		t.Errorf("a name past MaxNameBytes: %v", err)
	}
}

func TestCheckTopic(t *testing.T) {
	b := &Batch{Agent: "gw-1", Site: "plant"}
	if err := CheckTopic(b, "plant", "gw-1"); err != nil {
		t.Fatal(err)
	}
	err := CheckTopic(b, "plant", "gw-2")
	want := `wire: data message: topic mismatch: payload says site "plant" agent "gw-1", topic says site "plant" agent "gw-2"`
	if !errors.Is(err, ErrTopic) || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	if err := CheckTopic(b, "other", "gw-1"); !errors.Is(err, ErrTopic) {
		t.Fatalf("site mismatch: %v", err)
	}
}

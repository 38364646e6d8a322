package wire

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestControlRoundTrip(t *testing.T) {
	h := Health{V: Version, Agent: "gw", Site: "s", TS: 5, UptimeS: 60,
		Spool:     SpoolHealth{Batches: 2, Bytes: 300, LastSeq: 9},
		Forwarder: ForwardHealth{Connected: true, PublishedBatch: 4},
		Devices:   []DeviceHealth{{ID: "dye-01", Protocol: "modbus", State: DeviceOK, Reads: 10, LatencyMs: 1.5}}}
	st := Status{V: Version, Agent: "gw", Site: "s", State: Online, Version: "v1.0.0", Devices: []string{"dye-01"}, TS: 7}
	cmd := Command{V: Version, ID: "c-1", Name: CmdConfig, Config: "agent: {id: gw}\n", TS: 8}
	rep := Reply{V: Version, ID: "c-1", OK: true, ConfigHash: "abc", Health: &h, TS: 9}

	var st2 Status
	var h2 Health
	var cmd2 Command
	var rep2 Reply
	for _, c := range []struct {
		in, out any
		dec     func([]byte) error
	}{
		{&st, &st2, func(b []byte) error { return DecodeStatus(b, &st2) }},
		{&h, &h2, func(b []byte) error { return DecodeHealth(b, &h2) }},
		{&cmd, &cmd2, func(b []byte) error { return DecodeCommand(b, &cmd2) }},
		{&rep, &rep2, func(b []byte) error { return DecodeReply(b, &rep2) }},
	} {
		data, err := json.Marshal(c.in)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.dec(data); err != nil {
			t.Fatalf("%T: %v\n%s", c.in, err, data)
		}
		if !reflect.DeepEqual(c.in, c.out) {
			t.Fatalf("%T: round trip gives %+v, want %+v", c.in, c.out, c.in)
		}
	}
}

func TestControlRejects(t *testing.T) {
	big := `{"v":1,"agent":"gw","site":"s","state":"online","version":"` + strings.Repeat("x", MaxStatusBytes) + `"}`
	for _, tt := range []struct {
		name string
		dec  func([]byte) error
		in   string
		cat  error
		want string
	}{
		{"status not json", decStatus, `online`, ErrMalformed, `wire: status message: malformed: invalid character 'o' looking for beginning of value`},
		{"status no v", decStatus, `{"agent":"gw"}`, ErrMalformed, `wire: status message: malformed: missing key "v"`},
		{"status v2", decStatus, `{"v":2,"agent":["changed shape"]}`, ErrVersion, `wire: status message: unsupported version: version 2 is not supported; this build reads version 1`},
		{"status big", decStatus, big, ErrTooLarge, `wire: status message: too large: 65597 bytes, the limit is 65536`},
		{"status state", decStatus, `{"v":1,"agent":"gw","site":"s","state":"up","ts":1}`, ErrMalformed, `wire: status message: malformed: state "up"; want "online" or "offline"`},
		{"status no agent", decStatus, `{"v":1,"site":"s","state":"online","ts":1}`, ErrMalformed, `wire: status message: malformed: agent: topic level "": must not be empty`},
		{"status bad site", decStatus, `{"v":1,"agent":"gw","site":"a/b","state":"online","ts":1}`, ErrMalformed, `wire: status message: malformed: site: topic level "a/b": must not contain '/'`},
		{"status wrong type", decStatus, `{"v":1,"agent":"gw","site":"s","state":"online","ts":"now"}`, ErrMalformed, `wire: status message: malformed: json: cannot unmarshal string into Go struct field Status.ts of type int64`},
		{"status trailing", decStatus, `{"v":1} {}`, ErrMalformed, `wire: status message: malformed: invalid character '{' after top-level value`},
		{"health device state", decHealth, `{"v":1,"agent":"gw","site":"s","devices":[{"id":"d","state":"sleepy"}]}`, ErrMalformed, `wire: health message: malformed: devices[0] "d": state "sleepy"; want "ok", "degraded" or "down"`},
		{"health device id", decHealth, `{"v":1,"agent":"gw","site":"s","devices":[{"state":"ok"}]}`, ErrMalformed, `wire: health message: malformed: devices[0]: id is empty`},
		{"command no id", decCommand, `{"v":1,"name":"status"}`, ErrMalformed, `wire: command message: malformed: id: topic level "": must not be empty`},
		{"command id wildcard", decCommand, `{"v":1,"id":"#","name":"status"}`, ErrMalformed, `wire: command message: malformed: id: topic level "#": must not contain the MQTT wildcards '+' or '#'`},
		{"command no name", decCommand, `{"v":1,"id":"c1"}`, ErrMalformed, `wire: command message: malformed: name: topic level "": must not be empty`},
		{"config without config", decCommand, `{"v":1,"id":"c1","name":"config"}`, ErrMalformed, `wire: command message: malformed: a "config" command needs a config`},
		{"reply no id", decReply, `{"v":1,"ok":true}`, ErrMalformed, `wire: reply message: malformed: id: topic level "": must not be empty`},
		{"reply failed silently", decReply, `{"v":1,"id":"c1","ok":false}`, ErrMalformed, `wire: reply message: malformed: ok is false but there is no error`},
		{"reply bad health", decReply, `{"v":1,"id":"c1","ok":true,"health":{"agent":"gw","site":""}}`, ErrMalformed, `wire: reply health message: malformed: site: topic level "": must not be empty`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.dec([]byte(tt.in))
			if err == nil {
				t.Fatalf("accepted %s", tt.in)
			}
			if !errors.Is(err, tt.cat) {
				t.Errorf("%v is not %v", err, tt.cat)
			}
			if err.Error() != tt.want {
				t.Errorf("\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestCommandUnknownNameAccepted(t *testing.T) {
	var c Command
	if err := DecodeCommand([]byte(`{"v":1,"id":"c1","name":"reboot","extra":1}`), &c); err != nil {
		t.Fatalf("an unknown command name is for the agent to answer, not a decode error: %v", err)
	}
}

func decStatus(b []byte) error  { var s Status; return DecodeStatus(b, &s) }
func decHealth(b []byte) error  { var h Health; return DecodeHealth(b, &h) }
func decCommand(b []byte) error { var c Command; return DecodeCommand(b, &c) }
func decReply(b []byte) error   { var r Reply; return DecodeReply(b, &r) }

package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestControlRoundTrip(t *testing.T) {
	h := Health{V: Version, Agent: "gw", Site: "s", TS: 5, UptimeS: 60,
		Spool:     SpoolHealth{Batches: 2, Bytes: 300, LastSeq: 9, DroppedOldest: 7, DroppedExpired: 3, DroppedCorrupt: 11, LostSamples: 5},
		Forwarder: ForwardHealth{Connected: true, PublishedBatch: 4, SamplesPerS: 12.5, BatchesPerS: 0.25},
		Devices: []DeviceHealth{{ID: "dye-01", Protocol: "modbus", State: DeviceOK, Reads: 10, LatencyMs: 1.5,
			ErrorsByKind: map[string]uint64{ErrorTimeout: 3, ErrorException: 1}}}}
	st := Status{V: Version, Agent: "gw", Site: "s", State: Online, Version: "v1.0.0", Devices: []string{"dye-01"},
		Points: []DevicePoints{{Device: "dye-01", Protocol: "modbus", Points: []PointInfo{{Name: "bath_temp", Unit: "°C", Type: "int16"}, {Name: "running"}}}}, TS: 7}
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
		{"status big", decStatus, big, ErrTooLarge, `wire: status message: too large: 4194365 bytes, the limit is 4194304`},
		{"status state", decStatus, `{"v":1,"agent":"gw","site":"s","state":"up","ts":1}`, ErrMalformed, `wire: status message: malformed: state "up"; want "online" or "offline"`},
		{"status no agent", decStatus, `{"v":1,"site":"s","state":"online","ts":1}`, ErrMalformed, `wire: status message: malformed: agent: topic level "": must not be empty`},
		{"status bad site", decStatus, `{"v":1,"agent":"gw","site":"a/b","state":"online","ts":1}`, ErrMalformed, `wire: status message: malformed: site: topic level "a/b": must not contain '/'`},
		{"status wrong type", decStatus, `{"v":1,"agent":"gw","site":"s","state":"online","ts":"now"}`, ErrMalformed, `wire: status message: malformed: json: cannot unmarshal string into Go struct field Status.ts of type int64`},
		{"status points device", decStatus, `{"v":1,"agent":"gw","site":"s","state":"online","points":[{"points":[]}]}`, ErrMalformed, `wire: status message: malformed: points[0].device: must not be empty`},
		{"status point name", decStatus, `{"v":1,"agent":"gw","site":"s","state":"online","points":[{"device":"d","points":[{"name":"a"},{"unit":"°C"}]}]}`, ErrMalformed, `wire: status message: malformed: points[0] "d": points[1].name: must not be empty`},
		{"status point long", decStatus, `{"v":1,"agent":"gw","site":"s","state":"online","points":[{"device":"d","points":[{"name":"` + strings.Repeat("n", MaxNameBytes+1) + `"}]}]}`, ErrMalformed, `wire: status message: malformed: points[0] "d": points[0].name: 257 bytes, the limit is 256`},
		{"status unit long", decStatus, `{"v":1,"agent":"gw","site":"s","state":"online","points":[{"device":"d","points":[{"name":"p","unit":"` + strings.Repeat("u", MaxUnitBytes+1) + `"}]}]}`, ErrMalformed, `wire: status message: malformed: points[0] "d": point "p": unit is 65 bytes, the limit is 64`},
		{"status type long", decStatus, `{"v":1,"agent":"gw","site":"s","state":"online","points":[{"device":"d","points":[{"name":"p","type":"` + strings.Repeat("t", MaxUnitBytes+1) + `"}]}]}`, ErrMalformed, `wire: status message: malformed: points[0] "d": point "p": type is 65 bytes, the limit is 64`},
		{"status points shape", decStatus, `{"v":1,"agent":"gw","site":"s","state":"online","points":{"d":{}}}`, ErrMalformed, `wire: status message: malformed: json: cannot unmarshal object into Go struct field Status.points of type []wire.DevicePoints`},
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

// TestStatusWithoutPoints: a status from an agent older than the points key
// decodes, and so does one whose points carry keys this build does not know.
func TestStatusWithoutPoints(t *testing.T) {
	var s Status
	if err := DecodeStatus([]byte(`{"v":1,"agent":"gw","site":"s","state":"online","devices":["d"],"ts":1}`), &s); err != nil {
		t.Fatal(err)
	}
	if s.Points != nil {
		t.Fatalf("points %+v from a status without them", s.Points)
	}
	in := `{"v":1,"agent":"gw","site":"s","state":"online","ts":1,"points":[{"device":"d","extra":[1],"points":[{"name":"p","unit":"bar","scale":0.1}]}]}`
	if err := DecodeStatus([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	want := []DevicePoints{{Device: "d", Points: []PointInfo{{Name: "p", Unit: "bar"}}}}
	if !reflect.DeepEqual(s.Points, want) {
		t.Fatalf("points %+v, want %+v", s.Points, want)
	}
}

// bigStatus is the status of a box with devices × points tags, with names as
// long as plants write them.
func bigStatus(devices, points int) *Status {
	s := &Status{V: Version, Agent: "weihai-dyeworks-gw-07", Site: "weihai-textile-park", State: Online,
		Version: "v1.4.2", ConfigHash: "9f2c6e0b1d3a4f5e", Started: 1732540790000, TS: 1732540800000}
	units := []string{"°C", "bar", "m³/h", "rpm", "%", "kWh", ""}
	types := []string{"float32", "int16", "uint32", "bool"}
	for d := range devices {
		id := fmt.Sprintf("dyeing-machine-%03d", d)
		s.Devices = append(s.Devices, id)
		dp := DevicePoints{Device: id, Protocol: "modbus"}
		for p := range points {
			dp.Points = append(dp.Points, PointInfo{Name: fmt.Sprintf("zone_%02d_bath_temperature", p), Unit: units[p%len(units)], Type: types[p%len(types)]})
		}
		s.Points = append(s.Points, dp)
	}
	return s
}

// TestStatusOf10000Points: the status of a box with 10,000 tags fits the
// limit with room to spare (docs/wire.md gives the size).
func TestStatusOf10000Points(t *testing.T) {
	data, err := json.Marshal(bigStatus(100, 100))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("status of 100 devices × 100 points: %d bytes (%.0f per point); limit %d", len(data), float64(len(data))/10000, MaxStatusBytes)
	if len(data) > MaxStatusBytes/4 {
		t.Errorf("a 10,000-point status is %d bytes, more than a quarter of the %d limit", len(data), MaxStatusBytes)
	}
	var s Status
	if err := DecodeStatus(data, &s); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Points) * len(s.Points[0].Points); n != 10000 {
		t.Fatalf("%d points decoded", n)
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

// TestHealthKeys pins the JSON keys of the health figures the gateway and
// the docs (docs/wire.md) name.
func TestHealthKeys(t *testing.T) {
	h := Health{V: Version, Agent: "gw", Site: "s",
		Spool:     SpoolHealth{DroppedExpired: 3, DroppedCorrupt: 11, LostSamples: 5},
		Forwarder: ForwardHealth{SamplesPerS: 12.5, BatchesPerS: 0.25},
		Devices: []DeviceHealth{{ID: "a", State: DeviceOK, ErrorsByKind: map[string]uint64{ErrorTimeout: 3, ErrorIO: 2}},
			{ID: "b", State: DeviceOK}}}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"dropped_expired":3`, `"dropped_corrupt":11`, `"lost_samples":5`,
		`"samples_per_s":12.5`, `"batches_per_s":0.25`, `"errors_by_kind":{"io":2,"timeout":3}`} {
		if !strings.Contains(s, want) {
			t.Errorf("health JSON lacks %s:\n%s", want, s)
		}
	}
	if n := strings.Count(s, "errors_by_kind"); n != 1 {
		t.Errorf("errors_by_kind %d times, want once (left out for the device without): %s", n, s)
	}
}

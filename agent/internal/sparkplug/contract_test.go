package sparkplug

import (
	"testing"

	spb "github.com/weftiot/weft/wire/sparkplug"
)

// TestTopicsMatchWireSparkplug: the topics the node builds are
// wire/sparkplug's and parse back.
func TestTopicsMatchWireSparkplug(t *testing.T) {
	for _, typ := range []string{typeNBIRTH, typeNDEATH, typeNCMD} {
		got, want := nodeTopic("weihai", typ, "dye-gw"), spb.NodeTopic("weihai", spb.MessageType(typ), "dye-gw")
		if got != want {
			t.Errorf("nodeTopic = %q, wire/sparkplug says %q", got, want)
		}
		if tp, err := spb.ParseTopic(got); err != nil || string(tp.Type) != typ {
			t.Errorf("ParseTopic(%q) = %+v, %v", got, tp, err)
		}
	}
	for _, typ := range []string{typeDBIRTH, typeDDEATH, typeDDATA} {
		got, want := deviceTopic("weihai", typ, "dye-gw", "dyer1"), spb.DeviceTopic("weihai", spb.MessageType(typ), "dye-gw", "dyer1")
		if got != want {
			t.Errorf("deviceTopic = %q, wire/sparkplug says %q", got, want)
		}
		if tp, err := spb.ParseTopic(got); err != nil || string(tp.Type) != typ || tp.Device != "dyer1" {
			t.Errorf("ParseTopic(%q) = %+v, %v", got, tp, err)
		}
	}
	if got, want := stateTopic("scada"), spb.StateTopic("scada"); got != want {
		t.Errorf("stateTopic = %q, wire/sparkplug says %q", got, want)
	}
}

// FuzzDecodeState: the node reads a STATE message exactly as
// wire/sparkplug.DecodeState does.
func FuzzDecodeState(f *testing.F) {
	for _, s := range []string{`{"online":true,"timestamp":1700000000000}`, `{"online":false,"timestamp":0}`, `{"online":1}`,
		`{"online":true,"timestamp":1.5}`, `{"online":true,"timestamp":-1}`, `{"timestamp":5}`, `null`, `{"online":true,"timestamp":9007199254740993}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeState(b)
		want, wantErr := spb.DecodeState(b)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("%q: decodeState error %v, wire/sparkplug %v", b, err, wantErr)
		}
		if got.Online != want.Online || got.Timestamp != want.Timestamp {
			t.Fatalf("%q: decodeState = %+v, wire/sparkplug %+v", b, got, want)
		}
	})
}

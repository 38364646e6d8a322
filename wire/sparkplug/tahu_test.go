package sparkplug

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/weftiot/weft/wire"
	pb "github.com/weftiot/weft/wire/sparkplug/sparkplugpb"
)

// tahuVersion is the npm sparkplug-payload (Eclipse Tahu's JavaScript
// payload library) the cross-check uses.
const tahuVersion = "1.0.3"

// tahu returns a directory with sparkplug-payload installed, installing it
// into the Weft cache the first time. The test skips only when node or npm
// is missing or the npm registry cannot be reached.
func tahu(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed: no cross-check against Eclipse Tahu's sparkplug-payload")
	}
	cache := os.Getenv("WEFT_CACHE")
	if cache == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			t.Skipf("no cache directory: %v", err)
		}
		cache = filepath.Join(dir, "weft")
	}
	dir := filepath.Join(cache, "npm-sparkplug-payload-"+tahuVersion)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "sparkplug-payload", "package.json")); err == nil {
		return dir
	}
	if testing.Short() {
		t.Skip("-short: not installing sparkplug-payload from npm")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm is not installed: no cross-check against Eclipse Tahu's sparkplug-payload")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("npm", "install", "--no-audit", "--no-fund", "--prefix", dir, "sparkplug-payload@"+tahuVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("npm install sparkplug-payload@%s failed (registry unreachable?): %v\n%s", tahuVersion, err, out)
	}
	return dir
}

type tahuReply struct {
	Decoded []map[string]any `json:"decoded"`
	Encoded []string         `json:"encoded"`
}

func runTahu(t *testing.T, req any) tahuReply {
	t.Helper()
	dir := tahu(t)
	script, err := filepath.Abs("testdata/tahu.js")
	if err != nil {
		t.Fatal(err)
	}
	in, _ := json.Marshal(req)
	cmd := exec.Command("node", script)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node tahu.js: %v\n%s", err, stderr.String())
	}
	var r tahuReply
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("tahu.js output %q: %v", out, err)
	}
	return r
}

// TestTahuDecodesWeft: payloads as Weft's edge node writes them (NBIRTH,
// DBIRTH with units, DDATA by alias with historical and quality) read the
// same in Eclipse Tahu's JavaScript library.
func TestTahuDecodesWeft(t *testing.T) {
	birth := &Payload{Timestamp: proto.Uint64(1700000000000), Seq: proto.Uint64(0), Metrics: []*Metric{
		{Name: proto.String(MetricBdSeq), Datatype: proto.Uint32(uint32(pb.DataType_Int64)), Value: &pb.Payload_Metric_LongValue{LongValue: 7}},
		{Name: proto.String(MetricRebirth), Datatype: proto.Uint32(uint32(pb.DataType_Boolean)), Value: &pb.Payload_Metric_BooleanValue{}},
	}}
	temp := &Metric{Name: proto.String("temp"), Alias: proto.Uint64(1), Datatype: proto.Uint32(uint32(pb.DataType_Double)), Timestamp: proto.Uint64(1700000000001)}
	_ = SetValue(temp, pb.DataType_Double, wire.FloatValue(81.25))
	AddProperty(temp, PropUnit, StringProperty("°C"))
	neg := &Metric{Name: proto.String("offset"), Alias: proto.Uint64(2), Datatype: proto.Uint32(uint32(pb.DataType_Int64))}
	_ = SetValue(neg, pb.DataType_Int64, wire.IntValue(-5))
	big := &Metric{Name: proto.String("energy"), Alias: proto.Uint64(3), Datatype: proto.Uint32(uint32(pb.DataType_UInt64))}
	_ = SetValue(big, pb.DataType_UInt64, wire.UintValue(math.MaxUint64))
	s := &Metric{Name: proto.String("state"), Alias: proto.Uint64(4), Datatype: proto.Uint32(uint32(pb.DataType_String))}
	_ = SetValue(s, pb.DataType_String, wire.StringValue("染色 running"))
	null := &Metric{Name: proto.String("level"), Alias: proto.Uint64(5), Datatype: proto.Uint32(uint32(pb.DataType_Double)), IsNull: proto.Bool(true)}
	dbirth := &Payload{Timestamp: proto.Uint64(1700000000000), Seq: proto.Uint64(1), Metrics: []*Metric{temp, neg, big, s, null}}
	dm := &Metric{Alias: proto.Uint64(1), Timestamp: proto.Uint64(1600000000000), IsHistorical: proto.Bool(true)}
	_ = SetValue(dm, pb.DataType_Double, wire.FloatValue(82))
	AddProperty(dm, PropQuality, Int32Property(QualityCode(wire.Uncertain)))
	ddata := &Payload{Timestamp: proto.Uint64(1700000000002), Seq: proto.Uint64(255), Metrics: []*Metric{dm}}

	var hexes []string
	for _, p := range []*Payload{birth, dbirth, ddata} {
		b, err := Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		hexes = append(hexes, hex.EncodeToString(b))
	}
	r := runTahu(t, map[string]any{"decode": hexes})
	if len(r.Decoded) != 3 {
		t.Fatalf("tahu decoded %d payloads", len(r.Decoded))
	}
	metrics := func(p map[string]any) []map[string]any {
		var out []map[string]any
		for _, m := range p["metrics"].([]any) {
			out = append(out, m.(map[string]any))
		}
		return out
	}
	nb := r.Decoded[0]
	if nb["seq"] != "0" || nb["timestamp"] != "1700000000000" {
		t.Errorf("NBIRTH header as Tahu reads it: %v", nb)
	}
	m := metrics(nb)
	if m[0]["name"] != "bdSeq" || m[0]["type"] != "Int64" || m[0]["value"] != "7" {
		t.Errorf("bdSeq as Tahu reads it: %v", m[0])
	}
	if m[1]["name"] != "Node Control/Rebirth" || m[1]["type"] != "Boolean" || m[1]["value"] != false {
		t.Errorf("rebirth as Tahu reads it: %v", m[1])
	}
	db := metrics(r.Decoded[1])
	checks := []struct {
		i         int
		name, typ string
		value     any
	}{
		{0, "temp", "Double", 81.25},
		{1, "offset", "Int64", "-5"},
		{2, "energy", "UInt64", "18446744073709551615"},
		{3, "state", "String", "染色 running"},
		{4, "level", "Double", nil},
	}
	for _, c := range checks {
		got := db[c.i]
		if got["name"] != c.name || got["type"] != c.typ || got["value"] != c.value {
			t.Errorf("DBIRTH metric %d as Tahu reads it: %v; want name %q type %q value %v", c.i, got, c.name, c.typ, c.value)
		}
	}
	if p, _ := db[0]["properties"].(map[string]any); p == nil || p["engUnit"].(map[string]any)["value"] != "°C" {
		t.Errorf("engUnit as Tahu reads it: %v", db[0]["properties"])
	}
	if _, has := db[4]["value"]; !has {
		t.Errorf("null metric as Tahu reads it: %v", db[4])
	}
	// DATA metrics carry no datatype (Sparkplug 3.0: it SHOULD NOT be
	// sent after the birth), and Tahu's standalone decoder picks the value
	// field by datatype, so it shows null here; a host reads the value
	// with the birth's datatype, as Weft's host does.
	dd := metrics(r.Decoded[2])[0]
	if r.Decoded[2]["seq"] != "255" || dd["alias"] != "1" || dd["isHistorical"] != true || dd["timestamp"] != "1600000000000" {
		t.Errorf("DDATA as Tahu reads it: %v / %v", r.Decoded[2], dd)
	}
	if q := dd["properties"].(map[string]any)["Quality"].(map[string]any); q["type"] != "Int32" || q["value"] != float64(QualityUncertain) {
		t.Errorf("Quality property as Tahu reads it: %v", q)
	}
}

// TestWeftDecodesTahu: payloads Tahu's library writes, with the types Weft
// does not write itself (Int8..Int32 negatives, UInt32, Float, DateTime,
// Text), read as the same values in Weft.
func TestWeftDecodesTahu(t *testing.T) {
	req := map[string]any{"encode": []any{map[string]any{
		"timestamp": 1700000000000, "seq": 9,
		"metrics": []any{
			map[string]any{"name": "i8", "alias": 1, "type": "Int8", "value": -3},
			map[string]any{"name": "i16", "alias": 2, "type": "Int16", "value": -300},
			map[string]any{"name": "i32", "alias": 3, "type": "Int32", "value": -70000},
			map[string]any{"name": "u32", "alias": 4, "type": "UInt32", "value": 4000000000},
			map[string]any{"name": "f", "alias": 5, "type": "Float", "value": 0.1},
			map[string]any{"name": "dt", "alias": 6, "type": "DateTime", "value": 1700000000123},
			map[string]any{"name": "txt", "alias": 7, "type": "Text", "value": "hello"},
			map[string]any{"name": "b", "alias": 8, "type": "Boolean", "value": true},
			map[string]any{"name": "d", "alias": 9, "type": "Double", "value": -1.25, "isHistorical": true, "timestamp": 1600000000000},
		},
	}}}
	r := runTahu(t, req)
	b, err := hex.DecodeString(r.Encoded[0])
	if err != nil {
		t.Fatal(err)
	}
	p, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.GetSeq() != 9 || p.GetTimestamp() != 1700000000000 {
		t.Errorf("header %v", p)
	}
	want := []wire.Value{wire.IntValue(-3), wire.IntValue(-300), wire.IntValue(-70000), wire.UintValue(4000000000),
		wire.Float32Value(0.1), wire.IntValue(1700000000123), wire.StringValue("hello"), wire.BoolValue(true), wire.FloatValue(-1.25)}
	if len(p.Metrics) != len(want) {
		t.Fatalf("%d metrics", len(p.Metrics))
	}
	for i, m := range p.Metrics {
		v, err := Value(m, pb.DataType(m.GetDatatype()))
		if err != nil || !v.Equal(want[i]) {
			t.Errorf("metric %q: %#v %v, want %#v", m.GetName(), v, err, want[i])
		}
		if m.GetAlias() != uint64(i+1) {
			t.Errorf("metric %q alias %d", m.GetName(), m.GetAlias())
		}
	}
	if last := p.Metrics[8]; !last.GetIsHistorical() || last.GetTimestamp() != 1600000000000 {
		t.Errorf("historical metric %v", last)
	}
}

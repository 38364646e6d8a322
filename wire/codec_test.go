package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// exampleBatch is the message of docs/wire.md and issue 2.
func exampleBatch() *Batch {
	return &Batch{Agent: "dye-01-gw", Site: "weihai-textile-park", Seq: 1042, Samples: []Sample{
		{Device: "dye-01", Point: "bath_temp", Value: FloatValue(85.2), TS: 1732540800123},
	}}
}

func TestAppendBatchGolden(t *testing.T) {
	tests := []struct {
		name string
		b    *Batch
		want string
	}{
		{"issue example", exampleBatch(),
			`{"v":1,"agent":"dye-01-gw","site":"weihai-textile-park","seq":1042,"samples":[{"device":"dye-01","point":"bath_temp","value":85.2,"quality":"good","ts":1732540800123}]}`},
		{"no samples", &Batch{Agent: "a", Site: "s"},
			`{"v":1,"agent":"a","site":"s","seq":0,"samples":[]}`},
		{"every kind", &Batch{Agent: "a", Site: "s", Seq: math.MaxUint64, Samples: []Sample{
			{Device: "d", Point: "f", Value: FloatValue(3), TS: 1},
			{Device: "d", Point: "neg0", Value: FloatValue(math.Copysign(0, -1)), TS: 1},
			{Device: "d", Point: "big", Value: FloatValue(1e21), TS: 1},
			{Device: "d", Point: "tiny", Value: FloatValue(1e-7), TS: 1},
			{Device: "d", Point: "i", Value: IntValue(math.MinInt64), TS: -1},
			{Device: "d", Point: "u", Value: UintValue(math.MaxUint64), TS: 0},
			{Device: "d", Point: "b", Value: BoolValue(true), Quality: Uncertain, Code: 0x40920000, TS: 2},
			{Device: "d", Point: "n", Value: Value{}, Quality: Bad, Code: 2, TS: 3},
			{Device: "d", Point: "s", Value: StringValue("染色 \"A\"\\\n\x01\x7f"), TS: 4},
		}}, `{"v":1,"agent":"a","site":"s","seq":18446744073709551615,"samples":[` +
			`{"device":"d","point":"f","value":3.0,"quality":"good","ts":1},` +
			`{"device":"d","point":"neg0","value":-0.0,"quality":"good","ts":1},` +
			`{"device":"d","point":"big","value":1e+21,"quality":"good","ts":1},` +
			`{"device":"d","point":"tiny","value":1e-7,"quality":"good","ts":1},` +
			`{"device":"d","point":"i","value":-9223372036854775808,"quality":"good","ts":-1},` +
			`{"device":"d","point":"u","value":18446744073709551615,"quality":"good","ts":0},` +
			`{"device":"d","point":"b","value":true,"quality":"uncertain","code":1083310080,"ts":2},` +
			`{"device":"d","point":"n","value":null,"quality":"bad","code":2,"ts":3},` +
			`{"device":"d","point":"s","value":"染色 \"A\"\\\n\u0001` + "\x7f" + `","quality":"good","ts":4}]}`},
		{"non-finite floats are null and bad", &Batch{Agent: "a", Site: "s", Samples: []Sample{
			{Device: "d", Point: "nan", Value: FloatValue(math.NaN()), TS: 1},
			{Device: "d", Point: "inf", Value: FloatValue(math.Inf(-1)), Quality: Uncertain, TS: 1},
		}}, `{"v":1,"agent":"a","site":"s","seq":0,"samples":[` +
			`{"device":"d","point":"nan","value":null,"quality":"bad","ts":1},` +
			`{"device":"d","point":"inf","value":null,"quality":"bad","ts":1}]}`},
		{"invalid UTF-8 and qualities are repaired", &Batch{Agent: "a", Site: "s", Samples: []Sample{
			{Device: "d\xff", Point: "p\xe6\x9f", Value: BoolValue(false), Quality: Quality(9), TS: 1},
		}}, `{"v":1,"agent":"a","site":"s","seq":0,"samples":[` +
			`{"device":"d` + "\ufffd" + `","point":"p` + "\ufffd\ufffd" + `","value":false,"quality":"bad","ts":1}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendBatch([]byte("prefix:"), tt.b))
			if got != "prefix:"+tt.want {
				t.Fatalf("AppendBatch:\n got %s\nwant prefix:%s", got, tt.want)
			}
			if !json.Valid([]byte(tt.want)) {
				t.Fatalf("golden output is not valid JSON: %s", tt.want)
			}
		})
	}
}

// TestDecodeBatchGolden decodes every file under testdata/batches/*.json and
// compares the result, re-encoded, with the .golden file beside it.
func TestDecodeBatchGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/batches/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs under testdata/batches: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var b Batch
			if err := DecodeBatch(in, &b); err != nil {
				t.Fatalf("DecodeBatch: %v", err)
			}
			got := AppendBatch(nil, &b)
			golden := strings.TrimSuffix(f, ".json") + ".golden"
			if os.Getenv("WEFT_UPDATE_GOLDEN") != "" {
				if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (set WEFT_UPDATE_GOLDEN=1 to create it)", err)
			}
			if string(got) != strings.TrimSuffix(string(want), "\n") {
				t.Fatalf("re-encoded:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestDecodeBatchExample(t *testing.T) {
	var b Batch
	in := AppendBatch(nil, exampleBatch())
	if err := DecodeBatch(in, &b); err != nil {
		t.Fatal(err)
	}
	want := exampleBatch()
	if !batchEqual(&b, want) {
		t.Fatalf("decoded %+v, want %+v", b, *want)
	}
	if f, _ := b.Samples[0].Value.Float(); b.Samples[0].Value.Kind() != Float || f != 85.2 {
		t.Fatalf("value = %v kind %d, want Float 85.2", f, b.Samples[0].Value.Kind())
	}
}

func TestDecodeBatchNumbers(t *testing.T) {
	tests := []struct {
		lit  string
		want Value
	}{
		{"0", IntValue(0)},
		{"-0", IntValue(0)},
		{"42", IntValue(42)},
		{"-9223372036854775808", IntValue(math.MinInt64)},
		{"9223372036854775807", IntValue(math.MaxInt64)},
		{"9223372036854775808", UintValue(1 << 63)},
		{"18446744073709551615", UintValue(math.MaxUint64)},
		{"18446744073709551616", FloatValue(18446744073709551616)},
		{"-9223372036854775809", FloatValue(-9223372036854775809)},
		{"1.0", FloatValue(1)},
		{"-0.0", FloatValue(math.Copysign(0, -1))},
		{"1e3", FloatValue(1000)},
		{"1E+3", FloatValue(1000)},
		{"2.5e-3", FloatValue(0.0025)},
		{"85.2", FloatValue(85.2)},
		{"true", BoolValue(true)},
		{"false", BoolValue(false)},
		{"null", Value{}},
		{`"x"`, StringValue("x")},
		{`"\u00e9\ud83d\ude00\/"`, StringValue("é😀/")},
		{`"\ud800x"`, StringValue("\ufffdx")},
		{`"\udc00"`, StringValue("\ufffd")},
		{"\"\xff\"", StringValue("\ufffd")},
	}
	for _, tt := range tests {
		t.Run(tt.lit, func(t *testing.T) {
			in := `{"v":1,"agent":"a","site":"s","seq":1,"samples":[{"device":"d","point":"p","value":` + tt.lit + `,"quality":"good","ts":1}]}`
			var b Batch
			if err := DecodeBatch([]byte(in), &b); err != nil {
				t.Fatal(err)
			}
			if got := b.Samples[0].Value; !got.Equal(tt.want) {
				t.Fatalf("value %s decoded as %#v, want %#v", tt.lit, got, tt.want)
			}
		})
	}
}

func TestDecodeBatchRejects(t *testing.T) {
	const head = `{"v":1,"agent":"a","site":"s","seq":1,"samples":[`
	sample := func(fields string) string { return head + `{` + fields + `}]}` }
	const ok = `"device":"d","point":"p","value":1,"quality":"good","ts":1`
	tests := []struct {
		name, in string
		cat      error
		want     string // the whole error message
	}{
		{"empty", ``, ErrMalformed, `wire: data message: byte 0: empty message`},
		{"blank", " \n", ErrMalformed, `wire: data message: byte 2: empty message`},
		{"not json", "\x1f\x8b\x08", ErrMalformed, `wire: data message: byte 0: not a JSON object: starts with byte 0x1f`},
		{"array", `[1]`, ErrMalformed, `wire: data message: byte 0: not a JSON object: starts with '['`},
		{"empty object", `{}`, ErrMalformed, `wire: data message: byte 2: missing key "v"`},
		{"v not first", `{"agent":"a","v":1}`, ErrMalformed, `wire: data message: byte 1: "v" must be the first key`},
		{"version 2", `{"v":2,"agent":"a"}`, ErrVersion, `wire: data message: byte 5: v: version "2" is not supported; this build reads version 1`},
		{"version string", `{"v":"1"}`, ErrVersion, `wire: data message: byte 5: v: version "\"1\"" is not supported; this build reads version 1`},
		{"version float", `{"v":1.0}`, ErrVersion, `wire: data message: byte 5: v: version "1.0" is not supported; this build reads version 1`},
		{"missing agent", `{"v":1,"site":"s","seq":1,"samples":[]}`, ErrMalformed, `wire: data message: byte 39: missing key "agent"`},
		{"missing site", `{"v":1,"agent":"a","seq":1,"samples":[]}`, ErrMalformed, `wire: data message: byte 40: missing key "site"`},
		{"missing seq", `{"v":1,"agent":"a","site":"s","samples":[]}`, ErrMalformed, `wire: data message: byte 43: missing key "seq"`},
		{"missing samples", `{"v":1,"agent":"a","site":"s","seq":1}`, ErrMalformed, `wire: data message: byte 38: missing key "samples"`},
		{"duplicate seq", `{"v":1,"agent":"a","site":"s","seq":1,"seq":2,"samples":[]}`, ErrMalformed, `wire: data message: byte 38: seq: duplicate key`},
		{"empty agent", `{"v":1,"agent":"","site":"s","seq":1,"samples":[]}`, ErrMalformed, `wire: data message: byte 15: agent: must not be empty`},
		{"agent with slash", `{"v":1,"agent":"a/b","site":"s","seq":1,"samples":[]}`, ErrMalformed, `wire: data message: byte 15: agent: must not contain '/'`},
		{"site wildcard", `{"v":1,"agent":"a","site":"#","seq":1,"samples":[]}`, ErrMalformed, `wire: data message: byte 26: site: must not contain the MQTT wildcards '+' or '#'`},
		{"agent number", `{"v":1,"agent":7}`, ErrMalformed, `wire: data message: byte 15: agent: want a string, found '7'`},
		{"agent too long", `{"v":1,"agent":"` + strings.Repeat("a", MaxNameBytes+1) + `"}`, ErrTooLarge, `wire: data message: byte 15: agent: string is longer than 256 bytes`},
		{"negative seq", `{"v":1,"agent":"a","site":"s","seq":-1,"samples":[]}`, ErrMalformed, `wire: data message: byte 36: seq: must not be negative, found "-1"`},
		{"float seq", `{"v":1,"agent":"a","site":"s","seq":1.5,"samples":[]}`, ErrMalformed, `wire: data message: byte 36: seq: want an unsigned integer, found "1.5"`},
		{"huge seq", `{"v":1,"agent":"a","site":"s","seq":18446744073709551616,"samples":[]}`, ErrMalformed, `wire: data message: byte 36: seq: want an unsigned integer, found "18446744073709551616"`},
		{"samples object", `{"v":1,"agent":"a","site":"s","seq":1,"samples":{}}`, ErrMalformed, `wire: data message: byte 48: samples: want an array of samples, found '{'`},
		{"sample not object", head + `1]}`, ErrMalformed, `wire: data message: byte 49: samples[0]: want a sample object, found '1'`},
		{"missing device", sample(`"point":"p","value":1,"quality":"good","ts":1`), ErrMalformed, `wire: data message: byte 95: samples[0]: missing key "device"`},
		{"missing point", sample(`"device":"d","value":1,"quality":"good","ts":1`), ErrMalformed, `wire: data message: byte 96: samples[0]: missing key "point"`},
		{"missing value", sample(`"device":"d","point":"p","quality":"good","ts":1`), ErrMalformed, `wire: data message: byte 98: samples[0]: missing key "value"`},
		{"missing quality", sample(`"device":"d","point":"p","value":1,"ts":1`), ErrMalformed, `wire: data message: byte 91: samples[0]: missing key "quality"`},
		{"missing ts", sample(`"device":"d","point":"p","value":1,"quality":"good"`), ErrMalformed, `wire: data message: byte 101: samples[0]: missing key "ts"`},
		{"empty device", sample(`"device":"","point":"p","value":1,"quality":"good","ts":1`), ErrMalformed, `wire: data message: byte 59: samples[0].device: must not be empty`},
		{"point too long", sample(`"device":"d","point":"` + strings.Repeat("é", 129) + `","value":1,"quality":"good","ts":1`), ErrTooLarge, `wire: data message: byte 71: samples[0].point: string is longer than 256 bytes`},
		{"string value too long", sample(`"device":"d","point":"p","value":"` + strings.Repeat("x", MaxStringBytes+1) + `","quality":"good","ts":1`), ErrTooLarge, `wire: data message: byte 83: samples[0].value: string is longer than 65536 bytes`},
		{"escaped string value too long", sample(`"device":"d","point":"p","value":"\n` + strings.Repeat("x", MaxStringBytes) + `","quality":"good","ts":1`), ErrTooLarge, `wire: data message: byte 83: samples[0].value: string is longer than 65536 bytes`},
		{"unknown quality", sample(`"device":"d","point":"p","value":1,"quality":"GOOD","ts":1`), ErrMalformed, `wire: data message: byte 95: samples[0].quality: unknown quality "GOOD"; want "good", "uncertain" or "bad"`},
		{"quality number", sample(`"device":"d","point":"p","value":1,"quality":0,"ts":1`), ErrMalformed, `wire: data message: byte 95: samples[0].quality: want a string, found '0'`},
		{"float ts", sample(`"device":"d","point":"p","value":1,"quality":"good","ts":1.5`), ErrMalformed, `wire: data message: byte 107: samples[0].ts: want an integer number of milliseconds since 1970, found "1.5"`},
		{"string ts", sample(`"device":"d","point":"p","value":1,"quality":"good","ts":"1"`), ErrMalformed, `wire: data message: byte 107: samples[0].ts: want an integer number of milliseconds since 1970, found "\"1\""`},
		{"ts past int64", sample(`"device":"d","point":"p","value":1,"quality":"good","ts":9223372036854775808`), ErrMalformed, `wire: data message: byte 107: samples[0].ts: want an integer number of milliseconds since 1970, found "9223372036854775808"`},
		{"negative code", sample(ok + `,"code":-1`), ErrMalformed, `wire: data message: byte 116: samples[0].code: want an integer 0..4294967295, found "-1"`},
		{"code past uint32", sample(ok + `,"code":4294967296`), ErrMalformed, `wire: data message: byte 116: samples[0].code: want an integer 0..4294967295, found "4294967296"`},
		{"duplicate ts", sample(ok + `,"ts":2`), ErrMalformed, `wire: data message: byte 109: samples[0].ts: duplicate key`},
		{"object value", sample(`"device":"d","point":"p","value":{"a":1},"quality":"good","ts":1`), ErrMalformed, `wire: data message: byte 83: samples[0].value: want a number, string, boolean or null; objects and arrays are not sample values`},
		{"array value", sample(`"device":"d","point":"p","value":[1],"quality":"good","ts":1`), ErrMalformed, `wire: data message: byte 83: samples[0].value: want a number, string, boolean or null; objects and arrays are not sample values`},
		{"NaN value", sample(`"device":"d","point":"p","value":NaN,"quality":"good","ts":1`), ErrMalformed, `wire: data message: byte 83: samples[0].value: want a value, found 'N'`},
		{"float overflow", sample(`"device":"d","point":"p","value":1e400,"quality":"good","ts":1`), ErrMalformed, `wire: data message: byte 83: samples[0].value: number "1e400" is out of the float64 range`},
		{"leading zero", sample(`"device":"d","point":"p","value":01,"quality":"good","ts":1`), ErrMalformed, `wire: data message: byte 84: samples[0]: want ',' or '}', found '1'`},
		{"bare dot", sample(`"device":"d","point":"p","value":1.,"quality":"good","ts":1`), ErrMalformed, `wire: data message: byte 85: samples[0].value: want a digit after '.', found ','`},
		{"bad exponent", sample(`"device":"d","point":"p","value":1e,"quality":"good","ts":1`), ErrMalformed, `wire: data message: byte 85: samples[0].value: want a digit in the exponent, found ','`},
		{"plus sign", sample(`"device":"d","point":"p","value":+1,"quality":"good","ts":1`), ErrMalformed, `wire: data message: byte 83: samples[0].value: want a value, found '+'`},
		{"truncated literal", sample(`"device":"d","point":"p","value":tru,"quality":"good","ts":1`), ErrMalformed, `wire: data message: byte 83: samples[0].value: want true, found "tru"`},
		{"raw newline in string", sample("\"device\":\"d\n\""), ErrMalformed, `wire: data message: byte 61: samples[0].device: control character byte 0x0a in a string; escape it`},
		{"bad escape", sample(`"device":"d\q"`), ErrMalformed, `wire: data message: byte 61: samples[0].device: bad escape \q in a string`},
		{"bad unicode escape", sample(`"device":"\u12G4"`), ErrMalformed, `wire: data message: byte 60: samples[0].device: bad \u escape: want four hex digits`},
		{"unclosed string", head + `{"device":"abc`, ErrMalformed, `wire: data message: byte 59: samples[0].device: string is not closed`},
		{"truncated", head + `{"device":"d","point":"p","value":1,"quality":"good","ts":1}`, ErrMalformed, `wire: data message: byte 109: samples: want ',' or ']', found end of message`},
		{"trailing comma", head + `{` + ok + `},]}`, ErrMalformed, `wire: data message: byte 110: samples[1]: want a sample object, found ']'`},
		{"missing colon", `{"v" 1}`, ErrMalformed, `wire: data message: byte 5: want ':' after the key, found '1'`},
		{"key not string", `{"v":1,agent:"a"}`, ErrMalformed, `wire: data message: byte 7: want a key string, found 'a'`},
		{"trailing garbage", `{"v":1,"agent":"a","site":"s","seq":1,"samples":[]}x`, ErrMalformed, `wire: data message: byte 51: trailing bytes after the message: 'x'`},
		{"two messages", `{"v":1,"agent":"a","site":"s","seq":1,"samples":[]}{}`, ErrMalformed, `wire: data message: byte 51: trailing bytes after the message: '{'`},
		{"deep unknown", `{"v":1,"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, ErrTooLarge, `wire: data message: byte 44: nested deeper than 32 levels`},
		{"bad unknown", `{"v":1,"x":[1,}`, ErrMalformed, `wire: data message: byte 14: want a value, found '}'`},
		{"oversized", `{"v":1,"x":"` + strings.Repeat(" ", MaxBatchBytes) + `"}`, ErrTooLarge, `wire: data message: byte 4194304: message is 4194318 bytes, the limit is 4194304`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := Batch{Samples: make([]Sample, 3)}
			err := DecodeBatch([]byte(tt.in), &b)
			if err == nil {
				t.Fatalf("DecodeBatch accepted %q", tt.in)
			}
			if !errors.Is(err, tt.cat) {
				t.Errorf("error %v is not %v", err, tt.cat)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Errorf("error %T is not a *DecodeError", err)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
			if len(b.Samples) != 0 {
				t.Errorf("b.Samples has %d samples after an error, want 0", len(b.Samples))
			}
		})
	}
}

func TestDecodeBatchTooManySamples(t *testing.T) {
	b := &Batch{Agent: "a", Site: "s", Samples: make([]Sample, MaxSamples+1)}
	for i := range b.Samples {
		b.Samples[i] = Sample{Device: "d", Point: "p", TS: 1}
	}
	data := AppendBatch(nil, b)
	var got Batch
	err := DecodeBatch(data, &got)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "samples: more than 50000 samples") {
		t.Fatalf("err = %v, want more than %d samples", err, MaxSamples)
	}
	b.Samples = b.Samples[:MaxSamples]
	if err := DecodeBatch(AppendBatch(nil, b), &got); err != nil {
		t.Fatalf("exactly MaxSamples: %v", err)
	}
}

func TestDecodeBatchIgnoresUnknownKeys(t *testing.T) {
	in := `{"v":1,"future":{"a":[1,2.5,"x",true,null,{}]},"agent":"a","site":"s","seq":7,"samples":[` +
		`{"device":"d","unit":"°C","point":"p","value":2,"quality":"good","ts":5,"extra":[[]]}],"zz":"\u00e9"}`
	var b Batch
	if err := DecodeBatch([]byte(in), &b); err != nil {
		t.Fatal(err)
	}
	want := &Batch{Agent: "a", Site: "s", Seq: 7, Samples: []Sample{{Device: "d", Point: "p", Value: IntValue(2), TS: 5}}}
	if !batchEqual(&b, want) {
		t.Fatalf("got %+v, want %+v", b, *want)
	}
}

func TestDecodeBatchWhitespace(t *testing.T) {
	in := " {\n \"v\" : 1 ,\t\"agent\":\"a\" , \"site\" :\"s\",\"seq\":\r\n3,\"samples\" : [ { \"device\" : \"d\" , \"point\":\"p\",\"value\" : -1.5e2 , \"quality\":\"bad\" ,\"code\": 3, \"ts\" : 9 } ] } \n"
	var b Batch
	if err := DecodeBatch([]byte(in), &b); err != nil {
		t.Fatal(err)
	}
	want := &Batch{Agent: "a", Site: "s", Seq: 3, Samples: []Sample{{Device: "d", Point: "p", Value: FloatValue(-150), Quality: Bad, Code: 3, TS: 9}}}
	if !batchEqual(&b, want) {
		t.Fatalf("got %+v, want %+v", b, *want)
	}
}

// TestDecodeBatchReuse decodes into the same Batch twice: the second decode
// of the same shape must not allocate at all (strings and samples reused).
func TestDecodeBatchReuse(t *testing.T) {
	data := AppendBatch(nil, benchBatch(200))
	var b Batch
	if err := DecodeBatch(data, &b); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if err := DecodeBatch(data, &b); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("re-decoding allocated %.0f times, want 0", allocs)
	}
	if !batchEqual(&b, benchBatch(200)) {
		t.Fatal("re-decoded batch differs")
	}
}

func TestAppendBatchAllocs(t *testing.T) {
	b := benchBatch(200)
	buf := make([]byte, 0, 64<<10)
	allocs := testing.AllocsPerRun(20, func() { buf = AppendBatch(buf[:0], b) })
	if allocs != 0 {
		t.Fatalf("AppendBatch into a big enough buffer allocated %.0f times, want 0", allocs)
	}
}

// TestRoundTripRandom is the property test: for random batches, decoding the
// encoding gives the batch back, up to the documented normalisations.
func TestRoundTripRandom(t *testing.T) {
	seed := uint64(20261125)
	n := 3000
	if testing.Short() {
		n = 300
	}
	r := rand.New(rand.NewPCG(seed, seed))
	var buf []byte
	var got Batch
	for i := range n {
		b := randomBatch(r)
		buf = AppendBatch(buf[:0], b)
		if err := DecodeBatch(buf, &got); err != nil {
			t.Fatalf("batch %d (seed %d): %v\n%s", i, seed, err, buf)
		}
		want := normalize(b)
		if !batchEqual(&got, want) {
			t.Fatalf("batch %d (seed %d): round trip differs\n got %+v\nwant %+v\n%s", i, seed, got, *want, buf)
		}
	}
}

// TestAppendBatchEncodingJSON cross-checks the hand-written encoder with the
// standard library: every output is valid JSON and encoding/json reads the
// same values from it.
func TestAppendBatchEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	n := 2000
	if testing.Short() {
		n = 200
	}
	type jsonSample struct {
		Device  string `json:"device"`
		Point   string `json:"point"`
		Value   any    `json:"value"`
		Quality string `json:"quality"`
		Code    uint32 `json:"code"`
		TS      int64  `json:"ts"`
	}
	type jsonBatch struct {
		V       int          `json:"v"`
		Agent   string       `json:"agent"`
		Site    string       `json:"site"`
		Seq     uint64       `json:"seq"`
		Samples []jsonSample `json:"samples"`
	}
	for i := range n {
		b := randomBatch(r)
		data := AppendBatch(nil, b)
		if !json.Valid(data) {
			t.Fatalf("batch %d: not valid JSON: %s", i, data)
		}
		var jb jsonBatch
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber() // values of every kind land in an any as json.Number
		if err := dec.Decode(&jb); err != nil {
			t.Fatalf("batch %d: encoding/json: %v\n%s", i, err, data)
		}
		want := normalize(b)
		if jb.V != Version || jb.Agent != want.Agent || jb.Site != want.Site || jb.Seq != want.Seq || len(jb.Samples) != len(want.Samples) {
			t.Fatalf("batch %d: encoding/json read %+v, want %+v", i, jb, *want)
		}
		for j, s := range want.Samples {
			js := jb.Samples[j]
			if js.Device != s.Device || js.Point != s.Point || js.Quality != s.Quality.String() || js.Code != s.Code || js.TS != s.TS {
				t.Fatalf("batch %d sample %d: encoding/json read %+v, want %+v", i, j, js, s)
			}
			if !jsonValueEqual(js.Value, s.Value) {
				t.Fatalf("batch %d sample %d: encoding/json read value %#v, want %#v", i, j, js.Value, s.Value)
			}
		}
	}
}

func jsonValueEqual(got any, want Value) bool {
	switch want.Kind() {
	case Null:
		return got == nil
	case Bool:
		b, ok := got.(bool)
		return ok && b == want.Bool()
	case String:
		s, ok := got.(string)
		return ok && s == want.Str()
	case Int:
		n, ok := got.(json.Number)
		return ok && string(n) == strconv.FormatInt(want.Int(), 10)
	case Uint:
		n, ok := got.(json.Number)
		return ok && string(n) == strconv.FormatUint(want.Uint(), 10)
	case Float:
		n, ok := got.(json.Number)
		if !ok {
			return false
		}
		f, err := strconv.ParseFloat(string(n), 64)
		w, _ := want.Float()
		return err == nil && math.Float64bits(f) == math.Float64bits(w)
	}
	return false
}

func batchEqual(a, b *Batch) bool {
	if a.Agent != b.Agent || a.Site != b.Site || a.Seq != b.Seq || len(a.Samples) != len(b.Samples) {
		return false
	}
	for i := range a.Samples {
		x, y := a.Samples[i], b.Samples[i]
		if x.Device != y.Device || x.Point != y.Point || !x.Value.Equal(y.Value) ||
			x.Quality != y.Quality || x.Code != y.Code || x.TS != y.TS {
			return false
		}
	}
	return true
}

// normalize applies the documented encoding rules to a copy of b: what the
// decoder gives back for it.
func normalize(b *Batch) *Batch {
	out := &Batch{Agent: fixUTF8(b.Agent), Site: fixUTF8(b.Site), Seq: b.Seq, Samples: make([]Sample, len(b.Samples))}
	for i, s := range b.Samples {
		s.Device, s.Point = fixUTF8(s.Device), fixUTF8(s.Point)
		if s.Quality > Bad {
			s.Quality = Bad
		}
		switch s.Value.Kind() {
		case Float:
			if f, _ := s.Value.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
				s.Value, s.Quality = Value{}, Bad
			}
		case Uint:
			if s.Value.Uint() <= math.MaxInt64 {
				s.Value = IntValue(int64(s.Value.Uint()))
			}
		case String:
			s.Value = StringValue(fixUTF8(s.Value.Str()))
		}
		out.Samples[i] = s
	}
	return out
}

// fixUTF8 replaces each invalid byte by U+FFFD, as the encoder does (and
// encoding/json; strings.ToValidUTF8 would replace a run by one).
func fixUTF8(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r) // range yields RuneError for each invalid byte
	}
	return b.String()
}

// randomBatch makes batches that stay inside the decoder's limits but
// otherwise reach every kind of value and every escape.
func randomBatch(r *rand.Rand) *Batch {
	b := &Batch{Agent: randomName(r, true), Site: randomName(r, true), Seq: randomUint(r)}
	n := r.IntN(20)
	for range n {
		s := Sample{Device: randomName(r, false), Point: randomName(r, false), Quality: Quality(r.IntN(4)), TS: int64(randomUint(r))}
		if r.IntN(3) == 0 {
			s.Code = r.Uint32()
		}
		switch r.IntN(7) {
		case 0:
			s.Value = FloatValue(randomFloat(r))
		case 1:
			s.Value = IntValue(int64(randomUint(r)))
		case 2:
			s.Value = UintValue(randomUint(r))
		case 3:
			s.Value = BoolValue(r.IntN(2) == 1)
		case 4:
			s.Value = StringValue(randomString(r, 40))
		case 5:
			s.Value = Value{}
		case 6:
			s.Value = FloatValue(float64(r.IntN(2000) - 1000)) // integral floats
		}
		b.Samples = append(b.Samples, s)
	}
	return b
}

func randomUint(r *rand.Rand) uint64 {
	switch r.IntN(4) {
	case 0:
		return uint64(r.IntN(1000))
	case 1:
		return r.Uint64() >> r.IntN(64)
	case 2:
		return math.MaxUint64 - uint64(r.IntN(3))
	}
	return r.Uint64()
}

func randomFloat(r *rand.Rand) float64 {
	switch r.IntN(6) {
	case 0:
		return math.Float64frombits(r.Uint64()) // anything, NaNs and Infs too
	case 1:
		return []float64{math.NaN(), math.Inf(1), math.Inf(-1), 0, math.Copysign(0, -1), math.MaxFloat64, math.SmallestNonzeroFloat64, 1e21, 1e-7, 1e20, 1e-6}[r.IntN(11)]
	case 2:
		return r.NormFloat64() * 1e6
	case 3:
		return float64(float32(r.NormFloat64() * 100)) // a float32 register widened
	}
	return r.Float64()
}

// randomName is a non-empty name; level names avoid the topic separators.
func randomName(r *rand.Rand, level bool) string {
	for {
		s := randomString(r, 24)
		if s == "" {
			continue
		}
		if level && (strings.ContainsAny(s, "/+#\x7f") || strings.ContainsFunc(s, func(c rune) bool { return c < 0x20 })) {
			continue
		}
		if len(fixUTF8(s)) > MaxNameBytes {
			continue
		}
		return s
	}
}

func randomString(r *rand.Rand, max int) string {
	const pieces = "abcXYZ019-_. "
	n := r.IntN(max)
	var b []byte
	for range n {
		switch r.IntN(10) {
		case 0:
			b = append(b, byte(r.IntN(0x20))) // control
		case 1:
			b = append(b, `"\/`[r.IntN(3)])
		case 2:
			b = utf8.AppendRune(b, rune(0x80+r.IntN(0x10000-0x80)))
		case 3:
			b = utf8.AppendRune(b, rune(0x10000+r.IntN(0x100000)))
		case 4:
			b = append(b, byte(0x80+r.IntN(0x80))) // likely invalid UTF-8
		default:
			b = append(b, pieces[r.IntN(len(pieces))])
		}
	}
	return string(b)
}

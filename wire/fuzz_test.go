package wire

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeBatch: the decoder never panics, and whatever it accepts
// re-encodes into a message that decodes to the same batch and encodes to
// the same bytes (the encoding is canonical after one round).
func FuzzDecodeBatch(f *testing.F) {
	files, _ := filepath.Glob("testdata/batches/*.json")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 8 {
		f.Add(AppendBatch(nil, randomBatch(r)))
	}
	f.Add([]byte(`{"v":1,"agent":"a","site":"s","seq":1,"samples":[{"device":"d","point":"p","value":"\ud83d\ude00\u0000","quality":"bad","code":1,"ts":1,"x":[{"y":null}]}]}`))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`{"v":1,"agent":"a","site":"s","seq":-0,"samples":[{"value":1e999}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var b Batch
		if err := DecodeBatch(data, &b); err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		enc := AppendBatch(nil, &b)
		if !json.Valid(enc) {
			t.Fatalf("re-encoding is not JSON: %s", enc)
		}
		var b2 Batch
		if err := DecodeBatch(enc, &b2); err != nil {
			t.Fatalf("re-encoding rejected: %v\n%s", err, enc)
		}
		if !batchEqual(&b, &b2) {
			t.Fatalf("re-decoded batch differs:\n%+v\n%+v", b, b2)
		}
		if enc2 := AppendBatch(nil, &b2); string(enc2) != string(enc) {
			t.Fatalf("encoding not stable:\n%s\n%s", enc, enc2)
		}
	})
}

// FuzzDecodeControl feeds the same bytes to the four control decoders: none
// may panic, and what one accepts must marshal and decode again.
func FuzzDecodeControl(f *testing.F) {
	f.Add([]byte(`{"v":1,"agent":"gw","site":"s","state":"online","ts":1}`))
	f.Add([]byte(`{"v":1,"agent":"gw","site":"s","state":"online","ts":1,"points":[{"device":"d","protocol":"modbus","points":[{"name":"t","unit":"°C","type":"int16"},{"name":""}]}]}`))
	f.Add([]byte(`{"v":1,"agent":"gw","site":"s","state":"offline","points":[{"device":"d","points":null,"x":{}}]}`))
	f.Add([]byte(`{"v":1,"agent":"gw","site":"s","devices":[{"id":"d","state":"ok"}],"spool":{"batches":1}}`))
	f.Add([]byte(`{"v":1,"agent":"gw","site":"s","devices":[{"id":"d","state":"ok","errors_by_kind":{"timeout":3,"":1,"io":-1}}],"spool":{"dropped_corrupt":2,"lost_samples":1e30},"forwarder":{"samples_per_s":"NaN"}}`))
	f.Add([]byte(`{"v":1,"agent":"gw","site":"s","devices":[{"id":"d","state":"degraded","errors_by_kind":{"timeout":3,"bad_status":1}}],"spool":{"dropped_expired":4,"dropped_corrupt":2,"lost_samples":7},"forwarder":{"samples_per_s":12.5,"batches_per_s":0.25}}`))
	f.Add([]byte(`{"v":1,"id":"c1","name":"config","config":"agent: {}"}`))
	f.Add([]byte(`{"v":1,"id":"c1","ok":false,"errors":["x"],"health":{"agent":"a","site":"s"}}`))
	f.Add([]byte(`{"v":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Status
		if DecodeStatus(data, &s) == nil {
			again(t, &s, func(b []byte) error { var x Status; return DecodeStatus(b, &x) })
		}
		var h Health
		if DecodeHealth(data, &h) == nil {
			again(t, &h, func(b []byte) error { var x Health; return DecodeHealth(b, &x) })
		}
		var c Command
		if DecodeCommand(data, &c) == nil {
			again(t, &c, func(b []byte) error { var x Command; return DecodeCommand(b, &x) })
		}
		var r Reply
		if DecodeReply(data, &r) == nil {
			again(t, &r, func(b []byte) error { var x Reply; return DecodeReply(b, &x) })
		}
	})
}

func again(t *testing.T, v any, dec func([]byte) error) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%T accepted but does not marshal: %v", v, err)
	}
	if err := dec(b); err != nil {
		t.Fatalf("%T accepted, marshalled, then rejected: %v\n%s", v, err, b)
	}
}

// FuzzParseTopic: never panics; a topic it accepts is rebuilt exactly by
// Topics.
func FuzzParseTopic(f *testing.F) {
	f.Add("weft/v1", "weft/v1/site/gw/data")
	f.Add("weft/v1", "weft/v1/site/gw/cmd/config")
	f.Add("", "s/a/reply/17")
	f.Add("weft/v1", "weft/v1/+/gw/status")
	f.Add("a", "a//b/health")
	f.Fuzz(func(t *testing.T, prefix, topic string) {
		site, agent, kind, rest, err := ParseTopic(prefix, topic)
		if err != nil {
			return
		}
		tp := Topics{Prefix: prefix}
		var rebuilt string
		switch kind {
		case KindData:
			rebuilt = tp.Data(site, agent)
		case KindStatus:
			rebuilt = tp.Status(site, agent)
		case KindHealth:
			rebuilt = tp.Health(site, agent)
		case KindCmd:
			rebuilt = tp.Cmd(site, agent, rest)
		case KindReply:
			rebuilt = tp.Reply(site, agent, rest)
		default:
			t.Fatalf("kind %q accepted", kind)
		}
		if rebuilt != topic {
			t.Fatalf("ParseTopic(%q, %q) then Topics gives %q", prefix, topic, rebuilt)
		}
		for _, l := range []string{site, agent} {
			if err := CheckLevel(l); err != nil {
				t.Fatalf("accepted level: %v", err)
			}
		}
	})
}

package wire

import (
	"encoding/json"
	"strconv"
	"testing"
)

// benchBatch is a realistic batch: 20 devices of n/20 points each, mostly
// floats with some ints, bools and a string, as a dyeing line produces.
func benchBatch(n int) *Batch {
	b := &Batch{Agent: "dye-01-gw", Site: "weihai-textile-park", Seq: 1042, Samples: make([]Sample, n)}
	for i := range b.Samples {
		s := Sample{
			Device: "dye-" + strconv.Itoa(i%20),
			Point:  "point_" + strconv.Itoa(i),
			TS:     1732540800123 + int64(i),
		}
		switch i % 10 {
		case 7:
			s.Value = IntValue(int64(i) * 37)
		case 8:
			s.Value = BoolValue(i%3 == 0)
		case 9:
			s.Value = StringValue("RUN")
			s.Quality = Uncertain
			s.Code = 0x40920000
		default:
			s.Value = FloatValue(85.2 + float64(i)*0.013)
		}
		b.Samples[i] = s
	}
	// Keep the device of neighbours equal, as drivers emit them.
	for i := range b.Samples {
		b.Samples[i].Device = "dye-" + strconv.Itoa(i*20/n)
	}
	return b
}

func reportPerSample(b *testing.B, n int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sample")
}

func BenchmarkAppendBatch(b *testing.B) {
	batch := benchBatch(1000)
	buf := AppendBatch(nil, batch)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendBatch(buf[:0], batch)
	}
	reportPerSample(b, 1000)
}

func BenchmarkDecodeBatch(b *testing.B) {
	data := AppendBatch(nil, benchBatch(1000))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var batch Batch
	for b.Loop() {
		if err := DecodeBatch(data, &batch); err != nil {
			b.Fatal(err)
		}
	}
	reportPerSample(b, 1000)
}

// BenchmarkDecodeBatchFresh decodes into a new Batch each time, as a receiver
// that keeps the batches it decodes must.
func BenchmarkDecodeBatchFresh(b *testing.B) {
	data := AppendBatch(nil, benchBatch(1000))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var batch Batch
		if err := DecodeBatch(data, &batch); err != nil {
			b.Fatal(err)
		}
	}
	reportPerSample(b, 1000)
}

// jsonBatch mirrors the wire format for encoding/json, the comparison.
type stdBatch struct {
	V       int         `json:"v"`
	Agent   string      `json:"agent"`
	Site    string      `json:"site"`
	Seq     uint64      `json:"seq"`
	Samples []stdSample `json:"samples"`
}

type stdSample struct {
	Device  string `json:"device"`
	Point   string `json:"point"`
	Value   any    `json:"value"`
	Quality string `json:"quality"`
	Code    uint32 `json:"code,omitempty"`
	TS      int64  `json:"ts"`
}

func toStd(b *Batch) *stdBatch {
	out := &stdBatch{V: Version, Agent: b.Agent, Site: b.Site, Seq: b.Seq}
	for _, s := range b.Samples {
		var v any
		switch s.Value.Kind() {
		case Float:
			v, _ = s.Value.Float()
		case Int:
			v = s.Value.Int()
		case Uint:
			v = s.Value.Uint()
		case Bool:
			v = s.Value.Bool()
		case String:
			v = s.Value.Str()
		}
		out.Samples = append(out.Samples, stdSample{s.Device, s.Point, v, s.Quality.String(), s.Code, s.TS})
	}
	return out
}

func BenchmarkEncodingJSONMarshal(b *testing.B) {
	std := toStd(benchBatch(1000))
	data, _ := json.Marshal(std)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(std); err != nil {
			b.Fatal(err)
		}
	}
	reportPerSample(b, 1000)
}

func BenchmarkEncodingJSONUnmarshal(b *testing.B) {
	data := AppendBatch(nil, benchBatch(1000))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var std stdBatch
		if err := json.Unmarshal(data, &std); err != nil {
			b.Fatal(err)
		}
	}
	reportPerSample(b, 1000)
}

// BenchmarkDecodeStatus10000Points: the gateway decodes a box's retained
// status, with 10,000 point descriptions, once per agent connect.
func BenchmarkDecodeStatus10000Points(b *testing.B) {
	data, err := json.Marshal(bigStatus(100, 100))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var s Status
	for b.Loop() {
		if err := DecodeStatus(data, &s); err != nil {
			b.Fatal(err)
		}
	}
}

package influx

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestWriterTypeConflict: a field written before with another type makes
// influxd refuse that line (HTTP 400, partial write); the writer splits the
// request, drops and counts only that line, and stores the rest.
func TestWriterTypeConflict(t *testing.T) {
	db := testservers.Influx(t)
	ts := time.Now().Add(-time.Hour).UnixMilli()
	// Someone wrote value_int as a string into this measurement earlier.
	resp, err := http.Post(db.URL+"/write?db=weft&precision=ms", "text/plain",
		strings.NewReader("weft,agent=a,device=d,point=old,site=s value_int=\"text\" "+itoa(ts)))
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("seed write: %v %v", err, resp)
	}
	w := New(Options{URL: db.URL, Bucket: db.Bucket}, quiet())
	defer w.Close()
	b := &wire.Batch{Site: "s", Agent: "a", Seq: 1}
	for i := 0; i < 9; i++ {
		b.Samples = append(b.Samples, wire.Sample{Device: "d", Point: "f", Value: wire.FloatValue(float64(i)), TS: ts + int64(i)})
	}
	b.Samples = append(b.Samples, wire.Sample{Device: "d", Point: "i", Value: wire.IntValue(7), TS: ts + 100})
	b.Samples = append(b.Samples, wire.Sample{Device: "d", Point: "ok", Quality: wire.Good, TS: ts + 101}) // nothing to write
	r, err := w.Write(context.Background(), []*wire.Batch{b})
	if err != nil {
		t.Fatal(err)
	}
	if r.Points != 9 || r.Rejected != 1 || r.Skipped != 1 || r.Requests < 2 {
		t.Errorf("result %+v; want 9 stored, 1 rejected, 1 skipped, split into several requests", r)
	}
	s := db.Query(t, `SELECT count("value") FROM "weft"`)
	if len(s) != 1 || s[0].Values[0][1].(interface{ String() string }).String() != "9" {
		t.Errorf("stored: %+v", s)
	}
	pts, err := w.Series(context.Background(), "s", "a", "d", "f", time.UnixMilli(ts+5), 10)
	if err != nil || len(pts) != 4 || pts[0].TS != ts+5 || pts[3].Value != 8.0 {
		t.Errorf("series: %v %+v", err, pts)
	}
}

// TestWriterDown: with nothing listening, Write fails so the caller keeps
// its messages unacknowledged.
func TestWriterDown(t *testing.T) {
	w := New(Options{URL: "http://127.0.0.1:1", Bucket: "weft/autogen", Timeout: time.Second}, quiet())
	defer w.Close()
	b := &wire.Batch{Site: "s", Agent: "a", Samples: []wire.Sample{{Device: "d", Point: "p", Value: wire.FloatValue(1), TS: 1}}}
	if _, err := w.Write(context.Background(), []*wire.Batch{b}); err == nil {
		t.Fatal("no error writing to a closed port")
	}
}

func itoa(n int64) string { return itoaPlain(n) }

func itoaPlain(n int64) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var d []byte
	for n > 0 {
		d = append([]byte{byte('0' + n%10)}, d...)
		n /= 10
	}
	if neg {
		d = append([]byte{'-'}, d...)
	}
	return string(d)
}

// FuzzLine feeds arbitrary data messages through the decoder and the line
// encoder: nothing panics, and each sample gives one line ending in its
// timestamp and a newline.
func FuzzLine(f *testing.F) {
	f.Add([]byte(`{"v":1,"agent":"a","site":"s","seq":1,"samples":[{"device":"d","point":"p","value":1.5,"quality":"good","ts":1}]}`))
	f.Add([]byte(`{"v":1,"agent":"a b","site":"s,t","seq":2,"samples":[{"device":"d=1","point":"p\\n","value":"x\"y\\","quality":"bad","code":5,"ts":2}]}`))
	f.Add([]byte(`{"v":1,"agent":"a","site":"s","seq":3,"samples":[{"device":"d","point":"p","value":true,"quality":"uncertain","ts":3},{"device":"d","point":"q","value":18446744073709551615,"quality":"good","ts":4}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var b wire.Batch
		if wire.DecodeBatch(data, &b) != nil {
			return
		}
		for i := range b.Samples {
			line, ok := appendLine(nil, "weft", &b, &b.Samples[i])
			if !ok {
				continue
			}
			if line[len(line)-1] != '\n' || !bytes.HasSuffix(line, []byte(" "+itoaPlain(b.Samples[i].TS)+"\n")) {
				t.Fatalf("line %q does not end in the timestamp %d", line, b.Samples[i].TS)
			}
			if b.Samples[i].Value.Kind() != wire.String && bytes.Count(line, []byte("\n")) != 1 {
				t.Fatalf("line %q has a newline inside", line)
			}
		}
	})
}

// TestWriterConcurrent: several goroutines write through one Writer at once
// (the gateway's parallel writers) and every point is stored.
func TestWriterConcurrent(t *testing.T) {
	db := testservers.Influx(t)
	w := New(Options{URL: db.URL, Bucket: db.Bucket}, quiet())
	defer w.Close()
	ts := time.Now().Add(-time.Hour).UnixMilli()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 5 {
				b := &wire.Batch{Site: "s", Agent: "a", Seq: uint64(i)}
				for p := range 1000 {
					b.Samples = append(b.Samples, wire.Sample{Device: fmt.Sprintf("d%d", g), Point: "p",
						Value: wire.IntValue(int64(p)), TS: ts + int64(i*1000+p)})
				}
				if r, err := w.Write(context.Background(), []*wire.Batch{b}); err != nil || r.Points != 1000 {
					t.Errorf("writer %d, write %d: %+v, %v", g, i, r, err)
				}
			}
		})
	}
	wg.Wait()
	s := db.Query(t, `SELECT count("value_int") FROM "weft"`)
	if len(s) != 1 || s[0].Values[0][1].(interface{ String() string }).String() != "20000" {
		t.Errorf("stored: %+v, want 20000 points", s)
	}
}

package influx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	ihttp "github.com/influxdata/influxdb-client-go/v2/api/http"

	"github.com/weftiot/weft/wire"
)

// Options configure a Writer.
type Options struct {
	URL         string
	Org         string // "" for InfluxDB 1.8
	Bucket      string // "db/rp" for InfluxDB 1.8
	Token       string // "user:password" or "" for InfluxDB 1.8
	Measurement string // default "weft"
	// Timeout bounds one HTTP request (default 30s).
	Timeout time.Duration
	// Gzip compresses request bodies.
	Gzip bool
}

// Result is what one Write did.
type Result struct {
	Points   int // lines InfluxDB accepted
	Rejected int // lines InfluxDB refused (type conflict, parse error) and that were dropped
	Skipped  int // samples with nothing to write (a good sample without a value)
	Requests int // HTTP write requests made
}

// Writer writes batches of samples to InfluxDB. Several goroutines may
// write at once (each request gets its own connection).
type Writer struct {
	opts   Options
	client influxdb2.Client
	api    api.WriteAPIBlocking
	log    *slog.Logger
	lines  sync.Pool // of *lines
}

// lines is the line protocol of one Write: the text, and where each line
// starts.
type lines struct {
	buf    []byte
	starts []int
}

// New makes a Writer. It does not contact InfluxDB.
func New(opts Options, log *slog.Logger) *Writer {
	if opts.Measurement == "" {
		opts.Measurement = "weft"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	o := influxdb2.DefaultOptions().
		SetPrecision(time.Millisecond).
		SetHTTPRequestTimeout(uint(opts.Timeout / time.Second)).
		SetApplicationName("weft-gateway").
		SetUseGZip(opts.Gzip)
	c := influxdb2.NewClientWithOptions(opts.URL, opts.Token, o)
	return &Writer{opts: opts, client: c, api: c.WriteAPIBlocking(opts.Org, opts.Bucket), log: log,
		lines: sync.Pool{New: func() any { return &lines{} }}}
}

// Close releases the HTTP client.
func (w *Writer) Close() { w.client.Close() }

// Measurement is the measurement the writer writes to.
func (w *Writer) Measurement() string { return w.opts.Measurement }

// Write stores every sample of the batches. A nil error means every line was
// either stored or refused by InfluxDB as bad (counted in Result.Rejected):
// the caller may acknowledge the batches. An error means InfluxDB could not
// be reached or failed (5xx, timeout, 401/403/404): nothing may be
// acknowledged, and the caller retries the same batches later; since every
// point carries its source time, writing them again stores nothing twice.
//
// A 400 or 422 answer means some lines are bad. InfluxDB 1.x stores the good
// lines of such a request and 2.x may store none, so the writer splits the
// request in halves until each bad line stands alone, and drops only those.
func (w *Writer) Write(ctx context.Context, batches []*wire.Batch) (Result, error) {
	var r Result
	l := w.lines.Get().(*lines)
	defer w.lines.Put(l)
	l.buf = l.buf[:0]
	l.starts = l.starts[:0]
	for _, b := range batches {
		for i := range b.Samples {
			start := len(l.buf)
			var ok bool
			l.buf, ok = appendLine(l.buf, w.opts.Measurement, b, &b.Samples[i])
			if !ok {
				r.Skipped++
				continue
			}
			l.starts = append(l.starts, start)
		}
	}
	if len(l.starts) == 0 {
		return r, nil
	}
	err := w.send(ctx, l, 0, len(l.starts), &r)
	return r, err
}

// send writes lines [from, to) of l.
func (w *Writer) send(ctx context.Context, l *lines, from, to int, r *Result) error {
	end := len(l.buf)
	if to < len(l.starts) {
		end = l.starts[to]
	}
	body := string(l.buf[l.starts[from] : end-1]) // without the last newline
	r.Requests++
	err := w.api.WriteRecord(ctx, body)
	if err == nil {
		r.Points += to - from
		return nil
	}
	var he *ihttp.Error
	if !errors.As(err, &he) {
		return fmt.Errorf("influxdb %s: write %d points: %w", w.opts.URL, to-from, err)
	}
	switch he.StatusCode {
	case 400, 413, 422:
		if to-from == 1 {
			if he.StatusCode == 413 {
				w.log.Warn("influxdb refused a single line as too large; dropped", "bytes", len(body))
			} else {
				w.log.Warn("influxdb refused a line; dropped", "line", truncate(body, 300), "error", he.Error())
			}
			r.Rejected++
			return nil
		}
		mid := from + (to-from)/2
		if err := w.send(ctx, l, from, mid, r); err != nil {
			return err
		}
		return w.send(ctx, l, mid, to, r)
	}
	return fmt.Errorf("influxdb %s: write %d points: HTTP %d: %w", w.opts.URL, to-from, he.StatusCode, err)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// SplitBucket splits an InfluxDB 1.8 bucket "db/rp" into database and
// retention policy; a 2.x bucket name without '/' is the database.
func SplitBucket(bucket string) (db, rp string) {
	db, rp, _ = strings.Cut(bucket, "/")
	return db, rp
}

// Writers is how many writes the gateway keeps in flight to InfluxDB at
// once: InfluxDB parses and indexes one while the next arrives and another
// waits for its WAL fsync, so a backlog drains faster than with one write at
// a time (BenchmarkWriteInflux, docs/benchmarks.md).
const Writers = 4

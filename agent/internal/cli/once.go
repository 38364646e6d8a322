package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/weftiot/weft/agent/internal/pipeline"
	"github.com/weftiot/weft/agent/internal/runner"
	"github.com/weftiot/weft/config"
	"github.com/weftiot/weft/internal/command"
	"github.com/weftiot/weft/protocols"
	"github.com/weftiot/weft/protocols/modbus"
	"github.com/weftiot/weft/wire"
)

const onceUsage = `usage: weft-agent once --config FILE [--json] [--plan] [--timeout D]

Polls every enabled device of the config once and prints what it read, with
scale and offset applied as the service applies them, and each sample's
quality. OPC UA points in subscribe mode are subscribed, and the first value
of each is waited for (up to --timeout). Nothing is sent to the broker and
nothing is written to the spool.

Flags:
  --config FILE   the agent config (required)
  --json          one JSON object per sample and line: device, point, value,
                  quality, ts (ms since the epoch) and code when non-zero
  --plan          print the Modbus request plan of each Modbus device instead
                  (which registers are read in which request); dials nothing
  --timeout D     per device: connect, poll and first subscribed values
                  (default 10s)

Exit status: 0 when every device answered, 1 when one did not (its error is
printed) or the config has problems, 2 on wrong usage.
`

func onceCmd(ctx context.Context, env Env) int {
	fs := flag.NewFlagSet("once", flag.ContinueOnError)
	file := fs.String("config", "", "")
	asJSON := fs.Bool("json", false, "")
	plan := fs.Bool("plan", false, "")
	timeout := fs.Duration("timeout", 10*time.Second, "")
	if code, done := command.ParseFlags(fs, env, onceUsage); done {
		return code
	}
	if *file == "" && fs.NArg() == 1 {
		*file = fs.Arg(0)
	}
	if *file == "" || fs.NArg() > 1 || (fs.NArg() == 1 && fs.Arg(0) != *file) {
		fmt.Fprint(env.Stderr, "weft-agent once: give the config file with --config FILE\n\n"+onceUsage)
		return 2
	}
	cfg, err := config.LoadAgent(*file)
	if err != nil {
		toStderr := env
		toStderr.Stdout = env.Stderr
		return command.ReportCheck(toStderr, *file, err, nil)
	}
	logger := env.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	pool := modbus.NewPool(logger)
	defer pool.Close()
	drivers, failed := runner.Drivers(cfg, pool, logger)
	status := 0
	for _, f := range failed {
		fmt.Fprintf(env.Stderr, "%s: %s\n", f.ID, f.LastError)
		status = 1
	}
	if *plan {
		for _, d := range drivers {
			if m, ok := d.Driver.(*modbus.Driver); ok {
				modbus.WritePlan(env.Stdout, d.ID, m.Plan())
				fmt.Fprintln(env.Stdout)
			}
		}
		return status
	}

	subscribed := map[string]int{}
	for _, dev := range cfg.Devices {
		for _, p := range dev.Points {
			if dev.Protocol == "opcua" && (p.OPCUA.Mode == "" || p.OPCUA.Mode == "subscribe") {
				subscribed[dev.ID]++
			}
		}
	}
	results := make([]onceResult, len(drivers))
	var wg sync.WaitGroup
	for i, d := range drivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = pollOnce(ctx, d, subscribed[d.ID], *timeout)
		}()
	}
	wg.Wait()

	var tw *tabwriter.Writer
	if !*asJSON {
		tw = tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "DEVICE\tPOINT\tVALUE\tQUALITY\tTIME")
	}
	enc := json.NewEncoder(env.Stdout)
	for _, r := range results {
		for _, s := range r.samples {
			if *asJSON {
				enc.Encode(jsonSample(s))
				continue
			}
			q := s.Quality.String()
			if s.Code != 0 {
				q += fmt.Sprintf(" (0x%X)", s.Code)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Device, s.Point, formatValue(s.Value), q, time.UnixMilli(s.TS).Format("15:04:05.000"))
		}
	}
	if tw != nil {
		tw.Flush()
	}
	devices := make(map[string]config.Device, len(cfg.Devices))
	for _, d := range cfg.Devices {
		devices[d.ID] = d
	}
	for _, r := range results {
		if r.err != nil {
			fmt.Fprintf(env.Stderr, "%s: %s\n", r.device, runner.ExplainDevice(devices[r.device], r.err))
			status = 1
		}
	}
	return status
}

type onceResult struct {
	device  string
	samples []wire.Sample
	err     error
}

// pollOnce connects one device, polls it once, and waits for the first
// value of each subscribed point.
func pollOnce(ctx context.Context, d runner.Driver, subscribed int, timeout time.Duration) onceResult {
	r := onceResult{device: d.ID}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer d.Driver.Close()
	filter := pipeline.NewFilter(d.Rules)
	var mu sync.Mutex
	seen := map[string]bool{}
	got := make(chan struct{}, 1)
	emit := func(s wire.Sample) {
		filter.Apply(&s) // scale and offset; the first sample always passes
		mu.Lock()
		defer mu.Unlock()
		if seen[s.Point] {
			return
		}
		seen[s.Point] = true
		r.samples = append(r.samples, s)
		select {
		case got <- struct{}{}:
		default:
		}
	}
	if err := d.Driver.Connect(ctx); err != nil {
		r.err = fmt.Errorf("connect: %w", err)
		return r
	}
	sub, isSub := d.Driver.(protocols.Subscriber)
	subErr := make(chan error, 1)
	if isSub && subscribed > 0 {
		go func() { subErr <- sub.Subscribe(ctx, emit) }()
	}
	if err := d.Driver.Poll(ctx, emit); err != nil {
		r.err = err
	}
	if isSub && subscribed > 0 {
		want := subscribed
		mu.Lock()
		want += len(r.samples) // the polled ones are already in
		mu.Unlock()
	wait:
		for {
			mu.Lock()
			n := len(r.samples)
			mu.Unlock()
			if n >= want {
				break
			}
			select {
			case <-got:
			case err := <-subErr:
				if err != nil && r.err == nil {
					r.err = fmt.Errorf("subscribe: %w", err)
				}
				break wait
			case <-ctx.Done():
				if r.err == nil {
					r.err = fmt.Errorf("subscribe: %d of %d subscribed points sent no value within %v", want-n, subscribed, timeout)
				}
				break wait
			}
		}
		cancel()
	}
	mu.Lock() // a late subscribed sample may still be arriving
	defer mu.Unlock()
	r.samples = append([]wire.Sample(nil), r.samples...)
	return r
}

// onceJSON is the wire sample as once --json prints it, in the wire's key
// order.
type onceJSON struct {
	Device  string `json:"device"`
	Point   string `json:"point"`
	Value   any    `json:"value"`
	Quality string `json:"quality"`
	Code    uint32 `json:"code,omitempty"`
	TS      int64  `json:"ts"`
}

func jsonSample(s wire.Sample) onceJSON {
	return onceJSON{Device: s.Device, Point: s.Point, Value: valueOf(s.Value), Quality: s.Quality.String(), Code: s.Code, TS: s.TS}
}

func valueOf(v wire.Value) any {
	switch v.Kind() {
	case wire.Float:
		f, _ := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil
		}
		return f
	case wire.Int:
		return v.Int()
	case wire.Uint:
		return v.Uint()
	case wire.Bool:
		return v.Bool()
	case wire.String:
		return v.Str()
	}
	return nil
}

func formatValue(v wire.Value) string {
	switch v.Kind() {
	case wire.Float:
		f, _ := v.Float()
		if a := math.Abs(f); a >= 1e-4 && a < 1e15 || f == 0 {
			return strconv.FormatFloat(f, 'f', -1, 64)
		}
		return strconv.FormatFloat(f, 'g', -1, 64)
	case wire.Int:
		return strconv.FormatInt(v.Int(), 10)
	case wire.Uint:
		return strconv.FormatUint(v.Uint(), 10)
	case wire.Bool:
		return strconv.FormatBool(v.Bool())
	case wire.String:
		return strconv.Quote(v.Str())
	}
	return "null"
}

// Command weft-sim simulates PLCs for tests and demos: Modbus (TCP, RTU over
// TCP, RTU or ASCII on a serial line) and OPC UA. `weft-sim --help` lists
// the profiles; docs/modbus.md documents the Modbus register maps.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	simmodbus "github.com/weftiot/weft/sim/modbus"
	simopcua "github.com/weftiot/weft/sim/opcua"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, logger)
	stop()
	os.Exit(code)
}

// listFlag is a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// exceptionFlag parses TABLE:ADDRESS:CODE[@UNIT].
type exceptionFlag []simmodbus.ExceptionAt

func (e *exceptionFlag) String() string { return "" }
func (e *exceptionFlag) Set(v string) error {
	spec, unitStr, hasUnit := strings.Cut(v, "@")
	parts := strings.Split(spec, ":")
	if len(parts) != 3 {
		return fmt.Errorf("want TABLE:ADDRESS:CODE[@UNIT], e.g. holding:100:2")
	}
	addr, err := strconv.Atoi(parts[1])
	if err != nil || addr < 0 || addr > 65535 {
		return fmt.Errorf("address %q: want 0..65535", parts[1])
	}
	code, err := strconv.Atoi(parts[2])
	if err != nil || code < 1 || code > 255 {
		return fmt.Errorf("code %q: want 1..255", parts[2])
	}
	switch parts[0] {
	case "coil", "discrete", "holding", "input":
	default:
		return fmt.Errorf("table %q: want coil, discrete, holding or input", parts[0])
	}
	x := simmodbus.ExceptionAt{Table: parts[0], Address: addr, Code: byte(code)}
	if hasUnit {
		u, err := strconv.Atoi(unitStr)
		if err != nil || u < 1 || u > 247 {
			return fmt.Errorf("unit %q: want 1..247", unitStr)
		}
		x.Unit = byte(u)
	}
	*e = append(*e, x)
	return nil
}

// parseUnits parses 1=dyeing,2=loom.
func parseUnits(s string) (map[byte]string, error) {
	if s == "" {
		return nil, nil
	}
	m := map[byte]string{}
	for _, kv := range strings.Split(s, ",") {
		u, p, ok := strings.Cut(kv, "=")
		n, err := strconv.Atoi(u)
		if !ok || err != nil || n < 1 || n > 247 {
			return nil, fmt.Errorf("--units %q: want UNIT=PROFILE,... with units 1..247", s)
		}
		if _, ok := simmodbus.Profiles[p]; !ok {
			return nil, fmt.Errorf("--units: unit %d: unknown profile %q: want one of %s", n, p, strings.Join(simmodbus.ProfileNames(), ", "))
		}
		m[byte(n)] = p
	}
	return m, nil
}

func usage(fs *flag.FlagSet, w io.Writer) func() {
	return func() {
		fmt.Fprintln(w, "weft-sim: simulated PLCs for Weft's tests and demos.")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "  weft-sim --modbus 127.0.0.1:5020 --profile dyeing")
		fmt.Fprintln(w, "  weft-sim --modbus 127.0.0.1:5020=dyeing --modbus 127.0.0.1:5021=loom --opcua 127.0.0.1:4840")
		fmt.Fprintln(w, "  weft-sim --rtuovertcp 127.0.0.1:5030 --units 1=dyeing,2=loom,3=rodwrap")
		fmt.Fprintln(w, "  weft-sim --serial /tmp/pty/b --serial-mode ascii --profile testregs")
		fmt.Fprintln(w, "  weft-sim --modbus 127.0.0.1:5020 --profile counter --devices 50 --registers 100 --tick 1s")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Modbus profiles (register maps: docs/modbus.md):")
		for _, n := range simmodbus.ProfileNames() {
			fmt.Fprintf(w, "  %-9s %s\n", n, simmodbus.Profiles[n])
		}
		fmt.Fprintln(w, "OPC UA profiles: dyeing, loom, winder, all (default).")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "A listener given as ADDR=PROFILE serves that profile on unit 1; otherwise it")
		fmt.Fprintln(w, "serves --units, or --profile on unit 1 (counter: units 1..--devices).")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Flags:")
		out := fs.Output()
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(out)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, logger *slog.Logger) int {
	fs := flag.NewFlagSet("weft-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		tcp, rtuTCP, serial, opcua listFlag
		exceptions                 exceptionFlag
	)
	fs.Var(&tcp, "modbus", "Modbus TCP listen address ADDR or ADDR=PROFILE (repeatable)")
	fs.Var(&rtuTCP, "rtuovertcp", "RTU-over-TCP listen address ADDR or ADDR=PROFILE (repeatable)")
	fs.Var(&serial, "serial", "serial device PATH or PATH=PROFILE to answer on, e.g. one end of a socat pty pair (repeatable)")
	fs.Var(&opcua, "opcua", "OPC UA listen address ADDR or ADDR=PROFILE (repeatable)")
	serialMode := fs.String("serial-mode", "rtu", "framing on --serial: rtu or ascii")
	profile := fs.String("profile", "dyeing", "Modbus profile of listeners given without =PROFILE")
	units := fs.String("units", "", "unit id → profile map for listeners without =PROFILE, e.g. 1=dyeing,2=loom")
	devices := fs.Int("devices", 1, "counter profile: number of devices (units 1..N)")
	registers := fs.Int("registers", 100, "counter profile: holding and input registers per device (at least 4)")
	tick := fs.Duration("tick", 100*time.Millisecond, "how often simulated values change (the counter's increment period)")
	latency := fs.Duration("latency", 0, "fault: delay before every Modbus answer")
	dropRate := fs.Float64("drop-rate", 0, "fault: fraction of Modbus requests left unanswered (0..1)")
	garbageRate := fs.Float64("garbage-rate", 0, "fault: fraction of Modbus answers replaced by random bytes (0..1)")
	disconnectRate := fs.Float64("disconnect-rate", 0, "fault: fraction of Modbus requests that close the connection instead of answering (0..1)")
	fs.Var(&exceptions, "exception", "fault: answer TABLE:ADDRESS:CODE[@UNIT] with that exception code (repeatable), e.g. holding:105:2")
	seed := fs.Uint64("seed", 1, "seed of the simulated noise and random faults")
	fs.Usage = usage(fs, stdout)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if len(tcp)+len(rtuTCP)+len(serial)+len(opcua) == 0 {
		fmt.Fprintln(stderr, "weft-sim: nothing to serve: give --modbus, --rtuovertcp, --serial or --opcua (see --help)")
		return 2
	}
	unitMap, err := parseUnits(*units)
	if err != nil {
		fmt.Fprintln(stderr, "weft-sim:", err)
		return 2
	}
	for name, r := range map[string]float64{"drop-rate": *dropRate, "garbage-rate": *garbageRate, "disconnect-rate": *disconnectRate} {
		if r < 0 || r > 1 {
			fmt.Fprintf(stderr, "weft-sim: --%s %v: want 0..1\n", name, r)
			return 2
		}
	}
	base := simmodbus.Options{
		Units: unitMap, Profile: *profile, Devices: *devices, Registers: *registers,
		Tick: *tick, Seed: *seed, SerialMode: *serialMode,
		Fault: simmodbus.Fault{Latency: *latency, DropRate: *dropRate, GarbageRate: *garbageRate, DisconnectRate: *disconnectRate, Exceptions: exceptions},
	}
	var servers []*simmodbus.Server
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	start := func(kind, spec string) error {
		addr, prof, hasProf := strings.Cut(spec, "=")
		o := base
		o.Logger = logger.With("listener", kind+"://"+addr)
		if hasProf {
			if _, ok := simmodbus.Profiles[prof]; !ok {
				return fmt.Errorf("--%s %s: unknown profile %q: want one of %s", kind, spec, prof, strings.Join(simmodbus.ProfileNames(), ", "))
			}
			o.Units, o.Profile = nil, prof
		}
		switch kind {
		case "modbus":
			o.TCP = addr
		case "rtuovertcp":
			o.RTUOverTCP = addr
		case "serial":
			o.Serial = addr
		}
		s, err := simmodbus.Start(o)
		if err != nil {
			return err
		}
		servers = append(servers, s)
		logger.Info("serving Modbus", "kind", kind, "addr", firstNonEmpty(s.Addr(), s.RTUOverTCPAddr(), addr), "units", fmt.Sprint(s.Units()))
		return nil
	}
	for _, l := range []struct {
		kind  string
		specs listFlag
	}{{"modbus", tcp}, {"rtuovertcp", rtuTCP}, {"serial", serial}} {
		for _, spec := range l.specs {
			if err := start(l.kind, spec); err != nil {
				fmt.Fprintln(stderr, "weft-sim:", err)
				return 1
			}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(opcua))
	for _, spec := range opcua {
		addr, prof, _ := strings.Cut(spec, "=")
		wg.Add(1)
		go func() {
			defer wg.Done()
			logger.Info("serving OPC UA", "addr", addr, "profile", prof)
			if err := simopcua.Serve(ctx, simopcua.Options{Addr: addr, Profile: prof, Logger: logger.With("listener", "opc.tcp://"+addr)}); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("--opcua %s: %w", spec, err)
			}
		}()
	}
	status := 0
	select {
	case <-ctx.Done():
	case err := <-errc:
		fmt.Fprintln(stderr, "weft-sim:", err)
		status = 1
	}
	cancel()
	wg.Wait()
	return status
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

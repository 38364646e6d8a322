package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/weftiot/weft/config"
	"github.com/weftiot/weft/protocols/opcua"
	sim "github.com/weftiot/weft/sim/opcua"
	"github.com/weftiot/weft/wire"
)

// TestBrowseOPCUA browses the simulator, then pastes the --config output
// into an agent config, loads it with the config loader and reads every
// point with the driver: the field engineer's browse, trim, paste.
func TestBrowseOPCUA(t *testing.T) {
	s, err := sim.Start(sim.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		args = append([]string{"browse", "opcua", "--endpoint", s.Endpoint(), "--data-dir", t.TempDir()}, args...)
		if code := Main(ctx, args, &out, &errb, slog.New(slog.NewTextHandler(io.Discard, nil))); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
		return out.String()
	}
	tree := run("--depth", "4")
	for _, want := range []string{"1:DyeingMachine1  ns=1;s=DyeingMachine1  (Object)", "1:Temperature  ns=1;s=DyeingMachine1.Bath.Temperature  Double = ",
		"1:DoubleArray  ns=1;s=Types.DoubleArray  Double[] = [1.25 -2.5 0 1e+06]", `1:String  ns=1;s=Types.String  String = "染色机 dyeing machine"`} {
		if !strings.Contains(tree, want) {
			t.Errorf("tree lacks %q:\n%s", want, tree)
		}
	}

	points := run("--node", "ns=1;s=Loom1", "--config")
	if !strings.Contains(points, `node: "ns=1;s=Loom1.Speed"`) || !strings.Contains(points, "name: Speed") {
		t.Fatalf("--config output:\n%s", points)
	}
	indented := "    " + strings.ReplaceAll(strings.TrimSpace(points), "\n", "\n    ")
	file := "agent: {id: a1, site: s1}\nmqtt: {broker: tcp://127.0.0.1:1883}\ndevices:\n  - id: loom1\n    opcua: {endpoint: " + s.Endpoint() + "}\n" + indented + "\n"
	a, err := config.ParseAgent("pasted.yaml", []byte(file))
	if err != nil {
		t.Fatalf("pasted --config output does not load: %v\n%s", err, file)
	}
	dev := a.Devices[0]
	var ps []opcua.Point
	for _, p := range dev.Points {
		pc := p.OPCUA
		pc.Mode = "poll"
		ps = append(ps, opcua.Point{Name: p.Name, PointConfig: pc})
	}
	if len(ps) != 7 {
		t.Errorf("got %d points from Loom1, want 7", len(ps))
	}
	d, err := opcua.New(dev.ID, *dev.OPCUA, ps, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	got := 0
	err = d.Poll(ctx, func(s wire.Sample) {
		got++
		if s.Quality != wire.Good {
			t.Errorf("%s: quality %v code %#x", s.Point, s.Quality, s.Code)
		}
	})
	if err != nil || got != len(ps) {
		t.Errorf("poll: %v, %d samples for %d points", err, got, len(ps))
	}
}

func TestBrowseOPCUAUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"browse", "opcua"}, &out, &errb, slog.New(slog.NewTextHandler(io.Discard, nil))); code != 2 || !strings.Contains(errb.String(), "--endpoint") {
		t.Errorf("no endpoint: exit %d, stderr %q", code, errb.String())
	}
	code := Main(context.Background(), []string{"browse", "opcua", "--endpoint", "opc.tcp://127.0.0.1:1", "--timeout", "1s", "--data-dir", t.TempDir()}, &out, &errb, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if code != 1 || !strings.Contains(errb.String(), "nothing listens there") {
		t.Errorf("server down: exit %d, stderr %q", code, errb.String())
	}
}

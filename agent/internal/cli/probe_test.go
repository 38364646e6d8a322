package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftiot/weft/internal/faultproxy"
	simmodbus "github.com/weftiot/weft/sim/modbus"
)

func probeCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := Main(ctx, args, &out, &errb, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return out.String(), errb.String(), code
}

func startModbusSim(t *testing.T, units map[byte]string) *simmodbus.Server {
	t.Helper()
	s, err := simmodbus.Start(simmodbus.Options{TCP: "127.0.0.1:0", Units: units})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestProbeModbus(t *testing.T) {
	s := startModbusSim(t, map[byte]string{1: "testregs"})
	target := "tcp://" + s.Addr()

	// The float32 block of each order decodes to -1234.5 in its own column.
	for order, base := range simmodbus.TestRegsBase {
		out, errs, code := probeCLI(t, "probe", "modbus", "--target", target, "--address", itoa(base+14), "--count", "2")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		col := map[string]int{"ABCD": 0, "CDAB": 1, "BADC": 2, "DCBA": 3}[order]
		row := lineStarting(out, "  float32")
		if f := strings.Fields(row); len(f) != 5 || f[1+col] != "-1234.5" {
			t.Errorf("%s: float32 row %q, want -1234.5 in column %s\n%s", order, row, order, out)
		}
	}
	out, _, _ := probeCLI(t, "probe", "modbus", "--target", target, "--address", "0", "--count", "1")
	if !strings.Contains(out, "0xA5C3") || !strings.Contains(out, "1010 0101 1100 0011") || !strings.Contains(out, "(needs 2 registers)") {
		t.Errorf("raw register view:\n%s", out)
	}

	out, errs, code := probeCLI(t, "probe", "modbus", "--target", target, "--address", "100", "--count", "4", "--json")
	if code != 0 {
		t.Fatalf("json: exit %d %s", code, errs)
	}
	var j struct {
		Registers []uint16
		Decoded   map[string]map[string]any
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if len(j.Registers) != 4 || j.Decoded["int16"]["ABCD"] != float64(-12345) || j.Decoded["uint16"]["ABCD"] != float64(53191) {
		t.Errorf("json: %+v", j)
	}

	out, _, code = probeCLI(t, "probe", "modbus", "--target", target, "--table", "coil", "--count", "4")
	if code != 0 || !strings.Contains(out, "      0  1\n      1  1\n      2  0\n") {
		t.Errorf("coils: exit %d\n%s", code, out)
	}
}

func TestProbeModbusErrors(t *testing.T) {
	s := startModbusSim(t, map[byte]string{1: "testregs"})
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()
	// A listener that accepts and never answers.
	silent := faultproxy.Listen(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--target", "tcp://" + s.Addr(), "--address", "1000"}, "exception 2 (illegal data address): the register is not mapped on this device — check the address offset (40001 vs 0"},
		{[]string{"--target", "tcp://" + closed}, "connection refused: nothing listens on that port"},
		{[]string{"--target", "tcp://" + silent, "--timeout", "100ms"}, "no answer from unit 1 at tcp://" + silent + " within 100ms"},
		{[]string{"--target", "rtu:///dev/does-not-exist"}, "no such serial device"},
		{[]string{"--target", "udp://x"}, `scheme "udp": want tcp, rtuovertcp, rtu or ascii`},
		{[]string{"--target", "tcp://" + s.Addr(), "--count", "126"}, "count 126: want 1..125"},
	} {
		_, errs, code := probeCLI(t, append([]string{"probe", "modbus"}, c.args...)...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, errs, c.want)
		}
	}
}

func TestScanModbus(t *testing.T) {
	s := startModbusSim(t, map[byte]string{2: "dyeing", 7: "loom", 30: "testregs"})
	out, errs, code := probeCLI(t, "scan", "modbus", "--target", "tcp://"+s.Addr(), "--units", "1-10,30", "--timeout", "100ms")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var units []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "unit") {
			units = append(units, strings.Fields(l)[1])
		}
	}
	if strings.Join(units, ",") != "2,7,30" || !strings.Contains(out, "3 of 11 unit ids answered") {
		t.Errorf("scan found %v:\n%s", units, out)
	}
	if strings.Contains(out, "\r") {
		t.Errorf("progress bar drawn on a non-terminal:\n%q", out)
	}
	if _, errs, code := probeCLI(t, "scan", "modbus", "--target", "tcp://"+s.Addr(), "--units", "5-1"); code != 2 || !strings.Contains(errs, "want ids or ranges") {
		t.Errorf("bad --units: exit %d %q", code, errs)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func lineStarting(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

package modbus_test

import (
	"bufio"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftiot/weft/protocols/modbus"
	"github.com/weftiot/weft/wire"
)

// The driver against a second, independent Modbus server: a few lines of C
// on Debian's libmodbus (testdata/libmodbus/server.c), built in the test's
// temp dir.
func TestDriverAgainstLibmodbusServer(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed")
	}
	flags, err := exec.Command("pkg-config", "--cflags", "--libs", "libmodbus").Output()
	if err != nil {
		t.Skip("libmodbus-dev not installed (apt-get install libmodbus-dev)")
	}
	bin := filepath.Join(t.TempDir(), "server")
	args := append([]string{"-o", bin, "testdata/libmodbus/server.c"}, strings.Fields(string(flags))...)
	if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		t.Fatalf("build libmodbus server: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("libmodbus server printed no port: %v", err)
	}
	target := "tcp://127.0.0.1:" + strings.TrimSpace(line)

	var pts []modbus.Point
	want := map[string]wire.Value{}
	for a := 0; a < 100; a += 7 {
		if a >= 10 && a < 18 {
			continue
		}
		n := fmt.Sprint("h", a)
		pts = append(pts, hp(n, a, "uint16"))
		want[n] = wire.UintValue(uint64(1000 + a))
		n = fmt.Sprint("i", a)
		pts = append(pts, modbus.Point{Name: n, PointConfig: modbus.PointConfig{Table: "input", Address: intp(a), Type: "uint16"}})
		want[n] = wire.UintValue(uint64(2000 + a))
	}
	// Debian's libmodbus 3.1.6: modbus_set_float_abcd(1234.5) writes
	// 9A44 0050, while 1234.5f is 0x449A5000, i.e. 449A 5000 in big-endian
	// (ABCD as Weft, mbpoll and most PLC manuals name it). Its four setters
	// land on Weft's orders like this:
	for addr, order := range map[int]string{10: "BADC", 12: "DCBA", 14: "ABCD", 16: "CDAB"} {
		n := fmt.Sprint("f", addr)
		pts = append(pts, modbus.Point{Name: n, PointConfig: modbus.PointConfig{Table: "holding", Address: intp(addr), Type: "float32", Order: order}})
		want[n] = wire.FloatValue(1234.5)
	}
	for i := range 16 {
		n := fmt.Sprint("c", i)
		pts = append(pts, modbus.Point{Name: n, PointConfig: modbus.PointConfig{Table: "coil", Address: intp(i)}})
		want[n] = wire.BoolValue(0xA5C3>>i&1 == 1)
	}
	pool := modbus.NewPool(nil)
	defer pool.Close()
	d := newDriver(t, pool, "libmodbus", modbus.DeviceConfig{Target: target}, pts)
	for range 2 {
		got, err := poll(t, d)
		if err != nil {
			t.Fatal(err)
		}
		for n, w := range want {
			if g := got[n]; g.Quality != wire.Good || !g.Value.Equal(w) {
				t.Errorf("%s: got %v %+v, want %+v", n, g.Quality, g.Value, w)
			}
		}
	}
	// An unmapped address inside a merged block (libmodbus maps 100
	// registers): exception 2, split, the mapped points still read.
	d2 := newDriver(t, pool, "edge", modbus.DeviceConfig{Target: target}, []modbus.Point{hp("h98", 98, "uint16"), hp("h99", 99, "uint16"), hp("h100", 100, "uint16")})
	got, err := poll(t, d2)
	if err != nil || got["h98"].Quality != wire.Good || got["h99"].Value.Uint() != 1099 || got["h100"].Code != 2 {
		t.Errorf("edge of the map: %v %+v", err, got)
	}
}

package modbus_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	sim "github.com/weftiot/weft/sim/modbus"
)

// mbpoll runs Debian's mbpoll (libmodbus) once and returns reference → value.
func mbpoll(t *testing.T, args ...string) map[string]string {
	t.Helper()
	bin, err := exec.LookPath("mbpoll")
	if err != nil {
		t.Skip("mbpoll not installed (make deps installs it)")
	}
	out, err := exec.Command(bin, append([]string{"-1", "-o", "1"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("mbpoll %v: %v\n%s", args, err, out)
	}
	got := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\[(\d+)\]:\s+(\S+)`).FindAllStringSubmatch(string(out), -1) {
		got[m[1]] = m[2]
	}
	return got
}

func check(t *testing.T, what string, got map[string]string, want map[string]string) {
	t.Helper()
	for ref, w := range want {
		if got[ref] != w {
			t.Errorf("%s [%s] = %q, want %q (all: %v)", what, ref, got[ref], w, got)
		}
	}
}

// libmodbus, through mbpoll, reads the simulator's testregs as documented:
// the simulator speaks Modbus as other implementations do. mbpoll numbers
// references from 1, so address 100 is reference 101.
func TestMbpollReadsSimulator(t *testing.T) {
	s, err := sim.Start(sim.Options{TCP: "127.0.0.1:0", Profile: "testregs"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	host, port, _ := strings.Cut(s.Addr(), ":")
	tcp := []string{"-m", "tcp", "-p", port}

	check(t, "int16", mbpoll(t, append(tcp, "-r", "101", "-c", "2", "-t", "4", host)...),
		map[string]string{"101": "53191", "102": "54321"})
	check(t, "float32 ABCD", mbpoll(t, append(tcp, "-r", "115", "-t", "4:float", "-B", host)...),
		map[string]string{"115": "-1234.5"})
	check(t, "float32 CDAB", mbpoll(t, append(tcp, "-r", "215", "-t", "4:float", host)...),
		map[string]string{"215": "-1234.5"})
	check(t, "int32 ABCD", mbpoll(t, append(tcp, "-r", "103", "-t", "4:int", "-B", host)...),
		map[string]string{"103": "-123456789"})
	check(t, "int32 CDAB", mbpoll(t, append(tcp, "-r", "203", "-t", "4:int", host)...),
		map[string]string{"203": "-123456789"})
	check(t, "input", mbpoll(t, append(tcp, "-r", "1", "-t", "3:hex", host)...),
		map[string]string{"1": "0xA5C3"})
	check(t, "coils", mbpoll(t, append(tcp, "-r", "1", "-c", "4", "-t", "0", host)...),
		map[string]string{"1": "1", "2": "1", "3": "0", "4": "0"})
	check(t, "discrete", mbpoll(t, append(tcp, "-r", "7", "-c", "2", "-t", "1", host)...),
		map[string]string{"7": "1", "8": "1"})
}

// mbpoll as an RTU master on one end of a socat pty pair, the simulator's
// serial side on the other.
func TestMbpollRTUOverSerial(t *testing.T) {
	socat, err := exec.LookPath("socat")
	if err != nil {
		t.Skip("socat not installed")
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	cmd := exec.Command(socat, "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(b); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	s, err := sim.Start(sim.Options{Serial: b, Units: map[byte]string{3: "testregs"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check(t, "rtu", mbpoll(t, "-m", "rtu", "-a", "3", "-b", "19200", "-P", "none", "-r", "115", "-t", "4:float", "-B", a),
		map[string]string{"115": "-1234.5"})
}

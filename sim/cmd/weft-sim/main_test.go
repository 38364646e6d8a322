package main

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weftiot/weft/internal/testlog"
	"github.com/weftiot/weft/protocols/modbus"
)

func TestHelpListsProfiles(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &out, &errb, slog.New(slog.DiscardHandler)); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, p := range []string{"dyeing", "loom", "rodwrap", "testregs", "counter", "-exception", "-rtuovertcp"} {
		if !strings.Contains(out.String(), p) {
			t.Errorf("--help does not mention %s:\n%s", p, out.String())
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "nothing to serve"},
		{[]string{"--modbus", "127.0.0.1:0=weaving"}, `unknown profile "weaving"`},
		{[]string{"--modbus", "127.0.0.1:0", "--units", "1=dyeing,x=loom"}, "--units"},
		{[]string{"--modbus", "127.0.0.1:0", "--exception", "holding:x:2"}, "address"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), c.args, &out, &errb, slog.New(slog.DiscardHandler))
		if code == 0 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, errb.String(), c.want)
		}
	}
}

// Two listeners with their own profiles in one process, as the demo runs
// a dyeing machine and a loom.
func TestListenersWithProfiles(t *testing.T) {
	var logs testlog.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"--modbus", "127.0.0.1:0=dyeing", "--modbus", "127.0.0.1:0=loom", "--exception", "holding:19:2"},
			&bytes.Buffer{}, &bytes.Buffer{}, slog.New(slog.NewTextHandler(&logs, nil)))
	}()
	var addrs []string
	re := regexp.MustCompile(`addr=(127\.0\.0\.1:\d+)`)
	for range 100 {
		if m := re.FindAllStringSubmatch(logs.String(), -1); len(m) == 2 {
			addrs = []string{m[0][1], m[1][1]}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(addrs) != 2 {
		t.Fatalf("listeners not logged:\n%s", logs.String())
	}
	read := func(addr string, address int) ([]byte, error) {
		p, err := modbus.NewProber("tcp://"+addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		data, _, err := p.Read(ctx, 1, "holding", address, 4)
		return data, err
	}
	// The dyeing machine has its recipe name at 20; the loom maps only 20 registers.
	if data, err := read(addrs[0], 20); err != nil || string(data[:8]) != "REACTIVE" {
		t.Errorf("dyeing: % x %v", data, err)
	}
	if _, err := read(addrs[1], 20); err == nil {
		t.Error("loom answered address 20")
	}
	if _, err := read(addrs[0], 18); err == nil || !strings.Contains(err.Error(), "exception 2") {
		t.Errorf("--exception holding:19:2: %v", err)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d after cancel", code)
	}
}

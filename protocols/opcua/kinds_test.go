package opcua

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"
	"github.com/weftiot/weft/protocols"
	sim "github.com/weftiot/weft/sim/opcua"
	"github.com/weftiot/weft/wire"
)

func TestErrorKind(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("read 3 nodes: %w", context.DeadlineExceeded), wire.ErrorTimeout},
		{fmt.Errorf("dial: %w", os.ErrDeadlineExceeded), wire.ErrorTimeout},
		{fmt.Errorf("read: %w", ua.StatusBadTimeout), wire.ErrorTimeout},
		{fmt.Errorf("read: %w", ua.StatusBadUserAccessDenied), wire.ErrorBadStatus},
		{fmt.Errorf("read: %w (%w)", ua.StatusBadSessionClosed, protocols.ErrNotConnected), wire.ErrorBadStatus},
		{fmt.Errorf("login refused (%v): %w", ua.StatusBadUserAccessDenied, ErrLogin), wire.ErrorBadStatus},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), wire.ErrorIO},
		{fmt.Errorf("read: %w", io.EOF), wire.ErrorIO},
	} {
		if got := errorKind(tt.err); got != tt.want {
			t.Errorf("errorKind(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
	var k errorKinds
	k.count(fmt.Errorf("poll: %w", context.Canceled))
	k.count(io.EOF)
	k.count(io.EOF)
	if len(k) != 1 || k[wire.ErrorIO] != 2 {
		t.Errorf("counted %v, want io: 2 and the agent's own cancel left out", k)
	}
}

// TestErrorsByKindAgainstServer counts each kind from a real gopcua server:
// a network cut times a read out, a wrong password is refused with a Bad
// status, a stopped server refuses the connection.
func TestErrorsByKindAgainstServer(t *testing.T) {
	s := startSim(t, sim.Options{Users: map[string]string{"operator": "s3cret"}})
	ctx := ctxT(t, 60*time.Second)
	points := []Point{{Name: "counter", PointConfig: PointConfig{Node: "ns=1;s=Types.Counter", Mode: "poll"}}}
	d := newDriver(t, DeviceConfig{Endpoint: s.Endpoint(), Timeout: 500 * time.Millisecond}, points)
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	var c collector
	if err := d.Poll(ctx, c.emit); err != nil {
		t.Fatal(err)
	}
	if k := d.ErrorsByKind(); len(k) != 0 {
		t.Errorf("errors by kind %v after a good poll, want none", k)
	}
	s.CutNetwork(true)
	if err := d.Poll(ctx, c.emit); err == nil {
		t.Fatal("poll through a network cut succeeded")
	}
	s.CutNetwork(false)
	if k := d.ErrorsByKind(); k[wire.ErrorTimeout] != 1 || len(k) != 1 {
		t.Errorf("errors by kind %v after a read through a cut, want timeout: 1", k)
	}

	bad := newDriver(t, DeviceConfig{Endpoint: s.Endpoint(), Auth: "username", Username: "operator", Password: "wrong", Timeout: time.Second}, points)
	if err := bad.Connect(ctx); !errors.Is(err, ErrLogin) {
		t.Fatalf("wrong password: %v", err)
	}
	if k := bad.ErrorsByKind(); k[wire.ErrorBadStatus] != 1 || len(k) != 1 {
		t.Errorf("errors by kind %v after a refused login, want bad_status: 1", k)
	}

	addr := s.Endpoint()
	s.Stop()
	down := newDriver(t, DeviceConfig{Endpoint: addr, Timeout: time.Second}, points)
	if err := down.Connect(ctx); err == nil {
		t.Fatal("connect to a stopped server succeeded")
	}
	if k := down.ErrorsByKind(); k[wire.ErrorIO] != 1 || len(k) != 1 {
		t.Errorf("errors by kind %v after a refused connection, want io: 1", k)
	}
}

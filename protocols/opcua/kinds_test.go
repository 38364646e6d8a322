package opcua

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"

	"github.com/gopcua/opcua/ua"
	"github.com/weftiot/weft/protocols"
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

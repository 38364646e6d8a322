package opcua

import (
	"context"
	"errors"
	"maps"
	"net"

	"github.com/gopcua/opcua/ua"
	"github.com/weftiot/weft/wire"
)

// errorKinds counts the driver's failures (every error Connect, Poll and
// Subscribe return) by kind. Guarded by Driver.mu.
type errorKinds map[string]uint64

// count adds err under its kind: timeout (no answer in time, BadTimeout),
// bad_status (the server answered with another Bad status code, a refused
// login included), io
// (everything else: refused, reset, closed, a subscription gone silent).
// The end of the agent's own context is not a failure and is not counted.
func (k *errorKinds) count(err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	if *k == nil {
		*k = errorKinds{}
	}
	(*k)[errorKind(err)]++
}

func errorKind(err error) string {
	var ne net.Error
	var sc ua.StatusCode
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout(), errors.Is(err, ua.StatusBadTimeout):
		return wire.ErrorTimeout
	case errors.As(err, &sc) && sc != ua.StatusOK, errors.Is(err, ErrLogin):
		return wire.ErrorBadStatus
	}
	return wire.ErrorIO
}

// ErrorsByKind implements protocols.ErrorKinds.
func (d *Driver) ErrorsByKind() map[string]uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(map[string]uint64(d.kinds))
}

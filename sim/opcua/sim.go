// Package opcua is the OPC UA side of weft-sim: machine profiles served
// through gopcua's server package.
package opcua

import (
	"context"
	"errors"
	"log/slog"
)

// Options configure the simulated server.
type Options struct {
	Addr    string // host:port to listen on
	Profile string // machine profile name
	Logger  *slog.Logger
}

// Serve runs the server until ctx ends.
// (Contract placeholder: the OPC UA simulator replaces this body.)
func Serve(ctx context.Context, opts Options) error {
	return errors.New("opcua simulator not built yet")
}

// Package protocols defines what a device driver is. The drivers themselves
// live beside it: protocols/modbus and protocols/opcua.
//
// A driver is small: it connects, reads or subscribes, and closes. The agent
// owns the schedule, reconnects with backoff, and the demotion of a device that
// keeps failing; a failing device never stalls the others.
package protocols

import (
	"context"

	"github.com/weftiot/weft/wire"
)

// Emit receives the samples a driver reads. It is called from the driver's
// goroutine and must not block for long; the sample is passed by value.
type Emit func(wire.Sample)

// Driver is one device.
type Driver interface {
	// Connect opens the connection to the device. It is called before the
	// first Poll and again, with backoff, after Poll or Subscribe reported
	// ErrNotConnected, until it returns nil. It must return when ctx ends.
	Connect(ctx context.Context) error

	// Poll reads every polled point once and emits one sample per point,
	// stamped with the time it was read. A point that could not be read is
	// emitted with quality Bad (and the device's code), not skipped, so that
	// the gap is visible. Poll returns an error when the device did not answer
	// at all; an error wrapping ErrNotConnected makes the agent reconnect.
	// Drivers whose points are all subscribed return nil without emitting.
	Poll(ctx context.Context, emit Emit) error

	// Close releases the connection. It is called once, after the last Poll.
	Close() error
}

// Subscriber is a Driver that can also push samples as they change (OPC UA
// monitored items). The agent calls Subscribe after Connect, in its own
// goroutine; it blocks, emitting samples, until ctx ends (return nil) or the
// subscription is lost (return an error; the agent reconnects and calls it
// again).
type Subscriber interface {
	Subscribe(ctx context.Context, emit Emit) error
}

// Counter is a Driver that counts the protocol requests it issued (Modbus
// PDUs, OPC UA Read calls). The agent reports it in the device's health.
type Counter interface {
	Requests() uint64
}

// ErrorKinds is a Driver that counts its failed requests by kind (the
// wire.Error* constants: timeout, io, frame, exception, bad_status,
// bad_value). The agent reports them in the device's health. ErrorsByKind
// returns a new map holding only the kinds counted at least once; it may be
// called from any goroutine.
type ErrorKinds interface {
	ErrorsByKind() map[string]uint64
}

// FieldError is a problem with one key of a driver's configuration section.
// Field is the key's path below the section (for example "max_gap", or
// "target"); the config loader turns it into FILE:LINE:COL: path: message.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

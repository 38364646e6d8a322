package modbus

import (
	"errors"
	"fmt"
)

// Errors a request can end with, besides *ExceptionError and the
// protocols.ErrNotConnected of a connection that cannot be opened.
var (
	// ErrTimeout: the device did not answer within the request timeout.
	ErrTimeout = errors.New("no answer within the timeout")
	// ErrFrame: the answer was malformed or did not belong to the request
	// (wrong transaction id, unit, function, CRC or length). The connection
	// is dropped, or a serial line drained, so a late answer is never taken
	// for the answer to a later request.
	ErrFrame = errors.New("malformed or mismatched answer")
	// ErrWritesDisabled: a write to a device whose config lacks writes: true.
	ErrWritesDisabled = errors.New("writes are disabled for this device (set writes: true)")
)

// ExceptionError is a Modbus exception answer.
type ExceptionError struct {
	Function byte
	Code     byte
}

func (e *ExceptionError) Error() string {
	return fmt.Sprintf("exception %d (%s)", e.Code, ExceptionName(e.Code))
}

// ExceptionName is the standard name of an exception code.
func ExceptionName(code byte) string {
	switch code {
	case 1:
		return "illegal function"
	case 2:
		return "illegal data address"
	case 3:
		return "illegal data value"
	case 4:
		return "server device failure"
	case 5:
		return "acknowledge"
	case 6:
		return "server device busy"
	case 8:
		return "memory parity error"
	case 10:
		return "gateway path unavailable"
	case 11:
		return "gateway target device failed to respond"
	}
	return "unknown exception"
}

// ExceptionHint says what an exception code usually means on site.
func ExceptionHint(code byte) string {
	switch code {
	case 1:
		return "the device does not support this function code — try the other table (holding vs input, coil vs discrete)"
	case 2:
		return "the register is not mapped on this device — check the address offset (40001 vs 0: register 40001 is address 0 of the holding table) and the count"
	case 3:
		return "the device refuses this count or value — read fewer registers at once (max_registers_per_request)"
	case 4:
		return "the device failed while answering — look at the PLC; the driver retries"
	case 5, 6:
		return "the device is busy with a long operation — the driver retries with backoff; add inter_request_delay if it persists"
	case 10:
		return "the gateway has no path to this unit — check the gateway's serial port settings and the unit id"
	case 11:
		return "the gateway got no answer from the unit behind it — check the unit id, wiring and the serial settings of the gateway"
	}
	return "see the device manual"
}

//go:build !linux

package modbus

import (
	"errors"
	"os"
)

// openSerial: serial lines are supported on Linux, where edge boxes run.
func openSerial(t Target) (*os.File, error) {
	return nil, errors.New("serial ports are supported on Linux only; use tcp:// or rtuovertcp:// through a serial server")
}

func flushInput(*os.File) {}

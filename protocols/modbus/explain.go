package modbus

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/weftiot/weft/protocols"
)

// Explain turns a read or connect error into what a field engineer should
// check, naming the target and unit: probe, scan and once print it.
func Explain(err error, target string, unit int, timeout time.Duration) string {
	var ex *ExceptionError
	switch {
	case errors.As(err, &ex):
		return fmt.Sprintf("unit %d answered %s: %s", unit, ex, ExceptionHint(ex.Code))
	case errors.Is(err, ErrTimeout):
		hint := "check the unit id and that the device is powered and wired"
		if strings.HasPrefix(target, "rtu") || strings.HasPrefix(target, "ascii") {
			hint += "; on a serial line also the baud rate, parity and A/B wiring"
		}
		return fmt.Sprintf("no answer from unit %d at %s within %s: %s", unit, target, timeout, hint)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("cannot connect to %s: connection refused: nothing listens on that port — check the IP address and port (Modbus TCP is usually 502)", target)
	case errors.Is(err, os.ErrNotExist):
		return fmt.Sprintf("cannot open %s: no such serial device — check the path (ls /dev/ttyUSB* /dev/ttyS*)", target)
	case errors.Is(err, os.ErrPermission):
		return fmt.Sprintf("cannot open %s: permission denied — run as a member of the dialout group", target)
	case errors.Is(err, protocols.ErrNotConnected):
		return fmt.Sprintf("cannot reach %s: %v — check the address, the network path and any firewall", target, err)
	case errors.Is(err, ErrFrame):
		return fmt.Sprintf("unit %d at %s answered with a malformed frame (%v): check that the target's scheme matches the device (tcp vs rtuovertcp) and, on serial, the line settings", unit, target, err)
	}
	return err.Error()
}

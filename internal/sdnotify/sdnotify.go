// Package sdnotify tells systemd how a service is doing, over the socket
// systemd names in $NOTIFY_SOCKET (the sd_notify(3) protocol: one unix
// datagram of NAME=value lines), without libsystemd or cgo. Outside
// systemd, or in a unit without Type=notify or WatchdogSec=, every call does
// nothing and returns nil.
//
// A service calls Ready once it does its job, Watchdog at least every
// WatchdogInterval()/2 while it is healthy, and Stopping when it begins to
// shut down. deploy/systemd and docs/deploy.md show the unit side.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// Ready tells systemd that start-up is finished (READY=1).
func Ready() error { return Notify("READY=1") }

// Stopping tells systemd that the service is shutting down (STOPPING=1).
func Stopping() error { return Notify("STOPPING=1") }

// Watchdog tells systemd that the service is alive (WATCHDOG=1). Without
// one within WatchdogSec=, systemd kills and restarts the service.
func Watchdog() error { return Notify("WATCHDOG=1") }

// Status sets the one-line status `systemctl status` shows (STATUS=...).
func Status(line string) error { return Notify("STATUS=" + line) }

// Notify sends state, newline-separated NAME=value assignments, to
// $NOTIFY_SOCKET. It returns nil when the variable is not set.
func Notify(state string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	name := addr
	switch addr[0] {
	case '/':
	case '@':
		name = "\x00" + addr[1:] // a Linux abstract socket
	default:
		return fmt.Errorf("sdnotify: NOTIFY_SOCKET=%q is neither a path nor an abstract socket (@name)", addr)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: %s: %w", addr, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: %s: send %q: %w", addr, state, err)
	}
	return nil
}

// WatchdogInterval is the unit's WatchdogSec= as systemd passes it
// ($WATCHDOG_USEC, for this process per $WATCHDOG_PID), or 0 when no
// watchdog is asked for. Send Watchdog at least twice per interval.
func WatchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond
}

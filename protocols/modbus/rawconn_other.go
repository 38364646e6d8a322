//go:build !linux

package modbus

import "net"

// newRawTCP is the connection itself: the system call shortcut of
// rawconn_linux.go is Linux only.
func newRawTCP(c *net.TCPConn) stream { return c }

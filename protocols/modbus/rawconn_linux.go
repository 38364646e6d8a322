package modbus

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawTCP is a TCP connection whose reads and writes bypass the Go
// runtime's system call bookkeeping: on a non-blocking socket they never
// block, so they need not hand the processor over, and not telling the
// runtime keeps its monitor thread asleep. With every Modbus request
// entering two or three system calls while the process is otherwise idle,
// the runtime's wake-ups cost more CPU than the exchange itself
// (docs/benchmarks.md, "Agent CPU per sample"). Waiting for the answer
// still parks the goroutine in the network poller, which honours the
// connection's deadlines.
type rawTCP struct {
	*net.TCPConn
	rc syscall.RawConn
}

func newRawTCP(c *net.TCPConn) stream {
	rc, err := c.SyscallConn()
	if err != nil {
		return c
	}
	return &rawTCP{TCPConn: c, rc: rc}
}

func (r *rawTCP) Write(p []byte) (int, error) {
	n := 0
	var errno syscall.Errno
	err := r.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			m, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
			switch e {
			case 0:
				n += int(m)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // wait until writable
			default:
				errno = e
				return true
			}
		}
		return true
	})
	if err == nil && errno != 0 {
		err = os.NewSyscallError("write", errno)
	}
	return n, err
}

func (r *rawTCP) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	var errno syscall.Errno
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			m, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case 0:
				n = int(m)
				return true
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // wait until readable
			default:
				errno = e
				return true
			}
		}
	})
	if err == nil && errno != 0 {
		err = os.NewSyscallError("read", errno)
	}
	if err == nil && n == 0 {
		return 0, io.EOF
	}
	return n, err
}

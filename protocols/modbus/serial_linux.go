package modbus

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// baudRates maps the usual Modbus line speeds to their termios codes.
var baudRates = map[int]uint32{
	1200: unix.B1200, 2400: unix.B2400, 4800: unix.B4800, 9600: unix.B9600,
	19200: unix.B19200, 38400: unix.B38400, 57600: unix.B57600,
	115200: unix.B115200, 230400: unix.B230400, 460800: unix.B460800,
	921600: unix.B921600,
}

// openSerial opens a serial device raw, with the target's line settings,
// non-blocking so that reads honour deadlines through the runtime poller.
func openSerial(t Target) (*os.File, error) {
	speed, ok := baudRates[t.Baud]
	if !ok {
		return nil, fmt.Errorf("baud %d: want one of 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600", t.Baud)
	}
	fd, err := unix.Open(t.Address, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", t.Address, err)
	}
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s is not a serial port: %w", t.Address, err)
	}
	// Raw mode (cfmakeraw), then the line settings.
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF | unix.IXANY
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	tio.Cflag &^= unix.CSIZE | unix.PARENB | unix.PARODD | unix.CSTOPB | unix.CBAUD | unix.CRTSCTS
	tio.Cflag |= unix.CREAD | unix.CLOCAL | speed
	switch t.DataBits {
	case 5:
		tio.Cflag |= unix.CS5
	case 6:
		tio.Cflag |= unix.CS6
	case 7:
		tio.Cflag |= unix.CS7
	default:
		tio.Cflag |= unix.CS8
	}
	switch t.Parity {
	case "E":
		tio.Cflag |= unix.PARENB
	case "O":
		tio.Cflag |= unix.PARENB | unix.PARODD
	}
	if t.StopBits == 2 {
		tio.Cflag |= unix.CSTOPB
	}
	tio.Ispeed, tio.Ospeed = speed, speed
	tio.Cc[unix.VMIN], tio.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, tio); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: set line settings: %w", t.Address, err)
	}
	return os.NewFile(uintptr(fd), t.Address), nil
}

// flushInput discards what the serial driver has received and not yet been
// read: left-overs of an earlier exchange (a late answer, line noise).
func flushInput(f *os.File) {
	raw, err := f.SyscallConn()
	if err != nil {
		return
	}
	raw.Control(func(fd uintptr) { unix.IoctlSetInt(int(fd), unix.TCFLSH, unix.TCIFLUSH) })
}

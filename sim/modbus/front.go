package modbus

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	mbs "github.com/simonvetter/modbus"
	"golang.org/x/sys/unix"
)

// errSkip is a request frame the front end could not make sense of; a real
// device ignores it, and so does the simulator.
var errSkip = errors.New("unreadable request frame")

// deadliner is a stream whose reads can time out (a TCP connection, a
// non-blocking serial device).
type deadliner interface {
	io.ReadWriter
	SetReadDeadline(time.Time) error
}

// serveMBAP serves one Modbus TCP client: it reads requests ahead (so that a
// client sending a second request before the first is answered shows up in
// MaxInFlight) and answers them in order through the backend.
func (s *Server) serveMBAP(c net.Conn) {
	back, err := net.Dial("tcp", s.backAddr)
	if err != nil {
		s.log.Warn("backend unreachable", "err", err)
		return
	}
	defer back.Close()
	frames := make(chan []byte, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for f := range frames {
			s.answerMBAP(&answerer{w: c, conc: s.conc}, c, back, f)
		}
	}()
	for {
		f, err := readMBAPRequest(c)
		if err != nil {
			break
		}
		s.requests.Add(1)
		s.conc.enter()
		frames <- f
	}
	close(frames)
	<-done
}

func readMBAPRequest(r io.Reader) ([]byte, error) {
	var hdr [7]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[4:]))
	if n < 2 || n > 254 {
		return nil, fmt.Errorf("%w: MBAP length %d", errSkip, n)
	}
	f := make([]byte, 6+n)
	copy(f, hdr[:])
	_, err := io.ReadFull(r, f[7:])
	return f, err
}

// answerer writes the answer to one request, and marks the request done
// just before: a client may send its next request the moment it has the
// answer, and that must not look like two requests outstanding.
type answerer struct {
	w    io.Writer
	conc *Concurrency
	done bool
}

func (a *answerer) finish() {
	if !a.done {
		a.done = true
		a.conc.leave()
	}
}

func (a *answerer) Write(b []byte) (int, error) {
	a.finish()
	return a.w.Write(b)
}

func (s *Server) answerMBAP(w *answerer, c net.Conn, back net.Conn, req []byte) {
	defer w.finish()
	a := s.decide()
	if a.disconnect {
		w.finish()
		c.Close()
		return
	}
	if !s.sleep(a.delay) || a.drop {
		return
	}
	if a.garbage {
		w.Write(s.garbage())
		return
	}
	ans, err := backendRoundTrip(back, req)
	if err != nil {
		s.log.Warn("backend", "err", err)
		w.finish()
		c.Close()
		return
	}
	if a.stale {
		binary.BigEndian.PutUint16(ans, binary.BigEndian.Uint16(ans)-1)
	}
	w.Write(ans)
}

// backendRoundTrip sends one MBAP request to the simonvetter server.
func backendRoundTrip(back net.Conn, req []byte) ([]byte, error) {
	back.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := back.Write(req); err != nil {
		return nil, err
	}
	return readMBAPRequest(back) // an answer has the same framing
}

// serveSerialFraming serves RTU or ASCII frames on a stream: a TCP
// connection (rtuovertcp) or a serial device. Requests for units that are
// not simulated get no answer, as on an RS-485 bus.
func (s *Server) serveSerialFraming(rw deadliner, mode string) {
	back, err := net.Dial("tcp", s.backAddr)
	if err != nil {
		s.log.Warn("backend unreachable", "err", err)
		return
	}
	defer back.Close()
	frames := make(chan []byte, 64) // unit + PDU
	done := make(chan struct{})
	go func() {
		defer close(done)
		var tid uint16
		for f := range frames {
			tid++
			w := &answerer{w: rw, conc: s.conc}
			s.answerSerial(w, rw, back, f, mode, tid)
			w.finish()
		}
	}()
	br := bufio.NewReader(rw)
	for s.ctx.Err() == nil {
		var f []byte
		if mode == "ascii" {
			f, err = readASCIIRequest(br)
		} else {
			f, err = readRTURequest(br)
		}
		if errors.Is(err, errSkip) {
			resync(rw, br)
			continue
		}
		if err != nil {
			break
		}
		s.requests.Add(1)
		s.conc.enter()
		frames <- f
	}
	close(frames)
	<-done
}

// resync discards input until the line has been quiet for a few
// milliseconds, so the next read starts at a frame boundary.
func resync(rw deadliner, br *bufio.Reader) {
	br.Discard(br.Buffered())
	var buf [256]byte
	for {
		rw.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		if n, err := rw.Read(buf[:]); n == 0 || err != nil {
			break
		}
	}
	rw.SetReadDeadline(time.Time{})
}

// readRTURequest reads one RTU request and returns unit + PDU.
func readRTURequest(r io.Reader) ([]byte, error) {
	// The longest frame: unit, function, address, quantity, byte count 255,
	// data, CRC.
	buf := make([]byte, 7+255+2)
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return nil, err
	}
	var n int
	switch fc := buf[1]; fc {
	case 1, 2, 3, 4, 5, 6:
		n = 8
	case 15, 16:
		if _, err := io.ReadFull(r, buf[2:7]); err != nil {
			return nil, err
		}
		n = 7 + int(buf[6]) + 2
	default:
		return nil, fmt.Errorf("%w: function %d", errSkip, fc)
	}
	have := 2
	if buf[1] == 15 || buf[1] == 16 {
		have = 7
	}
	if _, err := io.ReadFull(r, buf[have:n]); err != nil {
		return nil, err
	}
	if crc16(buf[:n-2]) != binary.LittleEndian.Uint16(buf[n-2:n]) {
		return nil, fmt.Errorf("%w: bad CRC", errSkip)
	}
	return buf[:n-2], nil
}

// readASCIIRequest reads one ':'…CRLF request and returns unit + PDU.
func readASCIIRequest(br *bufio.Reader) ([]byte, error) {
	if _, err := br.ReadBytes(':'); err != nil {
		return nil, err
	}
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimRight(line, "\r\n")
	raw, err := hex.DecodeString(line)
	if err != nil || len(raw) < 3 {
		return nil, fmt.Errorf("%w: ASCII %q", errSkip, line)
	}
	var sum byte
	for _, b := range raw {
		sum += b
	}
	if sum != 0 {
		return nil, fmt.Errorf("%w: bad LRC", errSkip)
	}
	return raw[:len(raw)-1], nil
}

func (s *Server) answerSerial(w *answerer, line io.Writer, back net.Conn, f []byte, mode string, tid uint16) {
	unit := f[0]
	if s.machines[unit] == nil {
		return // nobody with that address on the bus
	}
	a := s.decide()
	if a.disconnect {
		if c, ok := line.(net.Conn); ok {
			w.finish()
			c.Close()
		}
		return
	}
	if !s.sleep(a.delay) || a.drop {
		return
	}
	if a.garbage {
		w.Write(s.garbage())
		return
	}
	req := make([]byte, 6+len(f))
	binary.BigEndian.PutUint16(req, tid)
	binary.BigEndian.PutUint16(req[4:], uint16(len(f)))
	copy(req[6:], f)
	ans, err := backendRoundTrip(back, req)
	if err != nil {
		s.log.Warn("backend", "err", err)
		return
	}
	body := ans[6:] // unit + PDU
	if mode == "ascii" {
		var sum byte
		for _, b := range body {
			sum += b
		}
		frame := ":" + strings.ToUpper(hex.EncodeToString(append(append([]byte{}, body...), -sum))) + "\r\n"
		w.Write([]byte(frame))
		return
	}
	frame := append(append([]byte{}, body...), 0, 0)
	binary.LittleEndian.PutUint16(frame[len(body):], crc16(body))
	w.Write(frame)
}

// crc16 is the Modbus RTU CRC (polynomial 0xA001, initial 0xFFFF).
func crc16(b []byte) uint16 {
	crc := uint16(0xffff)
	for _, c := range b {
		crc ^= uint16(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xa001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

// openSerial opens a serial device (typically a socat pty) raw and
// non-blocking, so that Close interrupts a pending read.
func openSerial(path string, baud int) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("not a serial device: %w", err)
	}
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	tio.Cflag &^= unix.CSIZE | unix.PARENB
	tio.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL
	tio.Cc[unix.VMIN], tio.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, tio); err != nil {
		unix.Close(fd)
		return nil, err
	}
	_ = baud // a pty has no line speed
	return os.NewFile(uintptr(fd), path), nil
}

// handler is the simonvetter RequestHandler over the simulated machines.
type handler struct{ s *Server }

var exceptionErrors = map[byte]error{
	1: mbs.ErrIllegalFunction, 2: mbs.ErrIllegalDataAddress, 3: mbs.ErrIllegalDataValue,
	4: mbs.ErrServerDeviceFailure, 5: mbs.ErrAcknowledge, 6: mbs.ErrServerDeviceBusy,
	8: mbs.ErrMemoryParityError, 10: mbs.ErrGWPathUnavailable, 11: mbs.ErrGWTargetFailedToRespond,
}

// machine finds the unit's machine and applies the exception faults.
func (h *handler) machine(unit byte, table string, addr, qty uint16) (*machine, error) {
	m := h.s.machines[unit]
	if m == nil {
		return nil, mbs.ErrGWTargetFailedToRespond
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	f := &h.s.fault
	if f.BusyNext > 0 {
		f.BusyNext--
		return nil, mbs.ErrServerDeviceBusy
	}
	for _, e := range f.Exceptions {
		if (e.Unit == 0 || e.Unit == unit) && e.Table == table && e.Address >= int(addr) && e.Address < int(addr)+int(qty) {
			if err, ok := exceptionErrors[e.Code]; ok {
				return nil, err
			}
			return nil, mbs.ErrServerDeviceFailure
		}
	}
	return m, nil
}

// serve answers one request on a table of m (which picks that table): a
// write stores args, a read returns a copy of the values asked for; an
// address range past the table's end is exception 2.
func serve[T any](h *handler, unit byte, table string, addr, qty uint16, write bool, args []T, values func(m *machine) []T) ([]T, error) {
	m, err := h.machine(unit, table, addr, qty)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	vals := values(m)
	if int(addr)+int(qty) > len(vals) {
		return nil, mbs.ErrIllegalDataAddress
	}
	if write {
		copy(vals[addr:], args)
		return nil, nil
	}
	return append([]T(nil), vals[addr:int(addr)+int(qty)]...), nil
}

func (h *handler) HandleCoils(req *mbs.CoilsRequest) ([]bool, error) {
	return serve(h, req.UnitId, "coil", req.Addr, req.Quantity, req.IsWrite, req.Args, func(m *machine) []bool { return m.coils })
}

func (h *handler) HandleDiscreteInputs(req *mbs.DiscreteInputsRequest) ([]bool, error) {
	return serve(h, req.UnitId, "discrete", req.Addr, req.Quantity, false, nil, func(m *machine) []bool { return m.discrete })
}

func (h *handler) HandleHoldingRegisters(req *mbs.HoldingRegistersRequest) ([]uint16, error) {
	return serve(h, req.UnitId, "holding", req.Addr, req.Quantity, req.IsWrite, req.Args, func(m *machine) []uint16 { return m.holding })
}

func (h *handler) HandleInputRegisters(req *mbs.InputRegistersRequest) ([]uint16, error) {
	return serve(h, req.UnitId, "input", req.Addr, req.Quantity, false, nil, func(m *machine) []uint16 { return m.input })
}

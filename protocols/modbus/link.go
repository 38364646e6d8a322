package modbus

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftiot/weft/protocols"
)

// stream is a byte stream with deadlines: a TCP connection or a serial port.
type stream interface {
	io.ReadWriteCloser
	SetDeadline(t time.Time) error
}

// framing is how a PDU travels on a link.
type framing uint8

const (
	mbap  framing = iota // Modbus TCP: MBAP header, transaction ids
	rtu                  // unit, PDU, CRC-16 (serial or rtuovertcp)
	ascii                // ':' hex LRC CRLF (serial)
)

// link is one connection — a TCP connection or a serial port — and its request
// queue. Every device whose target has the same canonical form uses the same
// link, so a bus or a serial server only ever sees one request at a time.
type link struct {
	target  Target
	framing framing
	log     *slog.Logger

	// token is the queue: a request holds it from before it is written until
	// its answer has been read (or given up on). Waiting senders are served in
	// arrival order.
	token chan struct{}
	// delay is the pause between two requests (the largest
	// inter_request_delay of the link's devices), in nanoseconds.
	delay atomic.Int64

	// Owned by the token holder.
	conn stream
	last time.Time

	refs int // guarded by Pool.mu

	// The window: how many requests may be outstanding at once. Up to the
	// link's first request or connect it follows the devices joining (the
	// smallest max_inflight among them); then the mode is fixed: with a
	// window of 1 the link is the queue above, otherwise pipe carries the
	// requests.
	modeMu sync.Mutex
	window int // guarded by modeMu; 0 until a device joins
	fixed  atomic.Bool
	pipe   *pipe // set before fixed, never changed after
}

func newLink(t Target, logger *slog.Logger) *link {
	l := &link{target: t, log: logger, token: make(chan struct{}, 1)}
	switch t.Scheme {
	case "tcp":
		l.framing = mbap
	case "ascii":
		l.framing = ascii
	default:
		l.framing = rtu
	}
	return l
}

// join records the window a joining device allows (1 for a device with an
// inter_request_delay): the link uses the smallest. A device that would need
// a link already pipelining to go back to one request at a time cannot join
// it.
func (l *link) join(device string, window int) error {
	l.modeMu.Lock()
	defer l.modeMu.Unlock()
	if l.window == 0 {
		l.window = window
		return nil
	}
	if window == l.window {
		return nil
	}
	if l.pipe != nil && window == 1 {
		return fmt.Errorf("device %q: %s already carries %d requests at once; a device with max_inflight 1 or an inter_request_delay cannot join it until the agent restarts", device, l.target, l.window)
	}
	l.log.Warn("devices on one target disagree on max_inflight; the smallest applies", "device", device, "max_inflight", window, "applies", min(window, l.window))
	l.window = min(l.window, window)
	if l.pipe != nil {
		l.pipe.setWindow(l.window)
	}
	return nil
}

// pipelined returns the link's pipe when it carries several requests at
// once, nil when it carries one at a time. The first call fixes the mode.
func (l *link) pipelined() *pipe {
	if l.fixed.Load() {
		return l.pipe
	}
	l.modeMu.Lock()
	defer l.modeMu.Unlock()
	if !l.fixed.Load() {
		if l.window > 1 && l.framing == mbap {
			l.pipe = newPipe(l.target, l.window, l.log)
		}
		l.fixed.Store(true)
	}
	return l.pipe
}

func (l *link) acquire(ctx context.Context) error {
	select {
	case l.token <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *link) release() { <-l.token }

// connect opens the link if it is not open.
func (l *link) connect(ctx context.Context, timeout time.Duration) error {
	if p := l.pipelined(); p != nil {
		return p.connect(ctx, timeout)
	}
	if err := l.acquire(ctx); err != nil {
		return err
	}
	defer l.release()
	return l.open(ctx, timeout)
}

// open dials the target; the caller holds the token.
func (l *link) open(ctx context.Context, timeout time.Duration) error {
	if l.conn != nil {
		return nil
	}
	if l.target.Serial() {
		f, err := openSerial(l.target)
		if err != nil {
			return &dialError{err}
		}
		l.conn = f
		l.log.Debug("serial port open", "target", l.target.String())
		return nil
	}
	c, err := dialTCP(ctx, l.target, timeout)
	if err != nil {
		return err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		l.conn = newRawTCP(tc)
	} else {
		l.conn = c
	}
	l.log.Debug("connected", "target", l.target.String())
	return nil
}

// dialTCP opens a TCP connection to t. Its error is ctx's when ctx ended,
// else a dialError.
func dialTCP(ctx context.Context, t Target, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", t.Address)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &dialError{err}
	}
	return c, nil
}

// drop closes the connection so that the next request dials again; a late
// answer on the old connection can then never be read as a new answer.
// A serial line cannot be redialled: it is drained instead.
func (l *link) drop() {
	if l.conn == nil {
		return
	}
	if l.target.Serial() {
		drain(l.conn, l.charTime()*8)
		return
	}
	l.conn.Close()
	l.conn = nil
}

// closeConn closes the connection for good (the last device left).
func (l *link) closeConn() error {
	if l.fixed.Load() && l.pipe != nil {
		return l.pipe.close()
	}
	l.token <- struct{}{}
	defer l.release()
	if l.conn == nil {
		return nil
	}
	err := l.conn.Close()
	l.conn = nil
	return err
}

// charTime is the time of one character on a serial line (11 bits).
func (l *link) charTime() time.Duration {
	if l.target.Baud <= 0 {
		return time.Millisecond
	}
	return time.Duration(11 * int64(time.Second) / int64(l.target.Baud))
}

// roundTrip sends one request ADU and returns its answer ADU. It waits for
// the link's queue, for the inter-request delay, opens the link if needed,
// and validates the answer's framing against the request: anything that is
// not the answer to this request is ErrFrame and resets the link. On a
// pipelined link late counts an answer that comes after the request timed
// out (without pipelining the connection is closed at the timeout, so no
// late answer is ever read).
func (l *link) roundTrip(ctx context.Context, req []byte, timeout time.Duration, late *atomic.Uint64) ([]byte, error) {
	if p := l.pipelined(); p != nil {
		return p.roundTrip(ctx, req, timeout, late)
	}
	if err := l.acquire(ctx); err != nil {
		return nil, err
	}
	defer l.release()
	if d := time.Duration(l.delay.Load()); d > 0 && !l.last.IsZero() {
		if wait := time.Until(l.last.Add(d)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			}
		}
	}
	defer func() { l.last = time.Now() }()
	if err := l.open(ctx, timeout); err != nil {
		return nil, err
	}
	c := l.conn
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if f, ok := c.(*os.File); ok {
		// Whatever is on the line now is left over from an earlier exchange.
		flushInput(f)
	}
	c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()

	if _, err := c.Write(req); err != nil {
		l.drop()
		return nil, l.streamErr(ctx, "write", err)
	}
	var (
		ans []byte
		err error
		r   = &lastLook{stream: c, ctx: ctx}
	)
	switch l.framing {
	case mbap:
		ans, err = readMBAP(r, req)
	case rtu:
		ans, err = readRTU(r, req)
	case ascii:
		ans, err = readASCII(r, req)
	}
	if err != nil {
		l.drop()
		return nil, l.streamErr(ctx, "read", err)
	}
	return ans, nil
}

// lookGrace is how long lastLook's second look may wait.
const lookGrace = time.Millisecond

// lastLook reads the answer to one request from a stream whose deadline is
// the request's timeout. Go fails a read whose deadline has passed without
// looking at the socket, so an answer that arrived in time but is read late
// — the agent's own process was not scheduled, on a loaded box with one
// processor — would count as a timeout, and its values would be lost when
// the retry reads newer ones. The first time the deadline has passed,
// lastLook looks once more, waiting at most lookGrace: what is there is
// taken. It does not look when ctx has ended (that deadline was set to cut
// the request short).
type lastLook struct {
	stream
	ctx    context.Context
	looked bool
}

func (l *lastLook) Read(p []byte) (int, error) {
	n, err := l.stream.Read(p)
	if n == 0 && !l.looked && errors.Is(err, os.ErrDeadlineExceeded) && l.ctx.Err() == nil {
		l.looked = true
		l.stream.SetDeadline(time.Now().Add(lookGrace))
		n, err = l.stream.Read(p)
	}
	return n, err
}

// streamErr classifies a stream error: the context's own end, a timeout,
// a bad frame, or a broken connection (which wraps ErrNotConnected).
func (l *link) streamErr(ctx context.Context, op string, err error) error {
	return streamErr(ctx, l.target, op, err)
}

func streamErr(ctx context.Context, target Target, op string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	switch {
	case errors.Is(err, ErrFrame):
		return err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ErrTimeout
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("%s %s: connection closed by peer: %w", op, target, protocols.ErrNotConnected)
	}
	return fmt.Errorf("%s %s: %v: %w", op, target, err, protocols.ErrNotConnected)
}

// dialError is a connection that could not be opened. It wraps
// protocols.ErrNotConnected.
type dialError struct{ err error }

func (e *dialError) Error() string   { return e.err.Error() }
func (e *dialError) Unwrap() []error { return []error{protocols.ErrNotConnected, e.err} }

// readMBAP reads one Modbus TCP answer and checks it belongs to req.
func readMBAP(r io.Reader, req []byte) ([]byte, error) {
	// One buffer for the header and the rest: the longest answer is the
	// 6 header bytes before the length plus a length of 254.
	ans := make([]byte, 7, 6+254)
	if _, err := io.ReadFull(r, ans); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(ans[4:]))
	if binary.BigEndian.Uint16(ans[2:]) != 0 || n < 2 || n > 254 {
		return nil, fmt.Errorf("%w: MBAP header % x", ErrFrame, ans)
	}
	ans = ans[:6+n]
	if _, err := io.ReadFull(r, ans[7:]); err != nil {
		return nil, err
	}
	if err := checkMBAP(ans, req); err != nil {
		return nil, err
	}
	return ans, nil
}

// checkMBAP checks that a whole Modbus TCP answer belongs to req: its
// transaction id, unit and function, and that an exception answer is three
// bytes long.
func checkMBAP(ans, req []byte) error {
	n := len(ans) - 6
	if got, want := binary.BigEndian.Uint16(ans), binary.BigEndian.Uint16(req); got != want {
		return fmt.Errorf("%w: transaction id %d, want %d (a late answer to an earlier request)", ErrFrame, got, want)
	}
	if ans[6] != req[6] {
		return fmt.Errorf("%w: unit %d answered, want %d", ErrFrame, ans[6], req[6])
	}
	if ans[7]&0x7f != req[7] {
		return fmt.Errorf("%w: function %d answered, want %d", ErrFrame, ans[7], req[7])
	}
	if ans[7]&0x80 != 0 && n != 3 {
		return fmt.Errorf("%w: exception answer of %d bytes", ErrFrame, n)
	}
	return nil
}

// readRTU reads one RTU answer and checks it belongs to req.
func readRTU(r io.Reader, req []byte) ([]byte, error) {
	// The longest frame: unit, function, byte count 255, data, CRC.
	buf := make([]byte, 3+255+2)
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return nil, err
	}
	if buf[0] != req[0] {
		return nil, fmt.Errorf("%w: unit %d answered, want %d", ErrFrame, buf[0], req[0])
	}
	var n int // whole frame
	switch fc := buf[1]; {
	case fc == req[1]|0x80:
		n = 5
	case fc != req[1]:
		return nil, fmt.Errorf("%w: function %d answered, want %d", ErrFrame, fc, req[1])
	case fc >= 1 && fc <= 4:
		if _, err := io.ReadFull(r, buf[2:3]); err != nil {
			return nil, err
		}
		n = 3 + int(buf[2]) + 2
	case fc == 5 || fc == 6 || fc == 15 || fc == 16:
		n = 8
	default:
		return nil, fmt.Errorf("%w: function %d is not read or written by this driver", ErrFrame, fc)
	}
	have := 2
	if buf[1] >= 1 && buf[1] <= 4 {
		have = 3
	}
	if _, err := io.ReadFull(r, buf[have:n]); err != nil {
		return nil, err
	}
	if crc16(buf[:n-2]) != binary.LittleEndian.Uint16(buf[n-2:n]) {
		return nil, fmt.Errorf("%w: CRC mismatch in % x", ErrFrame, buf[:n])
	}
	return buf[:n], nil
}

// readASCII reads one ASCII answer (':' … CRLF) and checks it belongs to req.
func readASCII(r io.Reader, req []byte) ([]byte, error) {
	buf := make([]byte, 0, 64)
	var b [1]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, err
		}
		if len(buf) == 0 && b[0] != ':' {
			continue // noise between frames
		}
		buf = append(buf, b[0])
		if b[0] == '\n' {
			break
		}
		if len(buf) > 513 {
			return nil, fmt.Errorf("%w: ASCII frame longer than 513 characters", ErrFrame)
		}
	}
	if len(buf) < 11 || len(buf)%2 != 1 || buf[len(buf)-2] != '\r' {
		return nil, fmt.Errorf("%w: ASCII frame %q", ErrFrame, buf)
	}
	raw := make([]byte, (len(buf)-3)/2)
	if _, err := hex.Decode(raw, buf[1:len(buf)-2]); err != nil {
		return nil, fmt.Errorf("%w: ASCII frame %q: %v", ErrFrame, buf, err)
	}
	var sum byte
	for _, c := range raw {
		sum += c
	}
	if sum != 0 {
		return nil, fmt.Errorf("%w: LRC mismatch in %q", ErrFrame, buf)
	}
	var want [2]byte
	if _, err := hex.Decode(want[:], req[1:5]); err != nil {
		return nil, fmt.Errorf("%w: request %q", ErrFrame, req)
	}
	if raw[0] != want[0] {
		return nil, fmt.Errorf("%w: unit %d answered, want %d", ErrFrame, raw[0], want[0])
	}
	if raw[1]&0x7f != want[1] {
		return nil, fmt.Errorf("%w: function %d answered, want %d", ErrFrame, raw[1], want[1])
	}
	return buf, nil
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

// drain discards what the stream holds now, waiting up to quiet for more.
func drain(c stream, quiet time.Duration) {
	var buf [256]byte
	for {
		c.SetDeadline(time.Now().Add(quiet))
		n, err := c.Read(buf[:])
		if n == 0 || err != nil {
			return
		}
	}
}

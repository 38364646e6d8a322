package modbus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftiot/weft/protocols"
)

// MaxInflightLimit is the largest max_inflight. Modbus TCP servers that take
// several transactions at once on a connection accept a handful; 32 is
// already more than a poll's plan usually holds, keeps every answer that can
// be outstanding (32 × 260 bytes) within one read of the link's buffer, and
// bounds what one dead connection fails at once (every outstanding request).
const MaxInflightLimit = 32

// abandonedLimit is how many requests given up on (timed out while the server
// kept answering others) may wait for their late answers on one pipelined
// connection. Their transaction ids are not given out again while they
// wait; past this many — a unit that never answers, polled for a long
// while — the connection is replaced, which frees them all.
const abandonedLimit = 4096

// pipeReadBuffer holds every answer that can be outstanding: MaxInflightLimit
// answers of at most 260 bytes (6 header bytes and a length of 254).
const pipeReadBuffer = MaxInflightLimit * 260

// pipe is a Modbus TCP connection carrying up to window requests at once
// (max_inflight > 1). The link gives each request a transaction id that is
// unique among those outstanding on the connection — goburrow numbers per
// device, so two devices could collide — and writes every request waiting
// for a slot in one write. One reader goroutine per connection reads the
// answers with a buffer, so several answers cost one read, and hands each to
// its request by transaction id, in whatever order they come.
//
// A request whose timeout passes while the server has answered something
// since it was written (a silent unit behind a gateway that answers the
// others) is failed alone with ErrTimeout and abandoned: the connection
// stays, its transaction id is remembered, and a late answer carrying it is
// read, counted and dropped. A request whose timeout passes with nothing
// answered since it was written means a dead server or a broken path: the
// connection is closed and every request outstanding on it fails, as do a
// broken connection and a frame that matches no outstanding or abandoned
// request; each one's retry then dials again.
type pipe struct {
	target Target
	log    *slog.Logger

	mu       sync.Mutex
	window   int
	conn     pipeConn
	inflight []*call   // written, waiting for their answers, in write order
	queue    []*call   // waiting for a slot, in arrival order
	tid      uint16    // the last transaction id given out
	deadline time.Time // the read deadline set on conn (zero: none)
	wbuf     []byte

	// answers counts the answers read (late ones included): a request
	// notes it when written, so its timeout can tell a server that went on
	// answering from one that fell silent.
	answers uint64
	// abandoned holds the transaction ids of the requests of conn given up
	// on, until their answers come or conn is replaced.
	abandoned    map[uint16]abandonedCall
	maxAbandoned int

	readers sync.WaitGroup // the reader goroutines of conn and earlier connections
}

// pipeConn is a TCP connection whose read and write deadlines can be set
// apart: the reader waits for the earliest answer due while requests are
// written.
type pipeConn interface {
	stream
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// abandonedCall is what a pipe keeps of a request given up on: enough to
// check a late answer and count it.
type abandonedCall struct {
	unit, function byte
	late           *atomic.Uint64 // nil: not counted
}

// call is one request on a pipe and, once done is closed, its outcome.
type call struct {
	adu     []byte         // the request; bytes 0..1 are set by the pipe
	timeout time.Duration  // from when it is written
	limit   time.Time      // the caller's context deadline; zero: none
	start   time.Time      // when it was handed to the pipe
	late    *atomic.Uint64 // counts a late answer, after the call timed out

	// Set when written: when its answer is due, whether that is the
	// caller's context deadline (before the timeout), and the pipe's
	// answers then.
	deadline time.Time
	byCaller bool
	seen     uint64
	done     chan struct{}
	ans      []byte // the answer ADU (in buf) when err is nil
	err      error
	buf      [260]byte
}

func newCall(ctx context.Context, adu []byte, timeout time.Duration) *call {
	c := &call{adu: adu, timeout: timeout, start: time.Now(), done: make(chan struct{})}
	c.limit, _ = ctx.Deadline()
	return c
}

func (c *call) finish(ans []byte, err error) {
	if err == nil {
		c.ans = append(c.buf[:0], ans...)
	}
	c.err = err
	close(c.done)
}

func newPipe(t Target, window int, logger *slog.Logger) *pipe {
	return &pipe{target: t, log: logger, window: window, maxAbandoned: abandonedLimit}
}

// setWindow changes the number of requests allowed out at once.
func (p *pipe) setWindow(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.window = n
}

// connect opens the connection if it is not open.
func (p *pipe) connect(ctx context.Context, timeout time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.openLocked(ctx, timeout)
}

// openLocked dials the target and starts the connection's reader. The
// caller holds p.mu, so requests of other devices wait for the dial, as they
// wait for the queue of a link without pipelining.
func (p *pipe) openLocked(ctx context.Context, timeout time.Duration) error {
	if p.conn != nil {
		return nil
	}
	c, err := dialTCP(ctx, p.target, timeout)
	if err != nil {
		return err
	}
	tc, ok := c.(*net.TCPConn)
	var conn pipeConn
	if ok {
		conn, ok = newRawTCP(tc).(pipeConn)
	}
	if !ok {
		c.Close()
		return &dialError{fmt.Errorf("%s: connection without read and write deadlines", p.target)}
	}
	p.conn = conn
	p.deadline = time.Time{}
	p.readers.Add(1)
	go p.read(conn)
	p.log.Debug("connected", "target", p.target.String(), "max_inflight", p.window)
	return nil
}

// submit hands calls to the pipe: they are written at once, together, as far
// as the window allows, and the rest as answers free slots. A call whose
// connection cannot be opened is done at once with the dial error.
func (p *pipe) submit(ctx context.Context, timeout time.Duration, calls ...*call) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.openLocked(ctx, timeout); err != nil {
		for _, c := range calls {
			c.finish(nil, err)
		}
		return
	}
	p.queue = append(p.queue, calls...)
	p.flushLocked()
}

// wait returns the answer ADU of c. When ctx ends first, c is given up: if
// it was not written yet it never is, and an answer that still comes is
// read and dropped.
func (p *pipe) wait(ctx context.Context, c *call) ([]byte, error) {
	select {
	case <-c.done:
	case <-ctx.Done():
		p.cancel(c)
		return nil, ctx.Err()
	}
	if c.err != nil {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if c.byCaller && errors.Is(c.err, ErrTimeout) {
			// The caller's deadline passed; its context may not say so
			// yet (the read deadline can fire before the context's timer).
			return nil, context.DeadlineExceeded
		}
	}
	return c.ans, c.err
}

// cancel takes calls that were not written yet out of the queue.
func (p *pipe) cancel(calls ...*call) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range calls {
		for i, q := range p.queue {
			if q == c {
				p.queue = append(p.queue[:i], p.queue[i+1:]...)
				break
			}
		}
	}
}

// roundTrip sends one request ADU made by goburrow (a write, a read of a
// link without a read plan) and returns its answer with the request's own
// transaction id, as goburrow checks it. late counts an answer that comes
// after the request timed out.
func (p *pipe) roundTrip(ctx context.Context, req []byte, timeout time.Duration, late *atomic.Uint64) ([]byte, error) {
	if len(req) < 8 {
		return nil, fmt.Errorf("%w: request of %d bytes", ErrFrame, len(req))
	}
	c := newCall(ctx, append([]byte(nil), req...), timeout)
	c.late = late
	p.submit(ctx, timeout, c)
	ans, err := p.wait(ctx, c)
	if err != nil {
		return nil, err
	}
	ans = append([]byte(nil), ans...)
	copy(ans[:2], req[:2])
	return ans, nil
}

// nextTIDLocked is a transaction id that no outstanding or abandoned
// request has. There is always one: at most MaxInflightLimit are
// outstanding and abandonedLimit abandoned.
func (p *pipe) nextTIDLocked() uint16 {
	for {
		p.tid++
		if _, ok := p.abandoned[p.tid]; ok {
			continue
		}
		free := true
		for _, c := range p.inflight {
			if binary.BigEndian.Uint16(c.adu) == p.tid {
				free = false
				break
			}
		}
		if free {
			return p.tid
		}
	}
}

// flushLocked writes as many queued calls as the window allows, in one
// write.
func (p *pipe) flushLocked() {
	conn := p.conn
	n := min(len(p.queue), p.window-len(p.inflight))
	if conn == nil || n <= 0 {
		return
	}
	now := time.Now()
	buf := p.wbuf[:0]
	var due time.Time
	for _, c := range p.queue[:n] {
		binary.BigEndian.PutUint16(c.adu, p.nextTIDLocked())
		c.deadline = now.Add(c.timeout)
		c.byCaller = !c.limit.IsZero() && c.limit.Before(c.deadline)
		if c.byCaller {
			c.deadline = c.limit
		}
		c.seen = p.answers
		if due.IsZero() || c.deadline.Before(due) {
			due = c.deadline
		}
		buf = append(buf, c.adu...)
		p.inflight = append(p.inflight, c)
	}
	p.queue = append(p.queue[:0], p.queue[n:]...)
	p.wbuf = buf
	if p.deadline.IsZero() || due.Before(p.deadline) {
		conn.SetReadDeadline(due)
		p.deadline = due
	}
	conn.SetWriteDeadline(due)
	if _, err := conn.Write(buf); err != nil {
		p.dropLocked(conn, nil, p.streamErr("write", err))
	}
}

// read is the reader of one connection: it reads answers until the
// connection is closed, hands each to its call, and writes queued calls as
// slots free up.
func (p *pipe) read(conn pipeConn) {
	defer p.readers.Done()
	buf := make([]byte, 0, pipeReadBuffer)
	for {
		n, err := conn.Read(buf[len(buf):cap(buf)])
		if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			// Go fails a read whose deadline has passed without looking
			// at the socket: look once more, as lastLook does without
			// pipelining, so that an answer that arrived in time but is
			// read late (the agent not scheduled on a loaded box) is
			// taken rather than timed out. A deadline this leaves on conn
			// that the pipe did not set only wakes the reader early.
			conn.SetReadDeadline(time.Now().Add(lookGrace))
			n, err = conn.Read(buf[len(buf):cap(buf)])
		}
		buf = buf[:len(buf)+n]
		p.mu.Lock()
		if p.conn != conn {
			p.mu.Unlock()
			return
		}
		if n > 0 {
			used := p.dispatchLocked(conn, buf)
			buf = buf[:copy(buf, buf[used:])]
			p.flushLocked()
		}
		if err != nil && p.conn == conn {
			p.failLocked(conn, err)
		}
		p.mu.Unlock()
	}
}

// failLocked handles a read error of conn: a deadline that passed with
// answers due, or a broken connection.
//
// The requests whose answers are due (late) fail with ErrTimeout. When the
// server answered nothing since one of them was written, for its whole
// timeout, it is dead or the path to it is broken: conn is closed and the
// other requests fail with it. Otherwise the server is alive and only the
// late requests went unanswered (a unit that is off, behind a gateway that
// answers for the others): they are abandoned and conn stays. A request
// whose deadline was its caller's context, before its timeout, is given up
// on by the caller and says nothing about the server.
func (p *pipe) failLocked(conn pipeConn, err error) {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		p.dropLocked(conn, nil, p.streamErr("read", err))
		return
	}
	now := time.Now()
	isLate := func(c *call) bool { return !c.deadline.After(now) }
	late, silent := false, false
	for _, c := range p.inflight {
		if isLate(c) {
			late = true
			silent = silent || (!c.byCaller && c.seen == p.answers)
		}
	}
	switch {
	case silent:
		p.dropLocked(conn, isLate, ErrTimeout)
	case late:
		p.abandonLocked(conn, isLate)
	default:
		// The deadline was for a request answered meanwhile: wait for
		// the next one due (or for nothing, when none is outstanding).
		p.rearmLocked(conn)
	}
}

// abandonLocked fails the outstanding requests that are late with
// ErrTimeout and keeps their transaction ids until their answers come or
// conn is replaced, which it is once more than maxAbandoned wait. The slots
// they held are free for the requests waiting.
func (p *pipe) abandonLocked(conn pipeConn, late func(*call) bool) {
	kept := p.inflight[:0]
	for _, c := range p.inflight {
		if !late(c) {
			kept = append(kept, c)
			continue
		}
		if p.abandoned == nil {
			p.abandoned = make(map[uint16]abandonedCall)
		}
		p.abandoned[binary.BigEndian.Uint16(c.adu)] = abandonedCall{unit: c.adu[6], function: c.adu[7], late: c.late}
		c.finish(nil, ErrTimeout)
	}
	clear(p.inflight[len(kept):])
	p.inflight = kept
	if n := len(p.abandoned); n > p.maxAbandoned {
		p.dropLocked(conn, func(*call) bool { return false },
			fmt.Errorf("%s: %d requests that timed out are still unanswered; replacing the connection", p.target, n))
		return
	}
	p.rearmLocked(conn)
	p.flushLocked()
}

// rearmLocked sets the read deadline again after it passed: to the
// earliest answer due, or none.
func (p *pipe) rearmLocked(conn pipeConn) {
	p.deadline = time.Time{}
	p.setReadDeadlineLocked(conn)
	conn.SetReadDeadline(p.deadline)
}

// dispatchLocked hands every whole answer in buf to its call and returns
// how many bytes it used. A late answer to an abandoned request is counted
// and dropped. An answer that is malformed, matches no outstanding or
// abandoned request, or does not fit the abandoned request it answers fails
// every outstanding request with ErrFrame; one that does not fit the
// request whose transaction id it carries (unit, function, length) fails
// that request with ErrFrame and the others as dropped. Either way the
// connection is closed.
func (p *pipe) dispatchLocked(conn pipeConn, buf []byte) int {
	used := 0
	for len(buf)-used >= 7 {
		b := buf[used:]
		n := int(binary.BigEndian.Uint16(b[4:]))
		if binary.BigEndian.Uint16(b[2:]) != 0 || n < 2 || n > 254 {
			p.dropLocked(conn, nil, fmt.Errorf("%w: MBAP header % x", ErrFrame, b[:7]))
			return len(buf)
		}
		if len(b) < 6+n {
			break
		}
		ans := b[:6+n]
		used += 6 + n
		tid := binary.BigEndian.Uint16(ans)
		i := 0
		for i < len(p.inflight) && binary.BigEndian.Uint16(p.inflight[i].adu) != tid {
			i++
		}
		if i == len(p.inflight) {
			if err := p.lateLocked(tid, ans); err != nil {
				p.dropLocked(conn, nil, err)
				return len(buf)
			}
			continue
		}
		c := p.inflight[i]
		p.inflight = append(p.inflight[:i], p.inflight[i+1:]...)
		if err := checkMBAP(ans, c.adu); err != nil {
			c.finish(nil, err)
			p.dropLocked(conn, func(*call) bool { return false }, err)
			return len(buf)
		}
		p.answers++
		c.finish(ans, nil)
	}
	p.setReadDeadlineLocked(conn)
	return used
}

// lateLocked takes ans, whose transaction id tid no outstanding request
// has: the late answer to an abandoned request is counted and forgotten,
// anything else is ErrFrame.
func (p *pipe) lateLocked(tid uint16, ans []byte) error {
	a, ok := p.abandoned[tid]
	if !ok {
		return fmt.Errorf("%w: transaction id %d matches no outstanding request nor one that timed out", ErrFrame, tid)
	}
	delete(p.abandoned, tid)
	if ans[6] != a.unit || ans[7]&0x7f != a.function {
		return fmt.Errorf("%w: transaction id %d: unit %d function %d answered, the request that timed out was unit %d function %d", ErrFrame, tid, ans[6], ans[7], a.unit, a.function)
	}
	p.answers++
	if a.late != nil {
		a.late.Add(1)
	}
	return nil
}

// setReadDeadlineLocked sets the read deadline to the earliest answer due,
// or none when nothing is outstanding.
func (p *pipe) setReadDeadlineLocked(conn pipeConn) {
	var due time.Time
	for _, c := range p.inflight {
		if due.IsZero() || c.deadline.Before(due) {
			due = c.deadline
		}
	}
	if !due.Equal(p.deadline) {
		conn.SetReadDeadline(due)
		p.deadline = due
	}
}

// dropLocked closes conn and fails every request outstanding on it: those
// blamed (all when blamed is nil) with cause, the others with an error
// saying their connection was dropped, which wraps
// protocols.ErrNotConnected so that they are retried on a new connection.
func (p *pipe) dropLocked(conn pipeConn, blamed func(*call) bool, cause error) {
	if p.conn != conn {
		return
	}
	conn.Close()
	p.conn = nil
	p.deadline = time.Time{}
	p.abandoned = nil
	other := fmt.Errorf("%s: connection dropped (%v) with this request outstanding: %w", p.target, cause, protocols.ErrNotConnected)
	for _, c := range p.inflight {
		if blamed == nil || blamed(c) {
			c.finish(nil, cause)
		} else {
			c.finish(nil, other)
		}
	}
	for _, c := range p.queue {
		c.finish(nil, other)
	}
	clear(p.inflight)
	clear(p.queue)
	p.inflight, p.queue = p.inflight[:0], p.queue[:0]
	p.log.Debug("connection dropped", "target", p.target.String(), "err", cause)
}

// close closes the connection for good and waits for its reader.
func (p *pipe) close() error {
	p.mu.Lock()
	if conn := p.conn; conn != nil {
		p.dropLocked(conn, nil, fmt.Errorf("%s: connection closed: %w", p.target, protocols.ErrNotConnected))
	}
	p.mu.Unlock()
	p.readers.Wait()
	return nil
}

// streamErr classifies a stream error as link.streamErr does; each waiting
// caller checks its own context.
func (p *pipe) streamErr(op string, err error) error {
	return streamErr(context.Background(), p.target, op, err)
}

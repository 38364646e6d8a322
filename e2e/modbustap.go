package e2e

import (
	"encoding/binary"
	"errors"
	"sort"
	"sync"
	"syscall"
	"time"
)

// Served records every counter value the simulator served, as seen on the
// wire between the agent and weft-sim (a Proxy with a Modbus TCP tap). It
// is the harness's "expected": independent of anything the agent, the
// broker, the gateway or InfluxDB report.
type Served struct {
	mu sync.Mutex
	// polls per unit: each answer to a read of holding or input registers
	// starting at address 0, in the order served.
	polls map[byte][]Poll
	// desync counts connections whose byte stream stopped parsing as
	// Modbus TCP (the tap stops reading those).
	desync int
	// unmatched counts answers with no request of that transaction id.
	unmatched int
	// requests counts every request per unit, any function.
	requests map[byte]int
	// LateAfter marks answers this long or longer after their request
	// as Late (0: none). Set it before traffic flows.
	LateAfter time.Duration
}

// Poll is one answer carrying a device's counter (registers 0..3).
type Poll struct {
	Counter uint64
	At      time.Time // when the tap forwarded the answer to the agent
	// Late: the answer came LateAfter or more after its request, so the
	// agent may have given up on it (its request timeout) and it is not
	// expected in the store; if it is stored anyway, that is no fault.
	Late bool
	// Unread: the agent reset the connection without reading the answer
	// (it had given up on it: its own timeout), so it is Late too.
	Unread bool
}

// NewServed returns an empty record.
func NewServed() *Served { return &Served{polls: map[byte][]Poll{}, requests: map[byte]int{}} }

// Requests returns how many requests each unit was sent.
func (s *Served) Requests() map[byte]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[byte]int, len(s.requests))
	for u, n := range s.requests {
		out[u] = n
	}
	return out
}

// Tap returns an Observer factory for NewProxy.
func (s *Served) Tap() func() Observer {
	return func() Observer { return &mbapTap{served: s, reqs: map[uint16]mbapReq{}} }
}

// Polls returns a copy of the answers served to unit u.
func (s *Served) Polls(u byte) []Poll {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Poll(nil), s.polls[u]...)
}

// Count returns how many counter answers each unit was served.
func (s *Served) Count() map[byte]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[byte]int, len(s.polls))
	for u, p := range s.polls {
		out[u] = len(p)
	}
	return out
}

// Units lists the units served, in order.
func (s *Served) Units() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	us := make([]byte, 0, len(s.polls))
	for u := range s.polls {
		us = append(us, u)
	}
	sort.Slice(us, func(i, j int) bool { return us[i] < us[j] })
	return us
}

// Anomalies are the tap's parse problems: desynchronised connections and
// answers without a matching request.
func (s *Served) Anomalies() (desync, unmatched int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.desync, s.unmatched
}

// add records p and returns its index among unit's polls.
func (s *Served) add(unit byte, p Poll) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.polls[unit] = append(s.polls[unit], p)
	return len(s.polls[unit]) - 1
}

type mbapReq struct {
	unit, fc byte
	addr     uint16
	at       time.Time
}

// mbapTap parses Modbus TCP (MBAP) frames in both directions of one
// connection: requests to learn each transaction's start address, answers
// to read the counter of those that start at 0.
type mbapTap struct {
	served   *Served
	mu       sync.Mutex
	reqs     map[uint16]mbapReq
	up, down []byte
	broken   bool
	// sinceReq are the counter answers forwarded since the agent's last
	// request on this connection (unit, index in Served.polls): without
	// pipelining at most one, and the one a reset leaves unread.
	sinceReq []pollRef
}

type pollRef struct {
	unit byte
	i    int
}

// End marks the counter answers forwarded since the agent's last request
// Unread when the agent's side of the connection was reset: the agent
// closed it with them unread, or they arrived after it closed (it had timed
// out). A clean close (EOF) means it read everything.
func (t *mbapTap) End(up bool, err error) {
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		return
	}
	t.mu.Lock()
	refs := t.sinceReq
	t.sinceReq = nil
	t.mu.Unlock()
	t.served.mu.Lock()
	defer t.served.mu.Unlock()
	for _, r := range refs {
		p := &t.served.polls[r.unit][r.i]
		p.Late, p.Unread = true, true
	}
}

// maxADU is the largest Modbus TCP frame: 7 bytes of MBAP header and a
// 253-byte PDU.
const maxADU = 260

func (t *mbapTap) Upstream(b []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	t.up = t.frames(append(t.up, b...), func(tid uint16, unit byte, pdu []byte) {
		t.served.mu.Lock()
		t.served.requests[unit]++
		t.served.mu.Unlock()
		t.sinceReq = t.sinceReq[:0]
		if len(pdu) >= 5 && (pdu[0] == 3 || pdu[0] == 4) {
			t.reqs[tid] = mbapReq{unit: unit, fc: pdu[0], addr: binary.BigEndian.Uint16(pdu[1:3]), at: now}
		}
	})
}

func (t *mbapTap) Downstream(b []byte) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.down = t.frames(append(t.down, b...), func(tid uint16, unit byte, pdu []byte) {
		if len(pdu) < 2 || (pdu[0] != 3 && pdu[0] != 4) {
			return // another function, or an exception (fc | 0x80)
		}
		req, ok := t.reqs[tid]
		if !ok || req.unit != unit || req.fc != pdu[0] {
			t.served.mu.Lock()
			t.served.unmatched++
			t.served.mu.Unlock()
			return
		}
		delete(t.reqs, tid)
		n := int(pdu[1])
		if req.addr != 0 || n < 8 || len(pdu) < 2+n {
			return
		}
		late := t.served.LateAfter > 0 && now.Sub(req.at) >= t.served.LateAfter
		i := t.served.add(unit, Poll{Counter: binary.BigEndian.Uint64(pdu[2:10]), At: now, Late: late})
		t.sinceReq = append(t.sinceReq, pollRef{unit, i})
	})
}

// frames calls f for every whole frame at the start of buf and returns the
// rest. A frame that cannot be Modbus TCP (protocol id not 0, length out of
// range) marks the stream broken: nothing more is parsed on it.
func (t *mbapTap) frames(buf []byte, f func(tid uint16, unit byte, pdu []byte)) []byte {
	for !t.broken && len(buf) >= 7 {
		tid := binary.BigEndian.Uint16(buf[0:2])
		pid := binary.BigEndian.Uint16(buf[2:4])
		n := int(binary.BigEndian.Uint16(buf[4:6]))
		if pid != 0 || n < 2 || 6+n > maxADU {
			t.broken = true
			t.served.mu.Lock()
			t.served.desync++
			t.served.mu.Unlock()
			return nil
		}
		if len(buf) < 6+n {
			break
		}
		f(tid, buf[6], buf[7:6+n])
		buf = buf[6+n:]
	}
	if t.broken {
		return nil
	}
	// Keep the unparsed tail in a fresh slice so buf's array is not held.
	return append([]byte(nil), buf...)
}

// EdgeTap wraps the tap of a link that carries one device. It holds every
// other answer until just before that device's next poll is due — the
// request's arrival plus the poll interval, less a margin that steps
// through 0.2–1.0 ms — as a device or a busy shared line that now and then
// answers late would. The agent then reads that answer and starts its next
// poll within a millisecond or so: two polls, one answered just before and
// one just after the slot begins, which must still carry timestamps of
// their own (issue 10's lost poll).
type EdgeTap struct {
	Interval time.Duration

	mu    sync.Mutex
	reqAt time.Time
	n     int // answers seen
	held  int
}

// Held is how many answers were held back.
func (e *EdgeTap) Held() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.held
}

func (e *EdgeTap) wrap(o Observer) Observer { return &edgeObserver{Observer: o, e: e} }

type edgeObserver struct {
	Observer
	e *EdgeTap
}

func (o *edgeObserver) Hold(up bool, b []byte) time.Time {
	e := o.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if up {
		e.reqAt = time.Now()
		return time.Time{}
	}
	e.n++
	if e.n%2 == 1 || e.reqAt.IsZero() {
		return time.Time{}
	}
	e.held++
	margin := 200*time.Microsecond + time.Duration(e.held%9)*100*time.Microsecond
	return e.reqAt.Add(e.Interval - margin)
}

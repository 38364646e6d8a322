package modbus

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftiot/weft/protocols"
	"github.com/weftiot/weft/wire"
)

// fakeServer is a FAKE Modbus TCP server, for the two faults no real peer
// can be made to show: answers in another order than the requests, and an
// answer whose transaction id matches no request. (simonvetter's server,
// in weft-sim, answers pipelined requests in order and echoes their ids.)
// Each connection is handed to serve, which reads requests with
// readRequests and answers them with answer.
type fakeServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns int
	reads [][]int // per connection, the number of requests each read returned
}

func startFake(t *testing.T, serve func(conn int, c net.Conn, f *fakeServer)) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{ln: ln}
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			n := f.conns
			f.conns++
			f.reads = append(f.reads, nil)
			f.mu.Unlock()
			f.wg.Go(func() {
				defer c.Close()
				serve(n, c, f)
			})
		}
	})
	t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	return f
}

func (f *fakeServer) addr() string { return f.ln.Addr().String() }

// readRequests reads at least n whole 12-byte read requests, in as many
// reads as it takes, and notes how many each read brought.
func (f *fakeServer) readRequests(conn int, c net.Conn, n int) ([][]byte, error) {
	var buf []byte
	tmp := make([]byte, 4096)
	for len(buf) < 12*n {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		m, err := c.Read(tmp)
		if err != nil {
			return nil, err
		}
		buf = append(buf, tmp[:m]...)
		f.mu.Lock()
		f.reads[conn] = append(f.reads[conn], m/12)
		f.mu.Unlock()
	}
	var reqs [][]byte
	for len(buf) >= 12 {
		reqs = append(reqs, buf[:12])
		buf = buf[12:]
	}
	return reqs, nil
}

// answer is the answer to a read of holding registers in which register
// a holds a+1000.
func answer(req []byte) []byte {
	start, count := int(binary.BigEndian.Uint16(req[8:])), int(binary.BigEndian.Uint16(req[10:]))
	a := []byte{req[0], req[1], 0, 0, 0, byte(3 + 2*count), req[6], req[7], byte(2 * count)}
	for r := start; r < start+count; r++ {
		a = binary.BigEndian.AppendUint16(a, uint16(r+1000))
	}
	return a
}

func pipedDriver(t *testing.T, addr string, window int, addrs ...int) *Driver {
	t.Helper()
	pool := NewPool(nil)
	t.Cleanup(func() { pool.Close() })
	var pts []Point
	for _, a := range addrs {
		pts = append(pts, Point{Name: "r" + itoa(a), PointConfig: PointConfig{Table: "holding", Address: &a, Type: "uint16"}})
	}
	gap := 0
	d, err := pool.Driver("plc", DeviceConfig{Target: "tcp://" + addr, Timeout: 500 * time.Millisecond, MaxGap: &gap, MaxInflight: &window}, pts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func itoa(i int) string { return strconv.Itoa(i) }

func (f *fakeServer) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns
}

func pollAll(t *testing.T, d *Driver) (map[string]wire.Sample, error) {
	t.Helper()
	got := map[string]wire.Sample{}
	err := d.Poll(context.Background(), func(s wire.Sample) { got[s.Point] = s })
	return got, err
}

func checkValues(t *testing.T, got map[string]wire.Sample, addrs ...int) {
	t.Helper()
	for _, a := range addrs {
		s := got["r"+itoa(a)]
		if s.Quality != wire.Good || s.Value.Uint() != uint64(a+1000) {
			t.Errorf("register %d: %v %v, want good %d", a, s.Quality, s.Value, a+1000)
		}
	}
}

// A plan's requests go out in one write, and answers coming back in reverse
// order, all in one segment, still reach their requests.
func TestPipeAnswersOutOfOrder(t *testing.T) {
	addrs := []int{0, 10, 20, 30, 40}
	f := startFake(t, func(conn int, c net.Conn, f *fakeServer) {
		for {
			reqs, err := f.readRequests(conn, c, len(addrs))
			if err != nil {
				return
			}
			var out []byte
			for i := len(reqs) - 1; i >= 0; i-- {
				out = append(out, answer(reqs[i])...)
			}
			c.Write(out)
		}
	})
	d := pipedDriver(t, f.addr(), 8, addrs...)
	for range 3 {
		got, err := pollAll(t, d)
		if err != nil {
			t.Fatal(err)
		}
		checkValues(t, got, addrs...)
	}
	if st := d.Stats(); st.Requests != 15 || st.Errors != 0 {
		t.Errorf("stats %+v, want 15 requests and no errors", st)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns != 1 || len(f.reads[0]) != 3 || f.reads[0][0] != 5 {
		t.Errorf("server saw %d connections, reads of %v requests; want 1 connection and 3 reads of 5", f.conns, f.reads)
	}
}

// The window caps what is outstanding: with 2 allowed, the server never
// holds more than 2 unanswered requests, and the rest follow as answers
// free the slots.
func TestPipeWindowCapsOutstanding(t *testing.T) {
	addrs := []int{0, 10, 20, 30, 40}
	var most int
	var mu sync.Mutex
	f := startFake(t, func(conn int, c net.Conn, f *fakeServer) {
		for {
			reqs, err := f.readRequests(conn, c, 1)
			if err != nil {
				return
			}
			mu.Lock()
			most = max(most, len(reqs))
			mu.Unlock()
			// Wait until the client could have sent more, then answer.
			time.Sleep(5 * time.Millisecond)
			for _, r := range reqs {
				c.Write(answer(r))
			}
		}
	})
	d := pipedDriver(t, f.addr(), 2, addrs...)
	got, err := pollAll(t, d)
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, got, addrs...)
	mu.Lock()
	defer mu.Unlock()
	if most != 2 {
		t.Errorf("the server received up to %d requests at once, want 2 (the window)", most)
	}
}

// An answer whose transaction id matches no outstanding request drops the
// connection and fails every outstanding request; their retries run on a
// new connection and succeed.
func TestPipeUnknownTransactionID(t *testing.T) {
	addrs := []int{0, 10, 20}
	f := startFake(t, func(conn int, c net.Conn, f *fakeServer) {
		for {
			reqs, err := f.readRequests(conn, c, 1)
			if err != nil {
				return
			}
			for _, r := range reqs {
				a := answer(r)
				if conn == 0 {
					binary.BigEndian.PutUint16(a, binary.BigEndian.Uint16(a)+100)
				}
				c.Write(a)
			}
		}
	})
	d := pipedDriver(t, f.addr(), 8, addrs...)
	got, err := pollAll(t, d)
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, got, addrs...)
	st := d.Stats()
	if st.Frames == 0 || st.Requests < 4 {
		t.Errorf("stats %+v: want the bad frame counted and the requests retried", st)
	}
	if n := f.connections(); n != 2 {
		t.Errorf("server saw %d connections, want 2 (the first dropped)", n)
	}
}

// An answer from the wrong unit fails its own request as a bad frame and
// the others as dropped with the connection; all are retried.
func TestPipeWrongUnitDropsAll(t *testing.T) {
	addrs := []int{0, 10, 20}
	f := startFake(t, func(conn int, c net.Conn, f *fakeServer) {
		for {
			want := 1
			if conn == 0 {
				want = len(addrs)
			}
			reqs, err := f.readRequests(conn, c, want)
			if err != nil {
				return
			}
			var out []byte
			for i, r := range reqs {
				a := answer(r)
				if conn == 0 && i == 1 {
					a[6]++
				}
				out = append(out, a...)
			}
			c.Write(out)
		}
	})
	d := pipedDriver(t, f.addr(), 8, addrs...)
	got, err := pollAll(t, d)
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, got, addrs...)
	st := d.Stats()
	// The first answer was good; the second was from the wrong unit (a
	// frame error), the third was dropped with the connection (I/O).
	if st.Frames != 1 || st.IO != 1 || st.Requests != 5 {
		t.Errorf("stats %+v: want 1 frame error, 1 dropped, 5 requests", st)
	}
}

// A request given up on (its context ended) that the server answers late
// is read and dropped: it does not break the connection for the others.
func TestPipeCancelledCallAnswerIsDropped(t *testing.T) {
	release := make(chan struct{})
	f := startFake(t, func(conn int, c net.Conn, f *fakeServer) {
		for n := 0; ; n++ {
			reqs, err := f.readRequests(conn, c, 1)
			if err != nil {
				return
			}
			if n == 0 {
				<-release
			}
			for _, r := range reqs {
				c.Write(answer(r))
			}
		}
	})
	d := pipedDriver(t, f.addr(), 8, 5)
	p := d.link.pipelined()
	ctx, cancel := context.WithCancel(context.Background())
	c := newCall(ctx, readADU(1, request{table: holding, start: 5, count: 1}), time.Second)
	p.submit(ctx, time.Second, c)
	cancel()
	if _, err := p.wait(ctx, c); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait: %v, want context.Canceled", err)
	}
	close(release)
	got, err := pollAll(t, d)
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, got, 5)
	if n := f.connections(); n != 1 {
		t.Errorf("server saw %d connections, want 1", n)
	}
}

// startFakeEach is a fakeServer that decides for each request on its own:
// answered after delay (0: at once, in order), or never when skip.
// Answers written after a delay overtake the requests that follow.
func startFakeEach(t *testing.T, decide func(conn int, req []byte) (delay time.Duration, skip bool)) *fakeServer {
	return startFake(t, func(conn int, c net.Conn, f *fakeServer) {
		var wmu sync.Mutex
		write := func(b []byte) {
			wmu.Lock()
			defer wmu.Unlock()
			c.Write(b)
		}
		for {
			reqs, err := f.readRequests(conn, c, 1)
			if err != nil {
				return
			}
			for _, r := range reqs {
				delay, skip := decide(conn, r)
				switch {
				case skip:
				case delay == 0:
					write(answer(r))
				default:
					f.wg.Go(func() {
						time.Sleep(delay)
						write(answer(r))
					})
				}
			}
		}
	})
}

// pipeOf is the pipe of a fresh driver with max_inflight 8 on addr.
func pipeOf(t *testing.T, addr string) *pipe {
	t.Helper()
	d := pipedDriver(t, addr, 8, 0)
	return d.link.pipelined()
}

// send submits one read of holding register a on unit with timeout and
// counts a late answer in late.
func send(p *pipe, unit byte, a int, timeout time.Duration, late *atomic.Uint64) *call {
	c := newCall(context.Background(), readADU(unit, request{table: holding, start: a, count: 1}), timeout)
	c.late = late
	p.submit(context.Background(), timeout, c)
	return c
}

func waitValue(t *testing.T, p *pipe, c *call, a int) {
	t.Helper()
	ans, err := p.wait(context.Background(), c)
	if err != nil {
		t.Errorf("register %d: %v", a, err)
		return
	}
	if data, err := readData(ans); err != nil || binary.BigEndian.Uint16(data) != uint16(a+1000) {
		t.Errorf("register %d: % x, %v", a, ans, err)
	}
}

func (p *pipe) abandonedIDs() []uint16 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []uint16
	for id := range p.abandoned {
		ids = append(ids, id)
	}
	return ids
}

// A server that stops answering altogether: the request that times out
// with nothing answered since it was written fails with ErrTimeout, the
// others outstanding fail with it as dropped, without each waiting for its
// own timeout, and the next request dials a new connection.
func TestPipeSilentServerFailsAllOutstanding(t *testing.T) {
	f := startFake(t, func(conn int, c net.Conn, f *fakeServer) {
		io.Copy(io.Discard, c)
	})
	p := pipeOf(t, f.addr())
	first := send(p, 1, 0, 100*time.Millisecond, nil)
	time.Sleep(50 * time.Millisecond)
	second := send(p, 1, 1, 100*time.Millisecond, nil)
	ctx := context.Background()
	t0 := time.Now()
	if _, err := p.wait(ctx, first); !errors.Is(err, ErrTimeout) {
		t.Errorf("first: %v, want ErrTimeout", err)
	}
	_, err := p.wait(ctx, second)
	if !errors.Is(err, protocols.ErrNotConnected) || errors.Is(err, ErrTimeout) {
		t.Errorf("second: %v, want dropped (ErrNotConnected)", err)
	}
	if waited := time.Since(t0); waited > 90*time.Millisecond {
		t.Logf("second failed %v after the first (machine busy?)", waited)
	}
	third := send(p, 1, 2, 50*time.Millisecond, nil)
	if _, err := p.wait(ctx, third); !errors.Is(err, ErrTimeout) {
		t.Errorf("third: %v, want ErrTimeout", err)
	}
	if n := f.connections(); n != 2 {
		t.Errorf("server saw %d connections, want 2 (the silent one dropped, then redialled)", n)
	}
}

// A server that answered, falls silent, then answers again: the polls in
// its silence fail as unreachable, each attempt on a new connection, and
// the first poll after it reads everything.
func TestPipeServerFallsSilentAndReturns(t *testing.T) {
	var silent atomic.Bool
	f := startFakeEach(t, func(int, []byte) (time.Duration, bool) { return 0, silent.Load() })
	pool := NewPool(nil)
	t.Cleanup(func() { pool.Close() })
	d, err := pool.Driver("plc", DeviceConfig{Target: "tcp://" + f.addr(), Timeout: 100 * time.Millisecond, Retries: new(int), MaxGap: new(int), MaxInflight: new(8)},
		[]Point{{Name: "r0", PointConfig: PointConfig{Table: "holding", Address: new(0), Type: "uint16"}},
			{Name: "r10", PointConfig: PointConfig{Table: "holding", Address: new(10), Type: "uint16"}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := pollAll(t, d)
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, got, 0, 10)
	silent.Store(true)
	for range 2 {
		if _, err := pollAll(t, d); !errors.Is(err, ErrTimeout) || !errors.Is(err, protocols.ErrNotConnected) {
			t.Errorf("poll of a silent server: %v, want a timeout wrapping ErrNotConnected", err)
		}
	}
	silent.Store(false)
	got, err = pollAll(t, d)
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, got, 0, 10)
	if n := f.connections(); n != 3 {
		t.Errorf("server saw %d connections, want 3 (one per silent poll dropped)", n)
	}
	if st := d.Stats(); st.Timeouts != 2 || st.LateAnswers != 0 {
		t.Errorf("stats %+v: want 2 timeouts, no late answers", st)
	}
}

// One unit behind the server never answers, the others do: its request
// alone fails with ErrTimeout, the connection stays, the others' requests
// written before and after it are answered, and its transaction id is not
// given out again.
func TestPipeSilentUnitFailsAlone(t *testing.T) {
	f := startFakeEach(t, func(_ int, req []byte) (time.Duration, bool) { return 0, req[6] == 2 })
	p := pipeOf(t, f.addr())
	before := send(p, 1, 1, 100*time.Millisecond, nil)
	lost := send(p, 2, 2, 100*time.Millisecond, nil)
	tid := binary.BigEndian.Uint16(lost.adu)
	after := send(p, 1, 3, 100*time.Millisecond, nil)
	waitValue(t, p, before, 1)
	waitValue(t, p, after, 3)
	if _, err := p.wait(context.Background(), lost); !errors.Is(err, ErrTimeout) || errors.Is(err, protocols.ErrNotConnected) {
		t.Errorf("silent unit: %v, want ErrTimeout alone", err)
	}
	if ids := p.abandonedIDs(); len(ids) != 1 || ids[0] != tid {
		t.Errorf("abandoned ids %v, want [%d]", ids, tid)
	}
	// The transaction ids come round again: the abandoned one is skipped.
	p.mu.Lock()
	p.tid = tid - 1
	p.mu.Unlock()
	next := send(p, 1, 4, 100*time.Millisecond, nil)
	if got := binary.BigEndian.Uint16(next.adu); got == tid {
		t.Errorf("transaction id %d given out again while its request waits for a late answer", got)
	}
	waitValue(t, p, next, 4)
	if n := f.connections(); n != 1 {
		t.Errorf("server saw %d connections, want 1", n)
	}
}

// An answer that comes after its request timed out, while the server
// answered others meanwhile, is read, counted and dropped: the connection
// stays and the requests after it are answered. A late answer that does
// not fit the request given up on (another unit) is a bad frame and drops
// the connection.
func TestPipeLateAnswerIsDropped(t *testing.T) {
	var wrongUnit atomic.Bool
	f := startFake(t, func(conn int, c net.Conn, f *fakeServer) {
		var wmu sync.Mutex
		for {
			reqs, err := f.readRequests(conn, c, 1)
			if err != nil {
				return
			}
			for _, r := range reqs {
				a := answer(r)
				if r[6] != 2 {
					wmu.Lock()
					c.Write(a)
					wmu.Unlock()
					continue
				}
				if wrongUnit.Load() {
					a[6] = 3
				}
				f.wg.Go(func() {
					time.Sleep(150 * time.Millisecond)
					wmu.Lock()
					defer wmu.Unlock()
					c.Write(a)
				})
			}
		}
	})
	p := pipeOf(t, f.addr())
	var late atomic.Uint64
	slow := send(p, 2, 2, 100*time.Millisecond, &late)
	quick := send(p, 1, 1, 100*time.Millisecond, &late)
	waitValue(t, p, quick, 1)
	if _, err := p.wait(context.Background(), slow); !errors.Is(err, ErrTimeout) || errors.Is(err, protocols.ErrNotConnected) {
		t.Errorf("slow unit: %v, want ErrTimeout alone", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for late.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := late.Load(); n != 1 {
		t.Fatalf("%d late answers counted, want 1", n)
	}
	if ids := p.abandonedIDs(); len(ids) != 0 {
		t.Errorf("abandoned ids %v after the late answer, want none", ids)
	}
	c := send(p, 1, 5, 100*time.Millisecond, &late)
	waitValue(t, p, c, 5)
	if n := f.connections(); n != 1 {
		t.Errorf("server saw %d connections, want 1 (the late answer dropped, not the connection)", n)
	}

	wrongUnit.Store(true)
	slow = send(p, 2, 2, 100*time.Millisecond, &late)
	quick = send(p, 1, 1, 100*time.Millisecond, &late)
	waitValue(t, p, quick, 1)
	p.wait(context.Background(), slow)
	deadline = time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		dropped := p.conn == nil
		p.mu.Unlock()
		if dropped {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	c = send(p, 1, 6, 100*time.Millisecond, &late)
	waitValue(t, p, c, 6)
	if n, l := f.connections(), late.Load(); n != 2 || l != 1 {
		t.Errorf("server saw %d connections, %d late answers counted; want 2 (the late answer from the wrong unit drops the first) and 1", n, l)
	}
}

// The abandoned ids are bounded: past maxAbandoned the connection is
// replaced, which forgets them, and the requests that were answered in the
// meantime are not affected.
func TestPipeAbandonedAreBounded(t *testing.T) {
	f := startFakeEach(t, func(_ int, req []byte) (time.Duration, bool) { return 0, req[6] == 2 })
	p := pipeOf(t, f.addr())
	p.mu.Lock()
	p.maxAbandoned = 3
	p.mu.Unlock()
	for round := range 4 {
		lost := send(p, 2, 2, 50*time.Millisecond, nil)
		ok := send(p, 1, round, 50*time.Millisecond, nil)
		waitValue(t, p, ok, round)
		if _, err := p.wait(context.Background(), lost); !errors.Is(err, ErrTimeout) {
			t.Errorf("round %d: silent unit: %v, want ErrTimeout", round, err)
		}
		want, conns := round+1, 1
		if round == 3 {
			want = 0 // the fourth is one too many: the connection goes
		}
		if ids := p.abandonedIDs(); len(ids) != want {
			t.Errorf("round %d: %d abandoned ids, want %d", round, len(ids), want)
		}
		if n := f.connections(); n != conns {
			t.Errorf("round %d: server saw %d connections, want %d", round, n, conns)
		}
	}
	c := send(p, 1, 9, 50*time.Millisecond, nil)
	waitValue(t, p, c, 9)
	if n := f.connections(); n != 2 {
		t.Errorf("server saw %d connections, want 2 (replaced once)", n)
	}
}

// A request whose caller's context ends before its timeout says nothing
// about the server: it is abandoned without the connection, even with
// nothing answered yet, and its answer, when it comes, is counted as late.
func TestPipeCallerDeadlineKeepsConnection(t *testing.T) {
	f := startFakeEach(t, func(int, []byte) (time.Duration, bool) { return 60 * time.Millisecond, false })
	p := pipeOf(t, f.addr())
	var late atomic.Uint64
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	c := newCall(ctx, readADU(1, request{table: holding, start: 7, count: 1}), time.Second)
	c.late = &late
	p.submit(ctx, time.Second, c)
	if _, err := p.wait(ctx, c); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wait: %v, want context.DeadlineExceeded", err)
	}
	next := send(p, 1, 8, time.Second, &late)
	waitValue(t, p, next, 8)
	if n, l := f.connections(), late.Load(); n != 1 || l != 1 {
		t.Errorf("server saw %d connections, %d late answers counted; want 1 and 1", n, l)
	}
}

// An answer already in the socket when the reader comes after the
// request's deadline (the agent was not scheduled in time) is taken, not
// counted a timeout, as lastLook does without pipelining.
func TestPipeLastLookTakesAnAnswerReadLate(t *testing.T) {
	client, server := tcpPair(t)
	p := newPipe(Target{Scheme: "tcp", Address: server.LocalAddr().String()}, 8, slog.New(slog.DiscardHandler))
	conn := client.(pipeConn)
	c := newCall(context.Background(), readADU(1, request{table: holding, start: 7, count: 1}), time.Second)
	c.adu[1] = 1
	c.deadline = time.Now().Add(-time.Second)
	p.conn = conn
	p.inflight = append(p.inflight, c)
	p.deadline = c.deadline
	if _, err := server.Write(answer(c.adu)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the answer is in the client's socket
	conn.SetReadDeadline(c.deadline)
	p.readers.Add(1)
	go p.read(conn)
	defer p.close()
	waitValue(t, p, c, 7)
}

// A context deadline before the request timeout ends the wait at the
// context's deadline, with the context's error.
func TestPipeContextDeadline(t *testing.T) {
	f := startFake(t, func(conn int, c net.Conn, f *fakeServer) {
		io.Copy(io.Discard, c)
	})
	d := pipedDriver(t, f.addr(), 8, 0, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	err := d.Poll(ctx, func(wire.Sample) {})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("poll: %v, want context.DeadlineExceeded", err)
	}
	if el := time.Since(t0); el > 400*time.Millisecond {
		t.Errorf("poll returned after %v; the context allowed 50ms (timeout 500ms)", el)
	}
}

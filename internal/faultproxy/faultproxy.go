// Package faultproxy is a TCP proxy on 127.0.0.1 that tests put between two
// real processes to give their link the faults no real peer can be made to
// show: a reset, a slow link, a blackhole that swallows every packet, a
// frozen link whose sender's buffers fill. It is a test double for the
// network, never for a peer: both ends stay real (Mosquitto, influxd, the
// simulator, the agent).
//
// A Proxy starts in Pass mode. Mode changes apply to the connections open
// at that moment and to the ones accepted afterwards:
//
//   - Pass forwards both ways.
//   - Cut resets (TCP RST) every open connection and each new one.
//   - Slow holds every chunk for a delay before forwarding it.
//   - Blackhole reads and discards both ways, closing nothing.
//   - Freeze stops reading both ways, closing nothing, so that whatever
//     a peer writes piles up in TCP buffers until its writes block.
//
// A connection blackholed or frozen once stays dead after Pass, as it would
// on a real network whose peers have given up on it; connections accepted
// after Pass are forwarded. Drop resets the open connections and leaves the
// mode alone: a link that dies once, and whose peers then reconnect.
package faultproxy

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// Mode is what a Proxy does to the traffic it carries.
type Mode int

const (
	// Pass forwards both ways.
	Pass Mode = iota
	// Cut resets (TCP RST) every open connection and resets each new one
	// as soon as it is accepted, as a link that drops and refuses would.
	Cut
	// Slow forwards, but holds every chunk read for the configured delay
	// before writing it on.
	Slow
	// Blackhole keeps accepting and reading but forwards nothing and
	// never closes or resets: the peers only learn of it from their own
	// timeouts (MQTT keepalive, TCP). Their writes never block, since the
	// proxy keeps reading.
	Blackhole
	// Freeze keeps accepting but stops reading, forwards nothing and never
	// closes or resets: a peer with data to send fills the TCP buffers
	// and its writes block, as they do when every packet of a real link
	// vanishes.
	Freeze
)

func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Cut:
		return "cut"
	case Slow:
		return "slow"
	case Blackhole:
		return "blackhole"
	case Freeze:
		return "freeze"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Observer sees the bytes of one proxied connection in order, as they are
// forwarded. Upstream is client → target, Downstream target → client.
// Calls for one connection come from at most two goroutines (one per
// direction); an Observer must not keep b.
type Observer interface {
	Upstream(b []byte)
	Downstream(b []byte)
}

// Ender is an Observer told how each direction of its connection ended:
// err is the read or write error that ended it (io.EOF for a peer that
// closed cleanly). A peer that closes its socket with data unread, or gets
// data after it closed, resets the connection (ECONNRESET, EPIPE): what was
// forwarded to it last never reached it.
type Ender interface {
	End(up bool, err error)
}

// Holder is an Observer that may hold a chunk back: the proxy forwards
// the chunk no earlier than the time Hold returns (zero: at once). It is
// asked before the chunk is observed and written.
type Holder interface {
	Hold(up bool, b []byte) time.Time
}

// Proxy is a TCP proxy on 127.0.0.1 to one target whose link can be cut,
// slowed, blackholed and frozen.
type Proxy struct {
	ln     net.Listener
	target string
	// observe, when set, makes an Observer for each new connection.
	observe func() Observer

	mu    sync.Mutex
	mode  Mode
	delay time.Duration
	links map[*link]struct{}
	// accepted counts connections accepted in each mode.
	accepted map[Mode]int
	closed   bool
	wg       sync.WaitGroup
}

// link is one client connection and, unless blackholed or frozen from the
// start, its connection to the target.
type link struct {
	client, server net.Conn
	dead           bool // blackholed or frozen once: never forwards again
	frozen         bool // frozen once: never reads again
	pipes          int  // copying goroutines still running
	gone           chan struct{}
	once           sync.Once
}

// New listens on a free 127.0.0.1 port and forwards to target (host:port)
// in Pass mode. observe may be nil.
func New(target string, observe func() Observer) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy to %s: %w", target, err)
	}
	p := &Proxy{ln: ln, target: target, observe: observe, links: map[*link]struct{}{}, accepted: map[Mode]int{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Start is New for a test: it fails tb if the proxy cannot listen and
// closes the proxy when the test ends.
func Start(tb testing.TB, target string) *Proxy {
	tb.Helper()
	p, err := New(target, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

// Listen is a peer that misbehaves as no real server can be made to on
// purpose (closes every connection at once, never answers): it listens on
// a free 127.0.0.1 port, hands each connection to serve, and returns the
// address. When the test ends it stops listening, closes the connections
// and waits for serve, which must return once its connection is closed.
func Listen(tb testing.TB, serve func(net.Conn)) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// Addr is the proxy's listen address, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Mode returns the current mode.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Accepted is how many connections were accepted while in mode m.
func (p *Proxy) Accepted(m Mode) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted[m]
}

// Pass returns to forwarding. Blackholed and frozen connections stay dead.
func (p *Proxy) Pass() { p.set(Pass, 0) }

// Slow delays every chunk by d in both directions.
func (p *Proxy) Slow(d time.Duration) { p.set(Slow, d) }

// Blackhole stops forwarding without closing anything; the proxy keeps
// reading and discarding.
func (p *Proxy) Blackhole() { p.set(Blackhole, 0) }

// Freeze stops reading and forwarding without closing anything. When it
// returns, no more bytes are forwarded on the open connections.
func (p *Proxy) Freeze() { p.set(Freeze, 0) }

// Cut resets every open connection and every new one until Pass.
func (p *Proxy) Cut() { p.set(Cut, 0) }

// Drop resets every open connection and keeps the mode: in Pass, the
// peers' next connections go through.
func (p *Proxy) Drop() {
	p.mu.Lock()
	reset := make([]*link, 0, len(p.links))
	for l := range p.links {
		reset = append(reset, l)
	}
	p.mu.Unlock()
	for _, l := range reset {
		l.reset()
	}
}

func (p *Proxy) set(m Mode, d time.Duration) {
	p.mu.Lock()
	p.mode, p.delay = m, d
	var reset []*link
	for l := range p.links {
		switch m {
		case Blackhole:
			l.dead = true
		case Freeze:
			l.dead, l.frozen = true, true
			// Wake the pipes blocked in Read: they see the link frozen
			// and stop reading.
			l.client.SetReadDeadline(time.Now())
			if l.server != nil {
				l.server.SetReadDeadline(time.Now())
			}
		case Cut:
			reset = append(reset, l)
		}
	}
	p.mu.Unlock()
	for _, l := range reset {
		l.reset()
	}
}

// Close stops listening, closes every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	ls := make([]*link, 0, len(p.links))
	for l := range p.links {
		ls = append(ls, l)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range ls {
		l.close()
	}
	p.wg.Wait()
	return err
}

// reset closes both ends with SO_LINGER 0, so the peers get a RST.
func (l *link) reset() {
	for _, c := range []net.Conn{l.client, l.server} {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
	l.close()
}

func (l *link) close() {
	l.client.Close()
	if l.server != nil {
		l.server.Close()
	}
	l.once.Do(func() { close(l.gone) })
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode, closed := p.mode, p.closed
		p.accepted[mode]++
		p.mu.Unlock()
		if closed {
			c.Close()
			return
		}
		l := &link{client: c, gone: make(chan struct{})}
		switch mode {
		case Cut:
			l.reset()
			continue
		case Blackhole:
			l.dead = true
		case Freeze:
			l.dead, l.frozen = true, true
		default:
			s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
			if err != nil {
				// The target is down: the client sees its connection
				// reset, as it would dialing the target itself.
				l.reset()
				continue
			}
			l.server = s
		}
		l.pipes = 1
		if l.server != nil {
			l.pipes = 2
		}
		if !p.track(l) {
			l.close()
			return
		}
		var obs Observer
		if p.observe != nil {
			obs = p.observe()
		}
		p.wg.Add(1)
		go p.pipe(l, l.client, l.server, obs, true)
		if l.server != nil {
			p.wg.Add(1)
			go p.pipe(l, l.server, l.client, obs, false)
		}
	}
}

func (p *Proxy) track(l *link) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.links[l] = struct{}{}
	return true
}

// pipe copies src to dst chunk by chunk, applying the mode to each chunk.
// When src ends, dst is closed too and the link forgotten; on a blackholed
// link only src is closed, so the other peer learns nothing from the proxy.
// On a frozen link it stops reading and waits until the link is closed
// (Cut, Drop or Close).
func (p *Proxy) pipe(l *link, src, dst net.Conn, obs Observer, up bool) {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		if p.frozen(l) {
			<-l.gone
			break
		}
		n, err := src.Read(buf)
		if p.frozen(l) {
			// What was read as the link froze vanishes with it.
			<-l.gone
			break
		}
		if n > 0 {
			p.mu.Lock()
			mode, delay, dead := p.mode, p.delay, l.dead
			p.mu.Unlock()
			if h, ok := obs.(Holder); ok && !dead {
				sleepUntil(h.Hold(up, buf[:n]))
			}
			if !dead && mode == Slow {
				time.Sleep(delay)
			}
			// Decide and observe under the lock that Blackhole and
			// Freeze take: once they have returned, nothing more is
			// observed on a link they killed, so what an Observer
			// recorded is final and every chunk it recorded is
			// forwarded (e2e's Harness.Quiesce counts on both).
			p.mu.Lock()
			forward := !l.dead && dst != nil
			if forward && obs != nil {
				if up {
					obs.Upstream(buf[:n])
				} else {
					obs.Downstream(buf[:n])
				}
			}
			p.mu.Unlock()
			if forward {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					err = werr
				}
			}
		}
		if err != nil {
			if e, ok := obs.(Ender); ok {
				e.End(up, err)
			}
			break
		}
	}
	p.mu.Lock()
	dead := l.dead
	l.pipes--
	last := l.pipes == 0
	if last {
		delete(p.links, l)
	}
	p.mu.Unlock()
	if dead && !last {
		src.Close()
		return
	}
	l.close()
}

func (p *Proxy) frozen(l *link) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return l.frozen
}

// sleepUntil returns at t (at once if t is zero or past), to within a few
// microseconds: it sleeps until a millisecond before and spins the rest,
// because an idle process's timers wake up to a millisecond late.
func sleepUntil(t time.Time) {
	if t.IsZero() {
		return
	}
	if d := time.Until(t) - time.Millisecond; d > 0 {
		time.Sleep(d)
	}
	for time.Now().Before(t) {
	}
}

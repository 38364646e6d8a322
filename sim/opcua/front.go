package opcua

import (
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
)

// front is the simulator's listening socket, with gopcua's server on a
// private loopback port behind it. gopcua's server never closes a client's
// TCP connection when it stops: its Close sends CloseSecureChannel and then
// waits up to 10 s for the client to hang up, which a client that knows
// nothing of the restart does not do. The front closes every connection at
// once, as a rebooting PLC's network stack does, so a client sees the
// restart as it would in the field.
type front struct {
	l      net.Listener
	target string // gopcua's private address
	log    *slog.Logger

	// cut drops every byte in both directions while set, and keeps the
	// connections open: a network cut that neither side is told of.
	cut *atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func listenFront(addr, target string, cut *atomic.Bool, log *slog.Logger) (*front, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	f := &front{l: l, target: target, cut: cut, log: log, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

func (f *front) accept() {
	defer f.wg.Done()
	for {
		c, err := f.l.Accept()
		if err != nil {
			return // closed
		}
		f.wg.Add(1)
		go f.serve(c)
	}
}

// serve copies bytes both ways between a client and gopcua until either
// side closes, then closes both.
func (f *front) serve(c net.Conn) {
	defer f.wg.Done()
	defer c.Close()
	b, err := net.Dial("tcp", f.target)
	if err != nil {
		f.log.Info("opcua simulator: backend not reachable", "err", err)
		return
	}
	defer b.Close()
	if !f.track(c, b) {
		return
	}
	defer f.untrack(c, b)
	done := make(chan struct{}, 2)
	go func() { f.copy(b, c); done <- struct{}{} }()
	go func() { f.copy(c, b); done <- struct{}{} }()
	<-done
	c.Close()
	b.Close()
	<-done
}

// copy forwards src to dst until either fails, dropping what arrives while
// the network is cut.
func (f *front) copy(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 && !f.cut.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// track records a connection pair; false when the front is closed.
func (f *front) track(conns ...net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		return false
	}
	for _, c := range conns {
		f.conns[c] = struct{}{}
	}
	return true
}

func (f *front) untrack(conns ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range conns {
		delete(f.conns, c)
	}
}

// close stops listening, closes every connection and waits for the copies.
func (f *front) close() {
	f.l.Close()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.conns = nil
	f.mu.Unlock()
	f.wg.Wait()
}

package faultproxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// echoServer echoes every byte back, on 127.0.0.1.
func echoServer(t *testing.T) string {
	return Listen(t, func(c net.Conn) { io.Copy(c, c) })
}

func newProxy(t *testing.T, target string, observe func() Observer) *Proxy {
	t.Helper()
	if observe == nil {
		return Start(t, target)
	}
	p, err := New(target, observe)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *Proxy) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// passing dials p and checks that a line makes the round trip.
func passing(t *testing.T, p *Proxy, what string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, r := dial(t, p)
	if err := roundTrip(c, r, 2*time.Second); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return c, r
}

// wantReset checks that reading c ends in a TCP reset.
func wantReset(t *testing.T, c net.Conn, r *bufio.Reader, what string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := r.ReadString('\n'); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("%s: read %v, want ECONNRESET", what, err)
	}
}

// roundTrip writes a line and reads it back within timeout.
func roundTrip(c net.Conn, r *bufio.Reader, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return errors.New("echo changed: " + line)
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestModes(t *testing.T) {
	p := newProxy(t, echoServer(t), nil)
	c, r := passing(t, p, "pass")

	p.Slow(300 * time.Millisecond)
	start := time.Now()
	if err := roundTrip(c, r, 3*time.Second); err != nil {
		t.Fatalf("slow: %v", err)
	}
	// One delay each way.
	if d := time.Since(start); d < 600*time.Millisecond {
		t.Errorf("slow 300ms: round trip took %s, want at least 600ms", d)
	}

	p.Blackhole()
	if err := roundTrip(c, r, 500*time.Millisecond); !isTimeout(err) {
		t.Fatalf("blackhole: got %v, want a timeout (nothing forwarded, nothing closed)", err)
	}
	// A new connection is accepted, and also goes nowhere.
	c2, r2 := dial(t, p)
	if err := roundTrip(c2, r2, 500*time.Millisecond); !isTimeout(err) {
		t.Fatalf("blackhole, new connection: got %v, want a timeout", err)
	}
	if p.Accepted(Blackhole) != 1 {
		t.Errorf("accepted in blackhole mode: %d, want 1", p.Accepted(Blackhole))
	}

	// Back to pass: the blackholed connection stays dead, a new one works.
	p.Pass()
	c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := r.ReadString('\n'); err == nil {
		t.Error("a blackholed connection carried data after Pass")
	}
	c3, r3 := passing(t, p, "pass after blackhole")

	// Cut resets the open connection and every new one.
	p.Cut()
	wantReset(t, c3, r3, "cut: open connection")
	c4, err := net.Dial("tcp", p.Addr())
	if err == nil {
		c4.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = c4.Read(make([]byte, 1))
		c4.Close()
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Errorf("cut: new connection got %v, want a reset", err)
	}
	p.Pass()
	passing(t, p, "pass after cut")
	if got := p.Mode(); got != Pass {
		t.Errorf("mode %v, want pass", got)
	}
}

// Drop resets the open connections and lets the next one through: a link
// that dies once.
func TestDrop(t *testing.T) {
	p := newProxy(t, echoServer(t), nil)
	c, r := passing(t, p, "pass")
	p.Drop()
	wantReset(t, c, r, "drop: open connection")
	passing(t, p, "a new connection after Drop")
	if p.Mode() != Pass || p.Accepted(Pass) != 2 {
		t.Errorf("after Drop: mode %v, %d accepted in pass; want pass and 2", p.Mode(), p.Accepted(Pass))
	}
}

// writeUntilBlocked writes 64 MiB with a deadline and returns how much got
// out and the error.
func writeUntilBlocked(c net.Conn, d time.Duration) (int, error) {
	c.SetWriteDeadline(time.Now().Add(d))
	return c.Write(make([]byte, 64<<20))
}

// Freeze stops reading: a sender's writes block once the buffers are
// full, which Blackhole (read and discard) never does; nothing is closed,
// and nothing more reaches the other side.
func TestFreeze(t *testing.T) {
	p := newProxy(t, echoServer(t), nil)
	c, r := passing(t, p, "pass")

	// Blackhole first, on another proxy: the same write goes through.
	bh := newProxy(t, echoServer(t), nil)
	cb, _ := passing(t, bh, "pass")
	bh.Blackhole()
	if n, err := writeUntilBlocked(cb, 10*time.Second); err != nil {
		t.Fatalf("blackhole: writing 64 MiB stopped after %d bytes: %v; a blackhole reads and discards", n, err)
	}

	p.Freeze()
	n, err := writeUntilBlocked(c, time.Second)
	if !isTimeout(err) || n >= 64<<20 {
		t.Fatalf("frozen: wrote %d bytes, err %v; want the write blocked (a timeout)", n, err)
	}
	t.Logf("frozen: %d bytes written before the write blocked", n)
	// No echo comes back, and the connection is not closed.
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if m, err := r.Read(make([]byte, 1)); !isTimeout(err) {
		t.Errorf("frozen: read %d bytes, %v; want a timeout", m, err)
	}
	// A connection accepted while frozen is not read either.
	c2, _ := dial(t, p)
	if n, err := writeUntilBlocked(c2, time.Second); !isTimeout(err) {
		t.Errorf("frozen, new connection: wrote %d bytes, err %v; want a timeout", n, err)
	}
	if p.Accepted(Freeze) != 1 {
		t.Errorf("accepted in freeze mode: %d, want 1", p.Accepted(Freeze))
	}

	// After Pass the frozen connections stay dead; a new one works.
	p.Pass()
	if n, err := writeUntilBlocked(c, 300*time.Millisecond); !isTimeout(err) {
		t.Errorf("frozen connection after Pass: wrote %d bytes, err %v; want still blocked", n, err)
	}
	passing(t, p, "pass after freeze")
	// Drop resets the frozen ones too.
	p.Drop()
	wantReset(t, c, r, "drop of a frozen connection")
	// Close returns: no goroutine is left parked on a frozen link.
	closeWithin(t, p, 5*time.Second)
}

// closeWithin fails t if p.Close takes longer than d: a goroutine parked
// on a frozen link would hang it.
func closeWithin(t *testing.T, p *Proxy, d time.Duration) {
	t.Helper()
	closed := make(chan error)
	go func() { closed <- p.Close() }()
	select {
	case <-closed:
	case <-time.After(d):
		t.Fatal("Close hung on frozen connections")
	}
}

// Close ends the goroutines of frozen connections still open.
func TestCloseFrozen(t *testing.T) {
	p, err := New(echoServer(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := passing(t, p, "pass")
	p.Freeze()
	dial(t, p)
	closeWithin(t, p, 5*time.Second)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("read after Close: %v, want the connection ended", err)
	}
}

// A proxy whose target is down resets the client, as the target's host
// would.
func TestTargetDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	p := newProxy(t, addr, nil)
	c, err := net.Dial("tcp", p.Addr())
	if errors.Is(err, syscall.ECONNRESET) {
		return // reset before the handshake completed: as good
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read through a proxy to nothing: %v, want the connection ended", err)
	}
}

// recorder is an Observer that keeps every byte, with a Holder delay.
type recorder struct {
	mu       sync.Mutex
	up, down bytes.Buffer
	hold     time.Duration
}

func (o *recorder) Upstream(b []byte)   { o.mu.Lock(); o.up.Write(b); o.mu.Unlock() }
func (o *recorder) Downstream(b []byte) { o.mu.Lock(); o.down.Write(b); o.mu.Unlock() }
func (o *recorder) Hold(up bool, b []byte) time.Time {
	if o.hold == 0 {
		return time.Time{}
	}
	return time.Now().Add(o.hold)
}

// An Observer sees each direction's bytes in order; a Holder's time holds
// the chunk back; nothing is observed on a blackholed link.
func TestObserver(t *testing.T) {
	rec := &recorder{hold: 100 * time.Millisecond}
	p := newProxy(t, echoServer(t), func() Observer { return rec })
	c, r := dial(t, p)
	start := time.Now()
	for range 3 {
		if err := roundTrip(c, r, 2*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 600*time.Millisecond {
		t.Errorf("three round trips held 100 ms each way took %v, want at least 600 ms", d)
	}
	p.Blackhole()
	roundTrip(c, r, 200*time.Millisecond)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	const want = "ping\nping\nping\n"
	if rec.up.String() != want || rec.down.String() != want {
		t.Errorf("observed up %q, down %q; want %q both ways", rec.up.String(), rec.down.String(), want)
	}
}

// ender records how each direction of a connection ended.
type ender struct {
	recorder
	ends chan error
}

func (o *ender) End(up bool, err error) {
	if up {
		o.ends <- err
	}
}

// A client that closes with an answer unread resets the connection, and
// the Ender hears the reset; one that read everything closes cleanly.
func TestEnderHearsAReset(t *testing.T) {
	for _, read := range []bool{false, true} {
		obs := &ender{ends: make(chan error, 1)}
		p := newProxy(t, echoServer(t), func() Observer { return obs })
		c, r := dial(t, p)
		if _, err := c.Write([]byte("ping\n")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // the echo is in c's socket
		if read {
			if _, err := r.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
		select {
		case err := <-obs.ends:
			reset := errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
			if reset == read {
				t.Errorf("read %v: the client's side ended with %v; want a reset only when the answer was left unread", read, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("read %v: End was not called", read)
		}
	}
}

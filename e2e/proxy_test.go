package e2e

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// echoServer echoes every line back, on 127.0.0.1.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func newProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := NewProxy(target, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
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

func TestProxyModes(t *testing.T) {
	p := newProxy(t, echoServer(t))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if err := roundTrip(c, r, 2*time.Second); err != nil {
		t.Fatalf("pass: %v", err)
	}

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
	err = roundTrip(c, r, 500*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("blackhole: got %v, want a timeout (nothing forwarded, nothing closed)", err)
	}
	// A new connection is accepted, and also goes nowhere.
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatalf("blackhole: dial: %v", err)
	}
	defer c2.Close()
	if err := roundTrip(c2, bufio.NewReader(c2), 500*time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() {
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
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	r3 := bufio.NewReader(c3)
	if err := roundTrip(c3, r3, 2*time.Second); err != nil {
		t.Fatalf("pass after blackhole: %v", err)
	}

	// Cut resets the open connection and every new one.
	p.Cut()
	c3.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := r3.ReadString('\n'); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("cut: open connection read %v, want ECONNRESET", err)
	}
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
	c5, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c5.Close()
	if err := roundTrip(c5, bufio.NewReader(c5), 2*time.Second); err != nil {
		t.Fatalf("pass after cut: %v", err)
	}
}

// A proxy whose target is down resets the client, as the target's host
// would.
func TestProxyTargetDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	p := newProxy(t, addr)
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

// mbap builds one Modbus TCP frame.
func mbap(tid uint16, unit byte, pdu ...byte) []byte {
	n := len(pdu) + 1
	return append([]byte{byte(tid >> 8), byte(tid), 0, 0, byte(n >> 8), byte(n), unit}, pdu...)
}

func TestTapReadsCounters(t *testing.T) {
	s := NewServed()
	tap := s.Tap()()
	// Read holding 0..5 of unit 7 and input 10..11 of unit 7, split
	// across chunks at awkward places.
	req := append(mbap(1, 7, 3, 0, 0, 0, 6), mbap(2, 7, 4, 0, 10, 0, 2)...)
	tap.Upstream(req[:5])
	tap.Upstream(req[5:13])
	tap.Upstream(req[13:])
	resp := append(mbap(1, 7, 3, 12, 0, 0, 0, 0, 0, 0, 1, 2, 0xAA, 0xBB, 0xCC, 0xDD),
		mbap(2, 7, 4, 4, 0, 0, 0, 0)...)
	for _, b := range resp {
		tap.Downstream([]byte{b})
	}
	// An exception answer and an answer without a request.
	tap.Upstream(mbap(3, 7, 3, 0, 0, 0, 4))
	tap.Downstream(mbap(3, 7, 0x83, 2))
	tap.Downstream(mbap(9, 7, 3, 8, 0, 0, 0, 0, 0, 0, 0, 9))
	polls := s.Polls(7)
	if len(polls) != 1 || polls[0].Counter != 0x0102 {
		t.Fatalf("polls of unit 7 = %+v, want one with counter 0x0102", polls)
	}
	if d, u := s.Anomalies(); d != 0 || u != 1 {
		t.Errorf("anomalies: desync %d unmatched %d, want 0 and 1", d, u)
	}
	// Garbage breaks the stream for good, and is counted once.
	tap.Downstream([]byte{0xde, 0xad, 0xbe, 0xef, 0xff, 0xff, 0xff, 0xff})
	tap.Downstream(mbap(4, 7, 3, 8, 0, 0, 0, 0, 0, 0, 0, 5))
	if d, _ := s.Anomalies(); d != 1 {
		t.Errorf("desync after garbage = %d, want 1", d)
	}
	if len(s.Polls(7)) != 1 {
		t.Error("the tap parsed frames after garbage")
	}
}

func FuzzTapFrames(f *testing.F) {
	f.Add(mbap(1, 1, 3, 0, 0, 0, 4), mbap(1, 1, 3, 8, 0, 0, 0, 0, 0, 0, 0, 1))
	f.Add(mbap(1, 1, 4, 0, 0, 0, 4), mbap(1, 1, 0x84, 2))
	f.Add([]byte{0, 1, 0, 0, 0, 0}, []byte{0, 1, 0, 0, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, up, down []byte) {
		s := NewServed()
		tap := s.Tap()()
		for len(up) > 0 || len(down) > 0 {
			n := min(len(up), 5)
			tap.Upstream(up[:n])
			up = up[n:]
			m := min(len(down), 7)
			tap.Downstream(down[:m])
			down = down[m:]
		}
		for _, u := range s.Units() {
			_ = s.Polls(u)
		}
	})
}

func TestTapMarksLateAnswers(t *testing.T) {
	s := NewServed()
	s.LateAfter = 50 * time.Millisecond
	tap := s.Tap()()
	tap.Upstream(mbap(1, 3, 3, 0, 0, 0, 4))
	tap.Downstream(mbap(1, 3, 3, 8, 0, 0, 0, 0, 0, 0, 0, 1))
	tap.Upstream(mbap(2, 3, 3, 0, 0, 0, 4))
	time.Sleep(60 * time.Millisecond)
	tap.Downstream(mbap(2, 3, 3, 8, 0, 0, 0, 0, 0, 0, 0, 2))
	p := s.Polls(3)
	if len(p) != 2 || p[0].Late || !p[1].Late {
		t.Fatalf("polls = %+v, want the first on time and the second late", p)
	}
}

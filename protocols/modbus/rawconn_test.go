package modbus

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// dialPair returns a connection through newRawTCP and its peer, over
// loopback TCP.
func dialPair(t *testing.T) (stream, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	s := newRawTCP(c.(*net.TCPConn))
	t.Cleanup(func() { s.Close(); peer.Close() })
	return s, peer
}

// The connection moves bytes both ways intact, including a write larger
// than the socket buffers, which must wait for the peer to read.
func TestRawTCPMovesBytes(t *testing.T) {
	s, peer := dialPair(t)
	big := make([]byte, 8<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(peer, int64(len(big))))
		got <- b
	}()
	s.SetDeadline(time.Now().Add(20 * time.Second))
	if n, err := s.Write(big); n != len(big) || err != nil {
		t.Fatalf("write: %d of %d bytes, %v", n, len(big), err)
	}
	if b := <-got; !bytes.Equal(b, big) {
		t.Fatalf("peer read %d bytes, not what was written", len(b))
	}
	if _, err := peer.Write([]byte("answer")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "answer" {
		t.Fatalf("read %q, %v", buf, err)
	}
}

// A read past the deadline ends with os.ErrDeadlineExceeded (the link
// turns it into ErrTimeout), and a deadline set while a read waits ends
// that read (the link does so when the context ends).
func TestRawTCPDeadline(t *testing.T) {
	s, _ := dialPair(t)
	s.SetDeadline(time.Now().Add(30 * time.Millisecond))
	start := time.Now()
	if _, err := s.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read with nothing to read: %v, want a deadline error", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the deadline took %v", took)
	}
	s.SetDeadline(time.Time{})
	go func() {
		time.Sleep(30 * time.Millisecond)
		s.SetDeadline(time.Now())
	}()
	if _, err := s.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read cut by a deadline: %v", err)
	}
}

// The peer closing is io.EOF; a peer that resets is an error that is
// neither EOF nor a deadline (the link counts it as a broken connection).
func TestRawTCPPeerGone(t *testing.T) {
	s, peer := dialPair(t)
	peer.Close()
	s.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.Read(make([]byte, 8)); err != io.EOF {
		t.Fatalf("read after the peer closed: %v, want io.EOF", err)
	}

	s, peer = dialPair(t)
	peer.(*net.TCPConn).SetLinger(0) // close with RST
	peer.Close()
	s.SetDeadline(time.Now().Add(5 * time.Second))
	time.Sleep(20 * time.Millisecond)
	var err error
	for range 3 { // the RST may need a write to be noticed
		if _, err = s.Write([]byte{1}); err != nil {
			break
		}
		if _, err = s.Read(make([]byte, 8)); err != nil {
			break
		}
	}
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after a reset: %v, want a connection error", err)
	}
}

package modbus

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair is a connected client (wrapped as the link wraps it) and server.
func tcpPair(t *testing.T) (stream, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	client := newRawTCP(c.(*net.TCPConn))
	t.Cleanup(func() { client.Close(); s.Close() })
	return client, s
}

// An answer already in the socket when the reader comes after its
// deadline (the agent was not scheduled in time) is taken, not counted a
// timeout.
func TestLastLookTakesAnAnswerReadLate(t *testing.T) {
	client, server := tcpPair(t)
	answer := []byte{0, 7, 0, 0, 0, 5, 1, 3, 2, 0x12, 0x34}
	if _, err := server.Write(answer); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the answer is in the client's socket
	client.SetDeadline(time.Now().Add(-time.Second))

	// Go itself gives up without looking: the premise of lastLook.
	var b [32]byte
	if n, err := client.Read(b[:]); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("plain read after the deadline: %d bytes, %v; want 0 and a deadline error", n, err)
	}
	ans, err := readMBAP(&lastLook{stream: client, ctx: context.Background()}, []byte{0, 7, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1})
	if err != nil {
		t.Fatalf("read through lastLook: %v", err)
	}
	if string(ans) != string(answer) {
		t.Fatalf("answer % x, want % x", ans, answer)
	}
}

// With nothing there the second look times out too, within its grace, and
// a cancelled request is not looked at again.
func TestLastLookStillTimesOut(t *testing.T) {
	client, _ := tcpPair(t)
	client.SetDeadline(time.Now().Add(-time.Second))
	r := &lastLook{stream: client, ctx: context.Background()}
	var b [8]byte
	if _, err := r.Read(b[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read with nothing there: %v, want a deadline error", err)
	}
	if !r.looked {
		t.Fatal("the second look was not taken")
	}
	if _, err := r.Read(b[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("second read: %v, want a deadline error", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	client2, server2 := tcpPair(t)
	server2.Write([]byte{1, 2, 3})
	time.Sleep(50 * time.Millisecond)
	client2.SetDeadline(time.Now().Add(-time.Second))
	r2 := &lastLook{stream: client2, ctx: ctx}
	if n, err := r2.Read(b[:]); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) || r2.looked {
		t.Fatalf("cancelled request: %d bytes, %v, looked %v; want no second look", n, err, r2.looked)
	}
}

package e2e

import (
	"io"
	"syscall"
	"testing"
	"time"
)

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

// An answer the agent reset its connection without reading (it had timed
// out) is marked Unread and Late; a clean close marks nothing, and an
// answer followed by another request was read.
func TestTapMarksAnswersLeftUnread(t *testing.T) {
	s := NewServed()
	tap := s.Tap()()
	tap.Upstream(mbap(1, 3, 3, 0, 0, 0, 4))
	tap.Downstream(mbap(1, 3, 3, 8, 0, 0, 0, 0, 0, 0, 0, 1)) // read: a request follows
	tap.Upstream(mbap(2, 3, 3, 0, 0, 0, 4))
	tap.Downstream(mbap(2, 3, 3, 8, 0, 0, 0, 0, 0, 0, 0, 2)) // left unread
	tap.(Ender).End(true, syscall.ECONNRESET)
	p := s.Polls(3)
	if len(p) != 2 || p[0].Late || p[0].Unread || !p[1].Late || !p[1].Unread {
		t.Fatalf("polls = %+v, want the first read and the second unread", p)
	}

	s = NewServed()
	tap = s.Tap()()
	tap.Upstream(mbap(1, 4, 3, 0, 0, 0, 4))
	tap.Downstream(mbap(1, 4, 3, 8, 0, 0, 0, 0, 0, 0, 0, 1))
	tap.(Ender).End(true, io.EOF)
	if p := s.Polls(4); len(p) != 1 || p[0].Late || p[0].Unread {
		t.Fatalf("after a clean close polls = %+v, want one, read", p)
	}
}

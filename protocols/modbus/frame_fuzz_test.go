package modbus

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gb "github.com/goburrow/modbus"
)

// answerPath runs an answer (bytes off the wire) through everything the
// driver does with it for a read of holding 0..9 on unit 1: framing checks,
// goburrow's decoding, and the length check.
func answerPath(fr framing, answer []byte) ([]byte, error) {
	var pk gb.Packager
	switch fr {
	case mbap:
		h := &gb.TCPClientHandler{}
		h.SlaveId = 1
		pk = h
	case rtu:
		h := &gb.RTUClientHandler{}
		h.SlaveId = 1
		pk = h
	default:
		h := &gb.ASCIIClientHandler{}
		h.SlaveId = 1
		pk = h
	}
	c := gb.NewClient2(pk, sendFunc(func(req []byte) ([]byte, error) {
		r := bytes.NewReader(answer)
		switch fr {
		case mbap:
			return readMBAP(r, req)
		case rtu:
			return readRTU(r, req)
		}
		return readASCII(r, req)
	}))
	data, err := c.ReadHoldingRegisters(0, 10)
	if err == nil && len(data) != 20 {
		return nil, ErrFrame
	}
	return data, err
}

func validAnswers() map[framing][]byte {
	pdu := []byte{3, 20}
	for i := range 10 {
		pdu = binary.BigEndian.AppendUint16(pdu, uint16(i*1000))
	}
	m := map[framing][]byte{}
	mb := []byte{0, 1, 0, 0, 0, byte(1 + len(pdu)), 1}
	m[mbap] = append(mb, pdu...)
	r := append([]byte{1}, pdu...)
	m[rtu] = binary.LittleEndian.AppendUint16(r, crc16(r))
	var sum byte
	for _, b := range r {
		sum += b
	}
	m[ascii] = []byte(":" + strings.ToUpper(hex.EncodeToString(append(append([]byte{}, r...), -sum))) + "\r\n")
	return m
}

func TestAnswerPathAcceptsValidAnswers(t *testing.T) {
	for fr, a := range validAnswers() {
		data, err := answerPath(fr, a)
		if err != nil || binary.BigEndian.Uint16(data[18:]) != 9000 {
			t.Errorf("framing %d: %v % x", fr, err, data)
		}
		// One flipped byte anywhere is never taken as a good answer with
		// different data.
		for i := range a {
			bad := append([]byte{}, a...)
			bad[i] ^= 0x10
			if d, err := answerPath(fr, bad); err == nil && !bytes.Equal(d, data) && fr != mbap {
				t.Errorf("framing %d: byte %d flipped, accepted % x", fr, i, d)
			}
		}
	}
}

// pipePath runs an answer through what a pipelined link and the driver do
// with it for a read of holding 0..9 on unit 1 with transaction id 1: the
// pipe's framing and matching (dispatchLocked), the driver's own decoding
// (readData) and the length check. A frame cut short is not an answer.
func pipePath(answer []byte) ([]byte, error) {
	p := newPipe(Target{Scheme: "tcp", Address: "fuzz:502"}, 8, slog.New(slog.DiscardHandler))
	conn, peer := net.Pipe()
	defer conn.Close()
	defer peer.Close()
	p.conn = conn
	c := newCall(context.Background(), readADU(1, request{table: holding, start: 0, count: 10}), time.Second)
	c.adu[1] = 1
	p.inflight = append(p.inflight, c)
	p.mu.Lock()
	p.dispatchLocked(conn, answer)
	p.mu.Unlock()
	select {
	case <-c.done:
	default:
		return nil, errors.New("incomplete")
	}
	if c.err != nil {
		return nil, c.err
	}
	data, err := readData(c.ans)
	if err == nil && len(data) != 20 {
		return nil, ErrFrame
	}
	return data, err
}

// exceptionCode is the exception code an error carries, -1 for none.
func exceptionCode(err error) int {
	var me *gb.ModbusError
	var ex *ExceptionError
	switch {
	case errors.As(err, &me):
		return int(me.ExceptionCode)
	case errors.As(err, &ex):
		return int(ex.Code)
	}
	return -1
}

// The pipelined read path rejects exactly what the goburrow path rejects,
// and accepts the same data.
func TestPipePathMatchesGoburrow(t *testing.T) {
	good := validAnswers()[mbap]
	cases := map[string][]byte{"good": good}
	for i := range good {
		bad := append([]byte{}, good...)
		bad[i] ^= 0x10
		cases["flip "+string(rune('a'+i))] = bad
		cases["cut "+string(rune('a'+i))] = good[:i]
	}
	cases["exception"] = []byte{0, 1, 0, 0, 0, 3, 1, 0x83, 2}
	cases["exception long"] = []byte{0, 1, 0, 0, 0, 4, 1, 0x83, 2, 0}
	cases["no data"] = []byte{0, 1, 0, 0, 0, 2, 1, 3}
	cases["count short"] = []byte{0, 1, 0, 0, 0, 5, 1, 3, 4, 0, 1}
	cases["count over"] = []byte{0, 1, 0, 0, 0, 5, 1, 3, 1, 0, 1}
	cases["other function"] = []byte{0, 1, 0, 0, 0, 5, 1, 4, 2, 0, 1}
	for name, a := range cases {
		checkSamePath(t, name, a)
	}
}

func checkSamePath(t *testing.T, name string, a []byte) {
	t.Helper()
	want, werr := answerPath(mbap, a)
	got, gerr := pipePath(a)
	if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) || exceptionCode(werr) != exceptionCode(gerr) {
		t.Errorf("%s: % x: goburrow path % x, %v; pipe path % x, %v", name, a, want, werr, got, gerr)
	}
}

// FuzzPipeAnswer feeds arbitrary bytes to a pipelined link as the answer to
// an outstanding read: never a panic, and the outcome is the goburrow
// path's.
func FuzzPipeAnswer(f *testing.F) {
	a := validAnswers()[mbap]
	f.Add(a)
	f.Add(a[:len(a)/2])
	f.Add(append(append([]byte{}, a...), a...))
	f.Add([]byte{0, 1, 0, 0, 0, 3, 1, 0x83, 2})
	f.Add([]byte{0, 2, 0, 0, 0, 3, 1, 0x83, 2})
	f.Fuzz(func(t *testing.T, answer []byte) {
		checkSamePath(t, "fuzz", answer)
	})
}

// FuzzPipeLateAnswer feeds arbitrary bytes to a pipelined link that has a
// read of holding 0..9 on unit 1 outstanding (transaction id 1) and one
// abandoned (id 2, timed out): never a panic; the late answer is counted
// at most once, and its id is forgotten then; only an answer with id 1 is
// taken for the outstanding read (the driver checks its length).
func FuzzPipeLateAnswer(f *testing.F) {
	a := validAnswers()[mbap]
	late := append([]byte{}, a...)
	late[1] = 2
	f.Add(a)
	f.Add(late)
	f.Add(append(append([]byte{}, late...), a...))
	f.Add(append(append([]byte{}, late...), late...))
	f.Add([]byte{0, 2, 0, 0, 0, 3, 1, 0x83, 2})
	f.Add([]byte{0, 2, 0, 0, 0, 3, 9, 0x83, 2})
	f.Fuzz(func(t *testing.T, answer []byte) {
		p := newPipe(Target{Scheme: "tcp", Address: "fuzz:502"}, 8, slog.New(slog.DiscardHandler))
		conn, peer := net.Pipe()
		defer conn.Close()
		defer peer.Close()
		p.conn = conn
		var n atomic.Uint64
		c := newCall(context.Background(), readADU(1, request{table: holding, start: 0, count: 10}), time.Second)
		c.adu[1] = 1
		p.inflight = append(p.inflight, c)
		p.abandoned = map[uint16]abandonedCall{2: {unit: 1, function: 3, late: &n}}
		p.mu.Lock()
		p.dispatchLocked(conn, answer)
		_, waiting := p.abandoned[2]
		p.mu.Unlock()
		if n.Load() > 1 || (n.Load() == 1 && waiting) {
			t.Fatalf("% x: %d late answers counted, id 2 still abandoned: %v", answer, n.Load(), waiting)
		}
		select {
		case <-c.done:
			if c.err == nil && binary.BigEndian.Uint16(c.ans) != 1 {
				t.Fatalf("% x: answer % x taken for transaction 1", answer, c.ans)
			}
		default:
		}
	})
}

// FuzzAnswer feeds arbitrary bytes as a device's answer: never a panic, and
// anything accepted has exactly the requested length.
func FuzzAnswer(f *testing.F) {
	for fr, a := range validAnswers() {
		f.Add(uint8(fr), a)
		f.Add(uint8(fr), a[:len(a)/2])
	}
	f.Add(uint8(0), []byte{0, 1, 0, 0, 0, 3, 1, 0x83, 2})
	f.Add(uint8(1), []byte{1, 0x83, 2, 0xc0, 0xf1})
	f.Add(uint8(2), []byte(":018302XX\r\n"))
	f.Fuzz(func(t *testing.T, fr uint8, answer []byte) {
		data, err := answerPath(framing(fr%3), answer)
		if err == nil && len(data) != 20 {
			t.Fatalf("accepted %d bytes", len(data))
		}
	})
}

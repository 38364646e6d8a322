package modbus

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"

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

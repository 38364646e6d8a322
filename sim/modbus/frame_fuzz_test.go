package modbus

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzRequestFrames feeds arbitrary bytes to the simulator's request
// readers: a malformed request is skipped or ends the connection, never a
// panic.
func FuzzRequestFrames(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 10})
	f.Add([]byte{1, 3, 0, 0, 0, 10, 0xc5, 0xcd})
	f.Add([]byte{1, 16, 0, 0, 0, 1, 2, 0, 7, 0, 0})
	f.Add([]byte(":010300000001FB\r\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		for r := bytes.NewReader(b); r.Len() > 0; {
			if _, err := readMBAPRequest(r); err != nil {
				break
			}
		}
		for r := bytes.NewReader(b); r.Len() > 0; {
			if _, err := readRTURequest(r); err != nil {
				break
			}
		}
		br := bufio.NewReader(bytes.NewReader(b))
		for {
			f, err := readASCIIRequest(br)
			if err != nil {
				break
			}
			if len(f) < 2 {
				t.Fatalf("accepted a %d-byte request", len(f))
			}
		}
	})
}

package wire

import (
	"errors"
	"strconv"
)

// Categories of decoding failure. Every error a decoder in this package
// returns wraps exactly one of them, so a receiver can count rejected messages
// by reason with errors.Is.
var (
	// ErrMalformed: not JSON, or JSON of the wrong shape (a missing or
	// duplicate key, a wrong type, an unknown quality, trailing bytes).
	ErrMalformed = errors.New("malformed")
	// ErrTooLarge: a size limit was passed (message bytes, samples, string length).
	ErrTooLarge = errors.New("too large")
	// ErrVersion: the message carries a contract version this build does not read.
	ErrVersion = errors.New("unsupported version")
	// ErrTopic: the message does not match the topic it arrived on, or the
	// topic itself is not a Weft topic.
	ErrTopic = errors.New("topic mismatch")
)

// DecodeError is a data message DecodeBatch rejected: what is wrong and where.
type DecodeError struct {
	// Offset is the byte offset in the message where the problem starts.
	Offset int
	// Sample is the index in "samples" of the offending sample, or -1.
	Sample int
	// Key is the key being decoded ("seq", "ts"), or "" outside any key.
	Key string
	// Reason says what is wrong, for people.
	Reason string
	// Err is the category: ErrMalformed, ErrTooLarge or ErrVersion.
	Err error
}

func (e *DecodeError) Error() string {
	b := make([]byte, 0, 64+len(e.Reason))
	b = append(b, "wire: data message: byte "...)
	b = strconv.AppendInt(b, int64(e.Offset), 10)
	b = append(b, ": "...)
	if e.Sample >= 0 {
		b = append(b, "samples["...)
		b = strconv.AppendInt(b, int64(e.Sample), 10)
		b = append(b, ']')
		if e.Key != "" {
			b = append(b, '.')
		}
	}
	if e.Key != "" {
		b = append(b, e.Key...)
	}
	if e.Sample >= 0 || e.Key != "" {
		b = append(b, ": "...)
	}
	b = append(b, e.Reason...)
	return string(b)
}

// Unwrap returns the category, for errors.Is.
func (e *DecodeError) Unwrap() error { return e.Err }

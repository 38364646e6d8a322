package sparkplug

import (
	"errors"

	"github.com/weftiot/weft/wire"
)

// Categories of failure. Every error of this package's decoders wraps one of
// them (ErrTooLarge is wire.ErrTooLarge, so one counter serves both formats).
var (
	// ErrTopic: not a Sparkplug B topic, or one of the wrong shape.
	ErrTopic = errors.New("not a Sparkplug B topic")
	// ErrPayload: bytes that are not a Sparkplug B protobuf payload, or a
	// STATE message that is not the 3.0 JSON.
	ErrPayload = errors.New("malformed Sparkplug B payload")
	// ErrTooLarge: a size limit was passed.
	ErrTooLarge = wire.ErrTooLarge
	// ErrType: a metric whose datatype or value Weft cannot carry as a
	// sample (DataSet, Template, Bytes, File, arrays), or whose value does
	// not fit its datatype.
	ErrType = errors.New("unsupported metric value")
)

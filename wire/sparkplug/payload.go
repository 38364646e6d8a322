// Package sparkplug is the Sparkplug B 3.0 contract as Weft speaks it: the
// protobuf payload (generated in sparkplugpb from a .proto written from the
// specification), topics, the STATE message of host applications, and the
// conversion between metric values and wire.Values.
//
// The gateway's host application (gateway/internal/sparkplug) uses it. The
// agent's edge node (agent/internal/sparkplug) restates the little it needs
// with protowire, to keep the protobuf runtime out of the agent binary, and
// its tests check that against this package. docs/sparkplug.md describes
// the behaviour for people.
package sparkplug

import (
	"encoding/json"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/weftiot/weft/wire"
	pb "github.com/weftiot/weft/wire/sparkplug/sparkplugpb"
)

// Payload and Metric are the generated protobuf types.
type (
	Payload  = pb.Payload
	Metric   = pb.Payload_Metric
	DataType = pb.DataType
)

// Well-known metric and property names.
const (
	// MetricBdSeq is the birth/death sequence number of NBIRTH and NDEATH.
	MetricBdSeq = "bdSeq"
	// MetricRebirth is the node control a host writes true in an NCMD to
	// ask for a rebirth; every NBIRTH carries it (false).
	MetricRebirth = "Node Control/Rebirth"
	// PropUnit is the engineering unit of a metric (DBIRTH property; the
	// key Ignition and other hosts read).
	PropUnit = "engUnit"
	// PropQuality is a metric's quality (property, Int32, OPC DA codes:
	// 192 good, 64 uncertain, 0 bad), written only for a non-good sample.
	PropQuality = "Quality"
)

// OPC DA quality codes carried in PropQuality.
const (
	QualityGood      = 192
	QualityUncertain = 64
	QualityBad       = 0
)

// MaxPayload bounds the size of a payload Decode reads.
const MaxPayload = 16 << 20

// Decode parses a Sparkplug B payload.
func Decode(b []byte) (*Payload, error) {
	if len(b) > MaxPayload {
		return nil, fmt.Errorf("sparkplug: payload of %d bytes, limit %d: %w", len(b), MaxPayload, ErrTooLarge)
	}
	p := &Payload{}
	if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, p); err != nil {
		return nil, fmt.Errorf("sparkplug: payload of %d bytes: %w: %v", len(b), ErrPayload, err)
	}
	return p, nil
}

// Encode serialises a payload.
func Encode(p *Payload) ([]byte, error) {
	b, err := proto.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("sparkplug: encode payload: %w", err)
	}
	return b, nil
}

// State is a host application's STATE message (Sparkplug 3.0: JSON, retained,
// QoS 1, on spBv1.0/STATE/{host id}). The MQTT will of the host carries
// online false with the same timestamp as its online message, so an edge
// node can ignore a STATE older than the last one it saw.
type State struct {
	Online    bool  `json:"online"`
	Timestamp int64 `json:"timestamp"` // ms since the epoch
}

// MaxState bounds a STATE message.
const MaxState = 4096

// DecodeState parses a STATE payload: a JSON object with a boolean online and
// a numeric timestamp. Other keys are ignored, as the specification allows.
func DecodeState(b []byte) (State, error) {
	if len(b) > MaxState {
		return State{}, fmt.Errorf("sparkplug: STATE of %d bytes, limit %d: %w", len(b), MaxState, ErrTooLarge)
	}
	var raw struct {
		Online    *bool    `json:"online"`
		Timestamp *float64 `json:"timestamp"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return State{}, fmt.Errorf("sparkplug: STATE %q: %w: %v", clip(b), ErrPayload, err)
	}
	if raw.Online == nil || raw.Timestamp == nil {
		return State{}, fmt.Errorf("sparkplug: STATE %q: %w: want {\"online\": bool, \"timestamp\": ms}", clip(b), ErrPayload)
	}
	ts := *raw.Timestamp
	if ts < 0 || ts > 1<<53 || ts != math.Trunc(ts) {
		return State{}, fmt.Errorf("sparkplug: STATE %q: %w: timestamp is not whole milliseconds since the epoch", clip(b), ErrPayload)
	}
	return State{Online: *raw.Online, Timestamp: int64(ts)}, nil
}

// EncodeState serialises a STATE message.
func EncodeState(s State) []byte {
	b, _ := json.Marshal(s) // two plain fields: cannot fail
	return b
}

func clip(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}

// DataTypeOf is the datatype Weft gives a metric whose values are of kind k:
// Double, Int64, UInt64, Boolean or String (Unknown for Null).
func DataTypeOf(k wire.Kind) DataType {
	switch k {
	case wire.Float:
		return pb.DataType_Double
	case wire.Int:
		return pb.DataType_Int64
	case wire.Uint:
		return pb.DataType_UInt64
	case wire.Bool:
		return pb.DataType_Boolean
	case wire.String:
		return pb.DataType_String
	}
	return pb.DataType_Unknown
}

// Fits reports whether a value of kind k can be sent as datatype dt without
// a rebirth: the same type, or a number into Double.
func Fits(dt DataType, k wire.Kind) bool {
	if k == wire.Null {
		return true
	}
	if DataTypeOf(k) == dt {
		return true
	}
	switch dt {
	case pb.DataType_Double, pb.DataType_Float:
		return k == wire.Int || k == wire.Uint || k == wire.Float
	}
	return false
}

// SetValue stores v in m as datatype dt (one Weft writes: Double, Float,
// Int64, UInt64, Boolean, String; see DataTypeOf). A Null value sets is_null.
// It does not set m.Datatype: a DATA message leaves it out.
func SetValue(m *Metric, dt DataType, v wire.Value) error {
	if v.Kind() == wire.Null {
		m.IsNull = proto.Bool(true)
		m.Value = nil
		return nil
	}
	if !Fits(dt, v.Kind()) {
		return fmt.Errorf("sparkplug: metric %q: %w: a %v value for datatype %v", m.GetName(), ErrType, v.Kind(), dt)
	}
	switch dt {
	case pb.DataType_Double:
		f, _ := v.Float()
		m.Value = &pb.Payload_Metric_DoubleValue{DoubleValue: f}
	case pb.DataType_Float:
		f, _ := v.Float()
		m.Value = &pb.Payload_Metric_FloatValue{FloatValue: float32(f)}
	case pb.DataType_Int64:
		m.Value = &pb.Payload_Metric_LongValue{LongValue: uint64(v.Int())}
	case pb.DataType_UInt64:
		m.Value = &pb.Payload_Metric_LongValue{LongValue: v.Uint()}
	case pb.DataType_Boolean:
		m.Value = &pb.Payload_Metric_BooleanValue{BooleanValue: v.Bool()}
	case pb.DataType_String:
		m.Value = &pb.Payload_Metric_StringValue{StringValue: v.Str()}
	default:
		return fmt.Errorf("sparkplug: metric %q: %w: Weft does not write datatype %v", m.GetName(), ErrType, dt)
	}
	return nil
}

// Value reads a metric's value as datatype dt (the metric's own datatype in a
// birth, or the one its birth declared, for DATA). It accepts the value in
// any of the scalar fields and interprets it by dt: a signed integer's
// int_value is cut to its width and read with its sign, so both the
// sign-extended and the zero-extended encodings in the wild read right. A
// metric with is_null, or with no value, is Null. DateTime is an Int of
// milliseconds. DataSet, Template, Bytes, File and the array types are
// ErrType.
func Value(m *Metric, dt DataType) (wire.Value, error) {
	if m.GetIsNull() || m.Value == nil {
		return wire.Value{}, nil
	}
	var (
		u     uint64
		isInt bool
		f     float64
		isF   bool
	)
	switch x := m.Value.(type) {
	case *pb.Payload_Metric_IntValue:
		u, isInt = uint64(x.IntValue), true
	case *pb.Payload_Metric_LongValue:
		u, isInt = x.LongValue, true
	case *pb.Payload_Metric_FloatValue:
		f, isF = float64(x.FloatValue), true
		if dt == pb.DataType_Float {
			return wire.Float32Value(x.FloatValue), nil
		}
	case *pb.Payload_Metric_DoubleValue:
		f, isF = x.DoubleValue, true
	case *pb.Payload_Metric_BooleanValue:
		if dt == pb.DataType_Boolean {
			return wire.BoolValue(x.BooleanValue), nil
		}
	case *pb.Payload_Metric_StringValue:
		switch dt {
		case pb.DataType_String, pb.DataType_Text, pb.DataType_UUID:
			return wire.StringValue(x.StringValue), nil
		}
	}
	switch dt {
	case pb.DataType_Int8, pb.DataType_Int16, pb.DataType_Int32, pb.DataType_Int64, pb.DataType_DateTime:
		if isInt {
			switch dt {
			case pb.DataType_Int8:
				return wire.IntValue(int64(int8(u))), nil
			case pb.DataType_Int16:
				return wire.IntValue(int64(int16(u))), nil
			case pb.DataType_Int32:
				return wire.IntValue(int64(int32(u))), nil
			}
			return wire.IntValue(int64(u)), nil
		}
	case pb.DataType_UInt8:
		if isInt {
			return wire.UintValue(uint64(uint8(u))), nil
		}
	case pb.DataType_UInt16:
		if isInt {
			return wire.UintValue(uint64(uint16(u))), nil
		}
	case pb.DataType_UInt32:
		if isInt {
			return wire.UintValue(uint64(uint32(u))), nil
		}
	case pb.DataType_UInt64:
		if isInt {
			return wire.UintValue(u), nil
		}
	case pb.DataType_Float, pb.DataType_Double:
		if isF {
			return wire.FloatValue(f), nil
		}
		if isInt {
			return wire.FloatValue(float64(u)), nil
		}
	}
	return wire.Value{}, fmt.Errorf("sparkplug: metric %q: %w: datatype %v with value %s", m.GetName(), ErrType, dt, valueField(m))
}

func valueField(m *Metric) string {
	switch m.Value.(type) {
	case *pb.Payload_Metric_IntValue:
		return "int_value"
	case *pb.Payload_Metric_LongValue:
		return "long_value"
	case *pb.Payload_Metric_FloatValue:
		return "float_value"
	case *pb.Payload_Metric_DoubleValue:
		return "double_value"
	case *pb.Payload_Metric_BooleanValue:
		return "boolean_value"
	case *pb.Payload_Metric_StringValue:
		return "string_value"
	case *pb.Payload_Metric_BytesValue:
		return "bytes_value"
	case *pb.Payload_Metric_DatasetValue:
		return "dataset_value"
	case *pb.Payload_Metric_TemplateValue:
		return "template_value"
	case *pb.Payload_Metric_ExtensionValue:
		return "extension_value"
	}
	return "none"
}

// Property returns the value of property key of m, if m has it.
func Property(m *Metric, key string) (*pb.Payload_PropertyValue, bool) {
	ps := m.GetProperties()
	if ps == nil {
		return nil, false
	}
	for i, k := range ps.GetKeys() {
		if k == key && i < len(ps.GetValues()) {
			return ps.GetValues()[i], true
		}
	}
	return nil, false
}

// AddProperty appends a property to m.
func AddProperty(m *Metric, key string, v *pb.Payload_PropertyValue) {
	if m.Properties == nil {
		m.Properties = &pb.Payload_PropertySet{}
	}
	m.Properties.Keys = append(m.Properties.Keys, key)
	m.Properties.Values = append(m.Properties.Values, v)
}

// StringProperty and Int32Property make property values.
func StringProperty(s string) *pb.Payload_PropertyValue {
	return &pb.Payload_PropertyValue{Type: proto.Uint32(uint32(pb.DataType_String)), Value: &pb.Payload_PropertyValue_StringValue{StringValue: s}}
}

func Int32Property(i int32) *pb.Payload_PropertyValue {
	return &pb.Payload_PropertyValue{Type: proto.Uint32(uint32(pb.DataType_Int32)), Value: &pb.Payload_PropertyValue_IntValue{IntValue: uint32(i)}}
}

// QualityOf reads a metric's PropQuality property as a wire.Quality (Good
// when there is none). Codes follow OPC DA: 192 and above good, 64..191
// uncertain, below 64 bad.
func QualityOf(m *Metric) wire.Quality {
	pv, ok := Property(m, PropQuality)
	if !ok {
		return wire.Good
	}
	var q int64
	switch x := pv.Value.(type) {
	case *pb.Payload_PropertyValue_IntValue:
		q = int64(int32(x.IntValue))
	case *pb.Payload_PropertyValue_LongValue:
		q = int64(x.LongValue)
	default:
		return wire.Uncertain
	}
	switch {
	case q >= QualityGood:
		return wire.Good
	case q >= QualityUncertain:
		return wire.Uncertain
	}
	return wire.Bad
}

// QualityCode is the PropQuality code of q.
func QualityCode(q wire.Quality) int32 {
	switch q {
	case wire.Good:
		return QualityGood
	case wire.Uncertain:
		return QualityUncertain
	}
	return QualityBad
}

// Int reads an integer metric (bdSeq, Node Control/Rebirth as a number) in
// whichever integer field it is.
func Int(m *Metric) (uint64, bool) {
	switch x := m.GetValue().(type) {
	case *pb.Payload_Metric_IntValue:
		return uint64(x.IntValue), true
	case *pb.Payload_Metric_LongValue:
		return x.LongValue, true
	}
	return 0, false
}

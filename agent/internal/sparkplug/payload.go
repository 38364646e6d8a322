package sparkplug

// The Sparkplug B payloads of the edge node, written and read with protowire
// instead of the generated code of wire/sparkplug/sparkplugpb: the generated
// code brings the whole protobuf runtime (reflection, descriptors, text
// format), about 1.5 MB of the agent binary, for five messages written and
// one read. Field numbers are those of sparkplug_b.proto
// (wire/sparkplug/sparkplugpb); payload_test.go checks every message written
// here against the generated code, and NCMD payloads made by it against
// decodeNCMD.

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/weftiot/weft/wire"
)

// dataType is a Sparkplug B datatype (enum DataType of sparkplug_b.proto),
// limited to those the edge node writes.
type dataType uint32

const (
	dtInt32   dataType = 3
	dtInt64   dataType = 4
	dtUInt64  dataType = 8
	dtFloat   dataType = 9
	dtDouble  dataType = 10
	dtBoolean dataType = 11
	dtString  dataType = 12
)

func (dt dataType) String() string {
	switch dt {
	case dtInt32:
		return "Int32"
	case dtInt64:
		return "Int64"
	case dtUInt64:
		return "UInt64"
	case dtFloat:
		return "Float"
	case dtDouble:
		return "Double"
	case dtBoolean:
		return "Boolean"
	case dtString:
		return "String"
	}
	return fmt.Sprintf("DataType(%d)", uint32(dt))
}

// Field numbers of sparkplug_b.proto.
const (
	fPayloadTimestamp protowire.Number = 1
	fPayloadMetrics   protowire.Number = 2
	fPayloadSeq       protowire.Number = 3

	fMetricName       protowire.Number = 1
	fMetricAlias      protowire.Number = 2
	fMetricTimestamp  protowire.Number = 3
	fMetricDatatype   protowire.Number = 4
	fMetricHistorical protowire.Number = 5
	fMetricIsNull     protowire.Number = 7
	fMetricProperties protowire.Number = 9
	fMetricLong       protowire.Number = 11
	fMetricFloat      protowire.Number = 12
	fMetricDouble     protowire.Number = 13
	fMetricBoolean    protowire.Number = 14
	fMetricString     protowire.Number = 15

	fPropertySetKeys   protowire.Number = 1
	fPropertySetValues protowire.Number = 2

	fPropertyType   protowire.Number = 1
	fPropertyInt    protowire.Number = 3
	fPropertyString protowire.Number = 8
)

// dataTypeOf is the datatype the node gives a point whose values are of kind
// k: Double, Int64, UInt64, Boolean or String (0 for Null). It is
// wire/sparkplug.DataTypeOf, which the gateway reads back.
func dataTypeOf(k wire.Kind) dataType {
	switch k {
	case wire.Float:
		return dtDouble
	case wire.Int:
		return dtInt64
	case wire.Uint:
		return dtUInt64
	case wire.Bool:
		return dtBoolean
	case wire.String:
		return dtString
	}
	return 0
}

// fits reports whether a value of kind k can be sent as datatype dt without
// a rebirth: the same type, or a number into Double (wire/sparkplug.Fits).
func fits(dt dataType, k wire.Kind) bool {
	if k == wire.Null {
		return true
	}
	if dataTypeOf(k) == dt {
		return true
	}
	switch dt {
	case dtDouble, dtFloat:
		return k == wire.Int || k == wire.Uint || k == wire.Float
	}
	return false
}

// payload is a Sparkplug B payload as the edge node writes it.
type payload struct {
	timestamp uint64 // ms since the epoch; always written
	seq       uint64
	hasSeq    bool // NDEATH has no seq
	metrics   []metric
}

// metric is one metric of a payload. Zero fields are left out, except where
// a has- flag says otherwise.
type metric struct {
	name      string // births; DATA goes by alias
	alias     uint64 // aliases start at 1
	timestamp uint64
	hasTS     bool
	// declared is the datatype field (births); DATA leaves it out.
	declared   dataType
	historical bool
	// null writes is_null and no value; otherwise value is written as
	// datatype as (see setValue).
	null  bool
	as    dataType
	value wire.Value
	// quality other than Good is written as property Quality (Int32, an
	// OPC DA code); unit as property engUnit (String), after it.
	quality wire.Quality
	unit    string
}

// setValue makes v the metric's value, written as datatype dt. A Null value
// sets null. It does not set declared: a DATA message leaves it out.
func (m *metric) setValue(dt dataType, v wire.Value) error {
	if v.Kind() == wire.Null {
		m.null = true
		return nil
	}
	if !fits(dt, v.Kind()) {
		return fmt.Errorf("metric %q alias %d: a %v value for datatype %v", m.name, m.alias, v.Kind(), dt)
	}
	switch dt {
	case dtDouble, dtFloat, dtInt64, dtUInt64, dtBoolean, dtString:
	default:
		return fmt.Errorf("metric %q alias %d: the edge node does not write datatype %v", m.name, m.alias, dt)
	}
	m.null, m.as, m.value = false, dt, v
	return nil
}

// OPC DA quality codes carried in property Quality (wire/sparkplug.QualityCode).
func qualityCode(q wire.Quality) int32 {
	switch q {
	case wire.Good:
		return 192
	case wire.Uncertain:
		return 64
	}
	return 0
}

// encode serialises p, its fields in field-number order as the generated
// code writes them.
func (p *payload) encode() []byte {
	b := make([]byte, 0, 16+48*len(p.metrics))
	b = protowire.AppendTag(b, fPayloadTimestamp, protowire.VarintType)
	b = protowire.AppendVarint(b, p.timestamp)
	var mb []byte
	for i := range p.metrics {
		mb = p.metrics[i].append(mb[:0])
		b = protowire.AppendTag(b, fPayloadMetrics, protowire.BytesType)
		b = protowire.AppendBytes(b, mb)
	}
	if p.hasSeq {
		b = protowire.AppendTag(b, fPayloadSeq, protowire.VarintType)
		b = protowire.AppendVarint(b, p.seq)
	}
	return b
}

// append appends the encoding of m (without its tag and length).
func (m *metric) append(b []byte) []byte {
	if m.name != "" {
		b = protowire.AppendTag(b, fMetricName, protowire.BytesType)
		b = protowire.AppendString(b, m.name)
	}
	if m.alias != 0 {
		b = protowire.AppendTag(b, fMetricAlias, protowire.VarintType)
		b = protowire.AppendVarint(b, m.alias)
	}
	if m.hasTS {
		b = protowire.AppendTag(b, fMetricTimestamp, protowire.VarintType)
		b = protowire.AppendVarint(b, m.timestamp)
	}
	if m.declared != 0 {
		b = protowire.AppendTag(b, fMetricDatatype, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(m.declared))
	}
	if m.historical {
		b = protowire.AppendTag(b, fMetricHistorical, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	if m.null {
		b = protowire.AppendTag(b, fMetricIsNull, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	if m.quality != wire.Good || m.unit != "" {
		b = protowire.AppendTag(b, fMetricProperties, protowire.BytesType)
		b = protowire.AppendBytes(b, m.properties())
	}
	if m.null {
		return b
	}
	switch m.as {
	case dtDouble:
		f, _ := m.value.Float()
		b = protowire.AppendTag(b, fMetricDouble, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(f))
	case dtFloat:
		f, _ := m.value.Float()
		b = protowire.AppendTag(b, fMetricFloat, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(float32(f)))
	case dtInt64:
		b = protowire.AppendTag(b, fMetricLong, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(m.value.Int()))
	case dtUInt64:
		b = protowire.AppendTag(b, fMetricLong, protowire.VarintType)
		b = protowire.AppendVarint(b, m.value.Uint())
	case dtBoolean:
		b = protowire.AppendTag(b, fMetricBoolean, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeBool(m.value.Bool()))
	case dtString:
		b = protowire.AppendTag(b, fMetricString, protowire.BytesType)
		b = protowire.AppendString(b, m.value.Str())
	}
	return b
}

// properties is the PropertySet of m: keys first, then values, in the same
// order (Quality, then engUnit).
func (m *metric) properties() []byte {
	var b, v []byte
	if m.quality != wire.Good {
		b = protowire.AppendTag(b, fPropertySetKeys, protowire.BytesType)
		b = protowire.AppendString(b, "Quality")
	}
	if m.unit != "" {
		b = protowire.AppendTag(b, fPropertySetKeys, protowire.BytesType)
		b = protowire.AppendString(b, "engUnit")
	}
	if m.quality != wire.Good {
		v = protowire.AppendTag(v[:0], fPropertyType, protowire.VarintType)
		v = protowire.AppendVarint(v, uint64(dtInt32))
		v = protowire.AppendTag(v, fPropertyInt, protowire.VarintType)
		v = protowire.AppendVarint(v, uint64(uint32(qualityCode(m.quality))))
		b = protowire.AppendTag(b, fPropertySetValues, protowire.BytesType)
		b = protowire.AppendBytes(b, v)
	}
	if m.unit != "" {
		v = protowire.AppendTag(v[:0], fPropertyType, protowire.VarintType)
		v = protowire.AppendVarint(v, uint64(dtString))
		v = protowire.AppendTag(v, fPropertyString, protowire.BytesType)
		v = protowire.AppendString(v, m.unit)
		b = protowire.AppendTag(b, fPropertySetValues, protowire.BytesType)
		b = protowire.AppendBytes(b, v)
	}
	return b
}

// maxNCMD bounds the NCMD payload decodeNCMD reads (as wire/sparkplug.MaxPayload).
const maxNCMD = 16 << 20

// errNCMD is wrapped by every error of decodeNCMD.
var errNCMD = errors.New("malformed Sparkplug B NCMD payload")

// decodeNCMD reads an NCMD payload and reports whether it asks for a
// rebirth: a metric named Node Control/Rebirth whose value is boolean_value
// true. It reads the payload as proto.Unmarshal does (the last of a repeated
// scalar field wins, as does the last member of the value oneof; a field of
// an unexpected wire type is an unknown field, skipped) but looks inside only
// the payload and its metrics: fields it does not need are skipped whole, so
// it accepts a payload whose unread parts (properties, a DataSet) are
// malformed, where the generated code would refuse it.
func decodeNCMD(b []byte) (rebirth bool, err error) {
	if len(b) > maxNCMD {
		return false, fmt.Errorf("NCMD payload of %d bytes, limit %d: %w", len(b), maxNCMD, errNCMD)
	}
	for i := 0; len(b) > 0; {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			return false, fmt.Errorf("NCMD payload: %w", err)
		}
		if num == fPayloadMetrics && typ == protowire.BytesType {
			mb, m := protowire.ConsumeBytes(b[n:])
			if m < 0 {
				return false, fmt.Errorf("NCMD payload: metric %d: %w: %v", i, errNCMD, protowire.ParseError(m))
			}
			r, err := rebirthMetric(mb)
			if err != nil {
				return false, fmt.Errorf("NCMD payload: metric %d: %w", i, err)
			}
			rebirth = rebirth || r
			i++
			b = b[n+m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return false, fmt.Errorf("NCMD payload: field %d: %w: %v", num, errNCMD, protowire.ParseError(m))
		}
		b = b[n+m:]
	}
	return rebirth, nil
}

// rebirthMetric reports whether the encoded metric b is Node
// Control/Rebirth = true.
func rebirthMetric(b []byte) (bool, error) {
	var (
		name     string
		boolean  bool // the value oneof's last member is boolean_value
		value    bool
		consumed int
	)
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			return false, err
		}
		b = b[n:]
		switch {
		case num == fMetricName && typ == protowire.BytesType:
			var s []byte
			s, consumed = protowire.ConsumeBytes(b)
			name = string(s)
		case num == fMetricBoolean && typ == protowire.VarintType:
			var v uint64
			v, consumed = protowire.ConsumeVarint(b)
			boolean, value = true, protowire.DecodeBool(v)
		case isValueField(num, typ):
			consumed = protowire.ConsumeFieldValue(num, typ, b)
			boolean = false
		default:
			consumed = protowire.ConsumeFieldValue(num, typ, b)
		}
		if consumed < 0 {
			return false, fmt.Errorf("field %d: %w: %v", num, errNCMD, protowire.ParseError(consumed))
		}
		b = b[consumed:]
	}
	return name == "Node Control/Rebirth" && boolean && value, nil
}

// consumeTag is protowire.ConsumeTag refusing, as proto.Unmarshal does,
// field numbers above protowire.MaxValidNumber.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int, error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, n, fmt.Errorf("field tag: %w: %v", errNCMD, protowire.ParseError(n))
	}
	if num > protowire.MaxValidNumber {
		return 0, 0, -1, fmt.Errorf("field tag: %w: field number %d out of range", errNCMD, num)
	}
	return num, typ, n, nil
}

// isValueField reports whether a field of the metric's value oneof, other
// than boolean_value, is there with the wire type of its declaration (one of
// another wire type is an unknown field and leaves the oneof alone).
func isValueField(num protowire.Number, typ protowire.Type) bool {
	switch num {
	case 10, 11: // int_value, long_value
		return typ == protowire.VarintType
	case fMetricFloat:
		return typ == protowire.Fixed32Type
	case fMetricDouble:
		return typ == protowire.Fixed64Type
	case fMetricString, 16, 17, 18, 19: // string, bytes, dataset, template, extension
		return typ == protowire.BytesType
	}
	return false
}

package opcua

import (
	"encoding/base64"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/weftiot/weft/wire"
)

// Quality maps an OPC UA StatusCode to a sample's quality by its two top bits
// (Part 4, 7.39): 00 good, 01 uncertain, 10 and 11 bad.
func Quality(code ua.StatusCode) wire.Quality {
	switch uint32(code) >> 30 {
	case 0:
		return wire.Good
	case 1:
		return wire.Uncertain
	}
	return wire.Bad
}

// timestamp is the sample's time in ms: the server's SourceTimestamp when
// present, else its ServerTimestamp, else now.
func timestamp(dv *ua.DataValue, now time.Time) int64 {
	switch {
	case dv != nil && !dv.SourceTimestamp.IsZero():
		return dv.SourceTimestamp.UnixMilli()
	case dv != nil && !dv.ServerTimestamp.IsZero():
		return dv.ServerTimestamp.UnixMilli()
	}
	return now.UnixMilli()
}

// appendSamples converts one DataValue of a point into samples and appends
// them to out. A scalar gives one sample named point; an array gives one
// sample per element named point[i] (a multi-dimensional array is flattened
// in row-major order). A value of a type Weft cannot carry (a structure,
// for example) gives one Bad sample with code BadTypeMismatch, and err says
// which type it was; the sample is still appended so the gap is visible.
func appendSamples(out []wire.Sample, device, point string, dv *ua.DataValue, now time.Time) ([]wire.Sample, error) {
	s := wire.Sample{Device: device, Point: point, TS: timestamp(dv, now)}
	if dv == nil {
		s.Quality, s.Code = wire.Bad, uint32(ua.StatusBadNoData)
		return append(out, s), nil
	}
	s.Quality = Quality(dv.Status)
	if s.Quality != wire.Good {
		s.Code = uint32(dv.Status)
	}
	if dv.Value == nil || dv.Value.Type() == ua.TypeIDNull {
		return append(out, s), nil
	}
	if !dv.Value.Has(ua.VariantArrayValues) {
		v, err := scalar(dv.Value.Value())
		if err != nil {
			s.Quality, s.Code = wire.Bad, uint32(ua.StatusBadTypeMismatch)
			return append(out, s), fmt.Errorf("point %q: %w", point, err)
		}
		s.Value = v
		return append(out, s), nil
	}
	var elems []any
	depth := max(1, len(dv.Value.ArrayDimensions()))
	flatten(reflect.ValueOf(dv.Value.Value()), depth, &elems)
	var firstErr error
	for i, e := range elems {
		es := s
		es.Point = point + "[" + strconv.Itoa(i) + "]"
		v, err := scalar(e)
		if err != nil {
			es.Quality, es.Code = wire.Bad, uint32(ua.StatusBadTypeMismatch)
			if firstErr == nil {
				firstErr = fmt.Errorf("point %q: element %d: %w", point, i, err)
			}
		}
		es.Value = v
		out = append(out, es)
	}
	return out, firstErr
}

func flatten(v reflect.Value, depth int, out *[]any) {
	if !v.IsValid() {
		return
	}
	if depth == 0 || v.Kind() != reflect.Slice {
		*out = append(*out, v.Interface())
		return
	}
	for i := range v.Len() {
		flatten(v.Index(i), depth-1, out)
	}
}

// scalar converts one decoded OPC UA value:
//
//	Boolean                  → bool
//	SByte, Int16/32/64       → int
//	Byte, UInt16/32/64       → uint
//	Float, Double            → float (a Float keeps its shortest decimal form)
//	String, XmlElement       → string
//	DateTime                 → int, milliseconds since the Unix epoch (UTC);
//	                           the OPC UA null time gives a null value
//	ByteString               → string, standard base64
//	LocalizedText            → string, its text
//	QualifiedName            → string, ns:name
//	NodeId, ExpandedNodeId   → string, ns=..;s=..
//	Guid                     → string
//	StatusCode               → uint
//
// Structures (ExtensionObject), DataValue, Variant and DiagnosticInfo are
// refused with an error.
func scalar(x any) (wire.Value, error) {
	switch v := x.(type) {
	case nil:
		return wire.Value{}, nil
	case bool:
		return wire.BoolValue(v), nil
	case int8:
		return wire.IntValue(int64(v)), nil
	case int16:
		return wire.IntValue(int64(v)), nil
	case int32:
		return wire.IntValue(int64(v)), nil
	case int64:
		return wire.IntValue(v), nil
	case uint8:
		return wire.UintValue(uint64(v)), nil
	case uint16:
		return wire.UintValue(uint64(v)), nil
	case uint32:
		return wire.UintValue(uint64(v)), nil
	case uint64:
		return wire.UintValue(v), nil
	case float32:
		return wire.Float32Value(v), nil
	case float64:
		return wire.FloatValue(v), nil
	case string:
		return wire.StringValue(v), nil
	case ua.XMLElement:
		return wire.StringValue(string(v)), nil
	case time.Time:
		if v.IsZero() || v.Equal(time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC)) {
			return wire.Value{}, nil
		}
		return wire.IntValue(v.UnixMilli()), nil
	case []byte:
		return wire.StringValue(base64.StdEncoding.EncodeToString(v)), nil
	case *ua.LocalizedText:
		if v == nil {
			return wire.Value{}, nil
		}
		return wire.StringValue(v.Text), nil
	case *ua.QualifiedName:
		if v == nil {
			return wire.Value{}, nil
		}
		return wire.StringValue(strconv.Itoa(int(v.NamespaceIndex)) + ":" + v.Name), nil
	case *ua.NodeID:
		if v == nil {
			return wire.Value{}, nil
		}
		return wire.StringValue(v.String()), nil
	case *ua.ExpandedNodeID:
		if v == nil || v.NodeID == nil {
			return wire.Value{}, nil
		}
		return wire.StringValue(v.String()), nil
	case *ua.GUID:
		if v == nil {
			return wire.Value{}, nil
		}
		return wire.StringValue(v.String()), nil
	case ua.StatusCode:
		return wire.UintValue(uint64(v)), nil
	}
	return wire.Value{}, fmt.Errorf("value of type %s cannot be carried (Weft takes numbers, booleans, strings, date-times and byte strings)", typeName(x))
}

func typeName(x any) string {
	switch x.(type) {
	case *ua.ExtensionObject:
		return "ExtensionObject (a structure)"
	case *ua.DataValue:
		return "DataValue"
	case *ua.Variant:
		return "Variant"
	case *ua.DiagnosticInfo:
		return "DiagnosticInfo"
	}
	return fmt.Sprintf("%T", x)
}

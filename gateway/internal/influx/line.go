// Package influx stores batches in InfluxDB through influxdb-client-go/v2 and
// reads recent samples back for the API.
//
// Schema (docs/gateway.md has the full story): one measurement (default
// "weft"); tags agent, device, point, site; the value in a field named for its
// kind — value (float), value_int (integer), value_bool (boolean), value_str
// (string) — so that points of different types can share the measurement
// without field type conflicts; a non-good sample also writes quality
// (string) and, when the source gave one, code (integer). The timestamp is the
// sample's source time in milliseconds, so writing a batch twice stores each
// point once.
package influx

import (
	"math"
	"strconv"

	"github.com/weftiot/weft/wire"
)

// Field names, one per value kind. Integers and unsigned integers share
// value_int; an unsigned value above the int64 range goes to value (float).
const (
	FieldFloat   = "value"
	FieldInt     = "value_int"
	FieldBool    = "value_bool"
	FieldString  = "value_str"
	FieldQuality = "quality"
	FieldCode    = "code"
)

// appendLine appends the line-protocol line of one sample, with its newline.
// It returns dst unchanged and false when the sample has nothing to write (a
// good sample without a value, or a float that is not finite).
func appendLine(dst []byte, measurement string, b *wire.Batch, s *wire.Sample) ([]byte, bool) {
	start := len(dst)
	dst = appendEscaped(dst, measurement, escMeasurement)
	// Tags in key order: agent, device, point, site (InfluxDB sorts them
	// anyway; sorted input saves it the work).
	dst = append(dst, ",agent="...)
	dst = appendEscaped(dst, b.Agent, escTag)
	dst = append(dst, ",device="...)
	dst = appendEscaped(dst, s.Device, escTag)
	dst = append(dst, ",point="...)
	dst = appendEscaped(dst, s.Point, escTag)
	dst = append(dst, ",site="...)
	dst = appendEscaped(dst, b.Site, escTag)
	dst = append(dst, ' ')
	fields := 0
	v := s.Value
	switch v.Kind() {
	case wire.Float:
		f, _ := v.Float()
		if !math.IsNaN(f) && !math.IsInf(f, 0) {
			dst = append(dst, FieldFloat+"="...)
			dst = strconv.AppendFloat(dst, f, 'g', -1, 64)
			fields++
		}
	case wire.Int:
		dst = append(dst, FieldInt+"="...)
		dst = strconv.AppendInt(dst, v.Int(), 10)
		dst = append(dst, 'i')
		fields++
	case wire.Uint:
		if u := v.Uint(); u <= math.MaxInt64 {
			dst = append(dst, FieldInt+"="...)
			dst = strconv.AppendUint(dst, u, 10)
			dst = append(dst, 'i')
		} else {
			dst = append(dst, FieldFloat+"="...)
			dst = strconv.AppendFloat(dst, float64(u), 'g', -1, 64)
		}
		fields++
	case wire.Bool:
		dst = append(dst, FieldBool+"="...)
		dst = strconv.AppendBool(dst, v.Bool())
		fields++
	case wire.String:
		dst = append(dst, FieldString+`="`...)
		dst = appendEscaped(dst, v.Str(), escString)
		dst = append(dst, '"')
		fields++
	}
	if s.Quality != wire.Good {
		if fields > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, FieldQuality+`="`...)
		dst = append(dst, s.Quality.String()...)
		dst = append(dst, '"')
		fields++
		if s.Code != 0 {
			dst = append(dst, ","+FieldCode+"="...)
			dst = strconv.AppendUint(dst, uint64(s.Code), 10)
			dst = append(dst, 'i')
		}
	}
	if fields == 0 {
		return dst[:start], false
	}
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, s.TS, 10)
	dst = append(dst, '\n')
	return dst, true
}

type escaping uint8

const (
	escMeasurement escaping = iota // comma, space
	escTag                         // comma, equals sign, space
	escString                      // double quote, backslash
)

// appendEscaped appends s escaped for its place in a line. A newline or
// carriage return in a name would end the line, so it becomes a space there;
// in a string field value InfluxDB keeps it.
func appendEscaped(dst []byte, s string, e escaping) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch e {
		case escMeasurement, escTag:
			switch c {
			case ',', ' ':
				dst = append(dst, '\\')
			case '=':
				if e == escTag {
					dst = append(dst, '\\')
				}
			case '\n', '\r', '\t':
				c = ' '
				dst = append(dst, '\\')
			case '\\':
				// A trailing backslash would escape the separator after
				// it; doubling is not understood by InfluxDB 1.x in tags,
				// so replace it.
				if i == len(s)-1 {
					c = '/'
				}
			}
		case escString:
			if c == '"' || c == '\\' {
				dst = append(dst, '\\')
			}
		}
		dst = append(dst, c)
	}
	return dst
}

// Package wire is the contract between the Weft agent and the platform gateway:
// the MQTT topics, the data batch, and the status, health, command and reply
// messages. Both binaries import it; docs/wire.md describes it for everyone else.
//
// The contract is versioned: every message carries "v". Version 1 is compact
// JSON so that mosquitto_sub shows it readably.
package wire

import (
	"math"
	"strconv"
)

// Version is the contract version this package writes and the only one it reads.
const Version = 1

// Quality says how far a sample can be trusted.
type Quality uint8

// Qualities, ordered from best to worst. The zero value is Good.
const (
	Good Quality = iota
	Uncertain
	Bad
)

func (q Quality) String() string {
	switch q {
	case Good:
		return "good"
	case Uncertain:
		return "uncertain"
	case Bad:
		return "bad"
	}
	return "invalid"
}

// ParseQuality is the inverse of Quality.String.
func ParseQuality(s string) (Quality, bool) {
	switch s {
	case "good":
		return Good, true
	case "uncertain":
		return Uncertain, true
	case "bad":
		return Bad, true
	}
	return 0, false
}

// Kind is the type of a Value.
type Kind uint8

// Kinds of value. Null is the zero Value: a bad sample may carry no value.
const (
	Null Kind = iota
	Float
	Int
	Uint
	Bool
	String
)

// String is the kind's name as messages show it: null, float, int, uint,
// bool, string.
func (k Kind) String() string {
	switch k {
	case Float:
		return "float"
	case Int:
		return "int"
	case Uint:
		return "uint"
	case Bool:
		return "bool"
	case String:
		return "string"
	}
	return "null"
}

// Value is one reading: a number, a boolean or a string. It is a small value
// type so that samples need no allocation per value.
type Value struct {
	kind Kind
	bits uint64 // float64 bits, int64, uint64, or 0/1 for Bool
	str  string
}

// FloatValue, IntValue, UintValue, BoolValue and StringValue make Values.
func FloatValue(f float64) Value { return Value{kind: Float, bits: math.Float64bits(f)} }
func IntValue(i int64) Value     { return Value{kind: Int, bits: uint64(i)} }
func UintValue(u uint64) Value   { return Value{kind: Uint, bits: u} }
func StringValue(s string) Value { return Value{kind: String, str: s} }
func BoolValue(b bool) Value {
	if b {
		return Value{kind: Bool, bits: 1}
	}
	return Value{kind: Bool}
}

// Kind reports the type of v.
func (v Value) Kind() Kind { return v.kind }

// Float returns v as a float64: numbers convert, a Bool is 0 or 1, and a String
// or Null gives ok=false. Deadbands and scaling use it.
func (v Value) Float() (f float64, ok bool) {
	switch v.kind {
	case Float:
		return math.Float64frombits(v.bits), true
	case Int:
		return float64(int64(v.bits)), true
	case Uint:
		return float64(v.bits), true
	case Bool:
		return float64(v.bits), true
	}
	return 0, false
}

// Int returns the int64 of an Int value.
func (v Value) Int() int64 { return int64(v.bits) }

// Uint returns the uint64 of a Uint value.
func (v Value) Uint() uint64 { return v.bits }

// Bool returns the boolean of a Bool value.
func (v Value) Bool() bool { return v.bits != 0 }

// Str returns the string of a String value.
func (v Value) Str() string { return v.str }

// Equal reports whether a and b are the same kind and the same value
// (float NaNs are equal to each other here, so an unchanged NaN is unchanged).
func (a Value) Equal(b Value) bool { return a.kind == b.kind && a.bits == b.bits && a.str == b.str }

// Sample is one reading of one point, stamped at its source.
type Sample struct {
	Device  string
	Point   string
	Value   Value
	Quality Quality
	// Code is the source's own status code for a non-good sample (an OPC UA
	// StatusCode, a Modbus exception code); 0 when there is none.
	Code uint32
	// TS is the source time in milliseconds since the Unix epoch.
	TS int64
}

// Batch is one data message: the samples of one agent, numbered by a sequence
// that only ever grows for that agent, across restarts too.
type Batch struct {
	Agent   string
	Site    string
	Seq     uint64
	Samples []Sample
}

// Float32Value makes a Float from a device's float32 the way a person reads
// it: the shortest decimal that is the same float32 (0.9986583, not the
// 0.998658299446106 a plain widening to float64 shows). Modbus and OPC UA
// devices report float32; operators and InfluxDB see the digits the device meant.
func Float32Value(f float32) Value {
	var buf [32]byte
	b := strconv.AppendFloat(buf[:0], float64(f), 'g', -1, 32)
	d, err := strconv.ParseFloat(string(b), 64)
	if err != nil { // NaN and Inf format as words ParseFloat reads; nothing else fails
		d = float64(f)
	}
	return FloatValue(d)
}

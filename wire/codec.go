package wire

import (
	"math"
	"math/bits"
	"strconv"
	"unicode/utf8"
)

// Limits of a data message. DecodeBatch rejects anything past them with an
// error wrapping ErrTooLarge; an agent must split its batches to stay inside.
const (
	// MaxBatchBytes is the largest data message DecodeBatch accepts.
	MaxBatchBytes = 4 << 20
	// MaxSamples is the most samples one data message may carry.
	MaxSamples = 50_000
	// MaxNameBytes is the longest agent, site, device or point name (UTF-8 bytes).
	MaxNameBytes = 256
	// MaxStringBytes is the longest string value (UTF-8 bytes, after unescaping).
	MaxStringBytes = 64 << 10
	// maxSkipDepth bounds the nesting of values under unknown keys, which are
	// skipped for forward compatibility.
	maxSkipDepth = 32
)

// AppendBatch appends the version 1 JSON encoding of b to dst and returns it.
// It allocates nothing beyond the growth of dst. b.Agent and b.Site must be
// valid topic levels (CheckLevel) and names non-empty, or receivers reject
// the message: validate them once, when the config is loaded.
//
// Encoding rules (docs/wire.md):
//   - keys in a fixed order: v, agent, site, seq, samples; in a sample: device,
//     point, value, quality, code (only when non-zero), ts;
//   - quality is always present ("good", "uncertain" or "bad"); a Quality
//     outside those encodes as "bad";
//   - a Float is written shortest round-trip and always looks like a float
//     ("85.0", "1e+21"), so it decodes as a Float again; Int and Uint are exact;
//   - a Float NaN or ±Inf is not JSON: it is written as null with quality "bad";
//   - strings pass UTF-8 through, escape '"', '\\' and control characters, and
//     replace invalid UTF-8 with U+FFFD.
func AppendBatch(dst []byte, b *Batch) []byte {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, Version, 10)
	dst = append(dst, `,"agent":`...)
	dst = appendString(dst, b.Agent)
	dst = append(dst, `,"site":`...)
	dst = appendString(dst, b.Site)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, b.Seq, 10)
	dst = append(dst, `,"samples":[`...)
	for i := range b.Samples {
		s := &b.Samples[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"device":`...)
		dst = appendString(dst, s.Device)
		dst = append(dst, `,"point":`...)
		dst = appendString(dst, s.Point)
		dst = append(dst, `,"value":`...)
		q := s.Quality
		if q > Bad {
			q = Bad
		}
		var finite bool
		dst, finite = appendValue(dst, s.Value)
		if !finite {
			q = Bad
		}
		dst = append(dst, `,"quality":"`...)
		dst = append(dst, q.String()...)
		dst = append(dst, '"')
		if s.Code != 0 {
			dst = append(dst, `,"code":`...)
			dst = strconv.AppendUint(dst, uint64(s.Code), 10)
		}
		dst = append(dst, `,"ts":`...)
		dst = strconv.AppendInt(dst, s.TS, 10)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

// appendValue writes v as a JSON value. finite is false when v was a NaN or
// infinite Float, which is written as null.
func appendValue(dst []byte, v Value) (_ []byte, finite bool) {
	switch v.kind {
	case Float:
		f := math.Float64frombits(v.bits)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return append(dst, "null"...), false
		}
		return appendFloat(dst, f), true
	case Int:
		return strconv.AppendInt(dst, int64(v.bits), 10), true
	case Uint:
		return strconv.AppendUint(dst, v.bits, 10), true
	case Bool:
		if v.bits != 0 {
			return append(dst, "true"...), true
		}
		return append(dst, "false"...), true
	case String:
		return appendString(dst, v.str), true
	}
	return append(dst, "null"...), true
}

// appendFloat writes a finite f in the shortest form that reads back as the
// same float64, and always with a '.' or an exponent so that it is not taken
// for an integer. Like encoding/json it uses exponent form only for very large
// or very small magnitudes.
func appendFloat(dst []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// 1e-07 reads better as 1e-7.
		n := len(dst)
		if n-start >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
		return dst
	}
	for _, c := range dst[start:] {
		if c == '.' {
			return dst
		}
	}
	return append(dst, ".0"...)
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// DecodeBatch decodes one data message into b, reusing the storage of
// b.Samples and, where the bytes are the same, the strings already in b.
// It rejects anything malformed or past a limit with a *DecodeError that says
// what and where; b.Samples is then empty and the rest of b unspecified.
// The strings in b never alias data, so they stay valid after data is
// reused; the array behind b.Samples is overwritten by the next decode into
// b, so a receiver that keeps samples must copy them or decode into a new
// Batch.
//
// Decoding rules (docs/wire.md): "v" must be the first key and equal Version;
// agent, site, seq and samples are required, and in a sample device, point,
// value, quality and ts; code is optional; unknown keys are skipped anywhere
// (forward compatibility); a duplicate key is an error. A number without '.'
// or exponent is an Int (a Uint above MaxInt64, a Float past the uint64 range),
// any other number a Float. ts must be an integer.
func DecodeBatch(data []byte, b *Batch) error {
	prev := b.Samples
	b.Samples = b.Samples[:0]
	if len(data) > MaxBatchBytes {
		return &DecodeError{Offset: MaxBatchBytes, Sample: -1, Err: ErrTooLarge,
			Reason: "message is " + strconv.Itoa(len(data)) + " bytes, the limit is " + strconv.Itoa(MaxBatchBytes)}
	}
	d := decoder{data: data, sample: -1}
	if err := d.batch(b, prev); err != nil {
		b.Samples = b.Samples[:0]
		return err
	}
	return nil
}

// decoder is a hand-written scanner over one message.
type decoder struct {
	data    []byte
	pos     int
	sample  int    // index of the sample being decoded, or -1
	key     string // key being decoded, for errors
	scratch []byte // unescaped string bytes, only when a string has escapes
}

func (d *decoder) fail(cat error, reason string) error {
	return &DecodeError{Offset: d.pos, Sample: d.sample, Key: d.key, Reason: reason, Err: cat}
}

func (d *decoder) malformed(reason string) error { return d.fail(ErrMalformed, reason) }

func (d *decoder) skipWS() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// describe names the byte at the current position for an error message.
func (d *decoder) describe() string {
	if d.pos >= len(d.data) {
		return "end of message"
	}
	c := d.data[d.pos]
	if c >= 0x20 && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	return "byte 0x" + string([]byte{hexDigits[c>>4], hexDigits[c&0xf]})
}

// expect consumes c after optional whitespace.
func (d *decoder) expect(c byte, what string) error {
	d.skipWS()
	if d.pos < len(d.data) && d.data[d.pos] == c {
		d.pos++
		return nil
	}
	return d.malformed("want " + what + ", found " + d.describe())
}

// Bits for the keys seen in an object, to find missing and duplicate keys:
// the keys of a data message, then those of a sample. Bit 1<<i is keyNames[i].
const (
	seenV = 1 << iota
	seenAgent
	seenSite
	seenSeq
	seenSamples
	seenDevice
	seenPoint
	seenValue
	seenQuality
	seenCode
	seenTS

	batchKeys      = seenV | seenAgent | seenSite | seenSeq | seenSamples
	batchRequired  = batchKeys
	sampleKeys     = seenDevice | seenPoint | seenValue | seenQuality | seenCode | seenTS
	sampleRequired = sampleKeys &^ seenCode
)

var keyNames = [...]string{"v", "agent", "site", "seq", "samples", "device", "point", "value", "quality", "code", "ts"}

func keyBit(key []byte) int {
	switch string(key) {
	case "v":
		return seenV
	case "agent":
		return seenAgent
	case "site":
		return seenSite
	case "seq":
		return seenSeq
	case "samples":
		return seenSamples
	case "device":
		return seenDevice
	case "point":
		return seenPoint
	case "value":
		return seenValue
	case "quality":
		return seenQuality
	case "code":
		return seenCode
	case "ts":
		return seenTS
	}
	return 0
}

// member moves to the next key of an object whose '{' is consumed, for the
// loops of batch and oneSample: at the first it takes the '}' of an empty
// object, after a value the ',' or the closing '}' (end is true at a '}').
// It returns the key's bit if it is one of known (0 for a key this build does
// not know: the caller skips its value) and where the key starts, with
// d.key naming it for the errors of its value. A known key written twice is
// an error.
func (d *decoder) member(known int, seen *int, first bool) (bit, keyAt int, end bool, err error) {
	d.key = ""
	d.skipWS()
	switch {
	case first && d.pos < len(d.data) && d.data[d.pos] == '}':
		d.pos++
		return 0, 0, true, nil
	case first:
	case d.pos < len(d.data) && d.data[d.pos] == ',':
		d.pos++
		d.skipWS()
	default:
		return 0, 0, true, d.expect('}', `',' or '}'`)
	}
	keyAt = d.pos
	key, err := d.objectKey()
	if err != nil {
		return 0, 0, false, err
	}
	if bit = keyBit(key) & known; bit != 0 {
		d.key = keyNames[bits.TrailingZeros(uint(bit))]
		if *seen&bit != 0 {
			d.pos = keyAt
			return 0, 0, false, d.malformed("duplicate key")
		}
		*seen |= bit
	}
	d.skipWS()
	return bit, keyAt, false, nil
}

// missingKey is the error for the first key in required but not in seen,
// nil when none is missing.
func (d *decoder) missingKey(required, seen int) error {
	if m := required &^ seen; m != 0 {
		return d.malformed(`missing key "` + keyNames[bits.TrailingZeros(uint(m))] + `"`)
	}
	return nil
}

func (d *decoder) batch(b *Batch, prev []Sample) error {
	d.skipWS()
	if d.pos >= len(d.data) {
		return d.malformed("empty message")
	}
	if d.data[d.pos] != '{' {
		return d.malformed("not a JSON object: starts with " + d.describe())
	}
	d.pos++
	seen := 0
	for first := true; ; first = false {
		bit, keyAt, end, err := d.member(batchKeys, &seen, first)
		if err != nil {
			return err
		}
		if end {
			break
		}
		if bit != seenV && seen&seenV == 0 {
			d.pos = keyAt
			d.key = ""
			return d.malformed(`"v" must be the first key`)
		}
		switch bit {
		case seenV:
			at := d.pos
			v, ok, err := d.integer()
			if err != nil {
				return err
			}
			if !ok || v.kind != Int || int64(v.bits) != Version {
				d.pos = at
				return d.fail(ErrVersion, "version "+d.token(at)+" is not supported; this build reads version "+strconv.Itoa(Version))
			}
		case seenAgent:
			if b.Agent, err = d.name(b.Agent, ""); err != nil {
				return err
			}
		case seenSite:
			if b.Site, err = d.name(b.Site, ""); err != nil {
				return err
			}
		case seenSeq:
			at := d.pos
			v, ok, err := d.integer()
			if err != nil {
				return err
			}
			switch {
			case !ok:
				d.pos = at
				return d.malformed("want an unsigned integer, found " + d.token(at))
			case v.kind == Int && int64(v.bits) < 0:
				d.pos = at
				return d.malformed("must not be negative, found " + d.token(at))
			}
			b.Seq = v.bits
		case seenSamples:
			if err := d.samples(b, prev); err != nil {
				return err
			}
		default:
			if err := d.skipValue(0); err != nil {
				return err
			}
		}
	}
	d.skipWS()
	if d.pos != len(d.data) {
		return d.malformed("trailing bytes after the message: " + d.describe())
	}
	d.key = ""
	return d.missingKey(batchRequired, seen)
}

func (d *decoder) samples(b *Batch, prev []Sample) error {
	if err := d.expect('[', "an array of samples"); err != nil {
		return err
	}
	d.skipWS()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		return nil
	}
	var none Sample // the old or last sample of the first ones
	for {
		i := len(b.Samples)
		if i >= MaxSamples {
			return d.fail(ErrTooLarge, "more than "+strconv.Itoa(MaxSamples)+" samples")
		}
		d.sample = i
		var s Sample
		old, last := &none, &none
		if i < len(prev) {
			old = &prev[i]
		}
		if i > 0 {
			last = &b.Samples[i-1]
		}
		if err := d.oneSample(&s, old, last); err != nil {
			return err
		}
		b.Samples = append(b.Samples, s)
		d.sample = -1
		d.key = "samples"
		d.skipWS()
		if d.pos < len(d.data) && d.data[d.pos] == ',' {
			d.pos++
			continue
		}
		return d.expect(']', `',' or ']'`)
	}
}

// oneSample decodes one sample object. old is the sample that was at this
// index before, last the one decoded just before (a zero Sample when there
// is none): their strings are reused when the bytes match, which saves most
// allocations.
func (d *decoder) oneSample(s *Sample, old, last *Sample) error {
	d.key = ""
	if err := d.expect('{', "a sample object"); err != nil {
		return err
	}
	seen := 0
	for first := true; ; first = false {
		bit, _, end, err := d.member(sampleKeys, &seen, first)
		if err != nil {
			return err
		}
		if end {
			break
		}
		switch bit {
		case seenDevice:
			if s.Device, err = d.name(old.Device, last.Device); err != nil {
				return err
			}
		case seenPoint:
			if s.Point, err = d.name(old.Point, last.Point); err != nil {
				return err
			}
		case seenValue:
			if s.Value, err = d.value(old.Value.str); err != nil {
				return err
			}
		case seenQuality:
			at := d.pos
			raw, err := d.str(MaxNameBytes)
			if err != nil {
				return err
			}
			q, ok := ParseQuality(string(raw))
			if !ok {
				d.pos = at
				return d.malformed(`unknown quality ` + strconv.Quote(string(raw)) + `; want "good", "uncertain" or "bad"`)
			}
			s.Quality = q
		case seenCode:
			at := d.pos
			v, ok, err := d.integer()
			if err != nil {
				return err
			}
			if !ok || (v.kind == Int && int64(v.bits) < 0) || v.bits > math.MaxUint32 {
				d.pos = at
				return d.malformed("want an integer 0..4294967295, found " + d.token(at))
			}
			s.Code = uint32(v.bits)
		case seenTS:
			at := d.pos
			v, ok, err := d.integer()
			if err != nil {
				return err
			}
			if !ok || v.kind != Int {
				d.pos = at
				return d.malformed("want an integer number of milliseconds since 1970, found " + d.token(at))
			}
			s.TS = int64(v.bits)
		default:
			if err := d.skipValue(0); err != nil {
				return err
			}
		}
	}
	if seen&sampleRequired != sampleRequired {
		d.pos-- // at the sample's '}'
		return d.missingKey(sampleRequired, seen)
	}
	return nil
}

// objectKey reads `"key"` and the ':' after it.
func (d *decoder) objectKey() ([]byte, error) {
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		return nil, d.malformed("want a key string, found " + d.describe())
	}
	key, err := d.str(MaxNameBytes)
	if err != nil {
		return nil, err
	}
	if err := d.expect(':', "':' after the key"); err != nil {
		return nil, err
	}
	return key, nil
}

// name reads a non-empty string of at most MaxNameBytes that can stand as a
// topic level; it returns reuse1 or reuse2 instead of a new string when the
// bytes are the same.
func (d *decoder) name(reuse1, reuse2 string) (string, error) {
	at := d.pos
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		return "", d.malformed("want a string, found " + d.describe())
	}
	raw, err := d.str(MaxNameBytes)
	if err != nil {
		return "", err
	}
	if len(raw) == 0 {
		d.pos = at
		return "", d.malformed("must not be empty")
	}
	if d.sample < 0 { // agent and site are topic levels
		if err := checkLevel(raw); err != "" {
			d.pos = at
			return "", d.malformed(err)
		}
	}
	switch string(raw) {
	case reuse1:
		return reuse1, nil
	case reuse2:
		return reuse2, nil
	}
	return string(raw), nil
}

// token returns the JSON token that starts at 'at', shortened, for messages.
func (d *decoder) token(at int) string {
	end := at
	for end < len(d.data) && end-at < 40 {
		c := d.data[end]
		if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\n' || c == '\r' || c == '\t' {
			break
		}
		end++
	}
	if end == at {
		return d.describe()
	}
	return strconv.Quote(string(d.data[at:end]))
}

// value reads one sample value: a number, string, boolean or null.
func (d *decoder) value(reuse string) (Value, error) {
	if d.pos >= len(d.data) {
		return Value{}, d.malformed("want a value, found end of message")
	}
	switch c := d.data[d.pos]; {
	case c == '"':
		raw, err := d.str(MaxStringBytes)
		if err != nil {
			return Value{}, err
		}
		if string(raw) == reuse {
			return Value{kind: String, str: reuse}, nil
		}
		return Value{kind: String, str: string(raw)}, nil
	case c == 't':
		return BoolValue(true), d.literal("true")
	case c == 'f':
		return BoolValue(false), d.literal("false")
	case c == 'n':
		return Value{}, d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		v, _, err := d.number()
		return v, err
	case c == '{' || c == '[':
		return Value{}, d.malformed("want a number, string, boolean or null; objects and arrays are not sample values")
	}
	return Value{}, d.malformed("want a value, found " + d.describe())
}

func (d *decoder) literal(word string) error {
	if len(d.data)-d.pos >= len(word) && string(d.data[d.pos:d.pos+len(word)]) == word {
		d.pos += len(word)
		return nil
	}
	return d.malformed("want " + word + ", found " + d.token(d.pos))
}

// integer reads a number and reports whether it was written as an integer
// that fits int64 or uint64 (ok=false for a float or a non-number).
func (d *decoder) integer() (v Value, ok bool, err error) {
	if d.pos >= len(d.data) || !(d.data[d.pos] == '-' || (d.data[d.pos] >= '0' && d.data[d.pos] <= '9')) {
		return Value{}, false, nil
	}
	v, isInt, err := d.number()
	return v, isInt && v.kind != Float, err
}

// number reads a JSON number. isInt says it had no fraction or exponent.
func (d *decoder) number() (v Value, isInt bool, err error) {
	start := d.pos
	p := d.pos
	data := d.data
	neg := false
	if p < len(data) && data[p] == '-' {
		neg = true
		p++
	}
	var u uint64
	overflow := false
	switch {
	case p < len(data) && data[p] == '0':
		p++
	case p < len(data) && data[p] >= '1' && data[p] <= '9':
		for ; p < len(data) && data[p] >= '0' && data[p] <= '9'; p++ {
			dg := uint64(data[p] - '0')
			if u > (math.MaxUint64-dg)/10 {
				overflow = true
			}
			u = u*10 + dg
		}
	default:
		d.pos = p
		return Value{}, false, d.malformed("want a digit, found " + d.describe())
	}
	isInt = true
	if p < len(data) && data[p] == '.' {
		isInt = false
		p++
		if p >= len(data) || data[p] < '0' || data[p] > '9' {
			d.pos = p
			return Value{}, false, d.malformed("want a digit after '.', found " + d.describe())
		}
		for p < len(data) && data[p] >= '0' && data[p] <= '9' {
			p++
		}
	}
	if p < len(data) && (data[p] == 'e' || data[p] == 'E') {
		isInt = false
		p++
		if p < len(data) && (data[p] == '+' || data[p] == '-') {
			p++
		}
		if p >= len(data) || data[p] < '0' || data[p] > '9' {
			d.pos = p
			return Value{}, false, d.malformed("want a digit in the exponent, found " + d.describe())
		}
		for p < len(data) && data[p] >= '0' && data[p] <= '9' {
			p++
		}
	}
	d.pos = p
	if isInt && !overflow {
		switch {
		case !neg && u <= math.MaxInt64:
			return IntValue(int64(u)), true, nil
		case !neg:
			return UintValue(u), true, nil
		case u <= 1<<63:
			return IntValue(int64(-u)), true, nil // -u wraps to the right two's complement
		}
	}
	f, perr := strconv.ParseFloat(string(data[start:p]), 64)
	if perr != nil || math.IsInf(f, 0) {
		d.pos = start
		return Value{}, false, d.malformed("number " + d.token(start) + " is out of the float64 range")
	}
	return FloatValue(f), isInt, nil
}

// str reads a JSON string at d.pos (which is '"') and returns its bytes,
// unescaped, with invalid UTF-8 replaced by U+FFFD. The result aliases the
// message or the scratch buffer: copy it before the next call.
func (d *decoder) str(max int) ([]byte, error) {
	start := d.pos
	if start >= len(d.data) || d.data[start] != '"' {
		return nil, d.malformed("want a string, found " + d.describe())
	}
	data := d.data
	p := start + 1
	// Fast path: no escapes and valid UTF-8, the common case, returns a
	// slice of the message itself.
	for p < len(data) {
		if plainByte[data[p]] {
			p++
			continue
		}
		c := data[p]
		if c == '"' {
			if p-start-1 > max {
				return nil, d.tooLong(start, max)
			}
			d.pos = p + 1
			return data[start+1 : p], nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			d.pos = p
			return nil, d.malformed("control character " + d.describe() + " in a string; escape it")
		}
		r, size := utf8.DecodeRune(data[p:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		p += size
	}
	// Slow path: unescape into the scratch buffer.
	out := append(d.scratch[:0], data[start+1:p]...)
	for {
		if len(out) > max {
			d.scratch = out
			return nil, d.tooLong(start, max)
		}
		if p >= len(data) {
			d.pos = start
			d.scratch = out
			return nil, d.malformed("string is not closed")
		}
		c := data[p]
		switch {
		case c == '"':
			d.pos = p + 1
			d.scratch = out
			return out, nil
		case c < 0x20:
			d.pos = p
			d.scratch = out
			return nil, d.malformed("control character " + d.describe() + " in a string; escape it")
		case c < utf8.RuneSelf && c != '\\':
			out = append(out, c)
			p++
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(data[p:])
			if r == utf8.RuneError && size == 1 {
				out = append(out, "\ufffd"...)
			} else {
				out = append(out, data[p:p+size]...)
			}
			p += size
		default: // backslash
			if p+1 >= len(data) {
				d.pos = p
				d.scratch = out
				return nil, d.malformed("string is not closed")
			}
			e := data[p+1]
			p += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := hex4(data, p)
				if !ok {
					d.pos = p - 2
					d.scratch = out
					return nil, d.malformed(`bad \u escape: want four hex digits`)
				}
				p += 4
				if r >= 0xd800 && r < 0xdc00 {
					// A high surrogate: a low one must follow, else U+FFFD.
					if p+1 < len(data) && data[p] == '\\' && data[p+1] == 'u' {
						if r2, ok := hex4(data, p+2); ok && r2 >= 0xdc00 && r2 < 0xe000 {
							r = 0x10000 + (r-0xd800)<<10 + (r2 - 0xdc00)
							p += 6
						} else {
							r = utf8.RuneError
						}
					} else {
						r = utf8.RuneError
					}
				} else if r >= 0xdc00 && r < 0xe000 {
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
			default:
				d.pos = p - 2
				d.scratch = out
				return nil, d.malformed(`bad escape \` + string(rune(e)) + ` in a string`)
			}
		}
	}
}

// plainByte marks the bytes a JSON string carries as they are: ASCII
// other than control characters, '"' and '\\'.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func hex4(data []byte, p int) (rune, bool) {
	if p+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[p : p+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func (d *decoder) tooLong(start, max int) error {
	d.pos = start
	return d.fail(ErrTooLarge, "string is longer than "+strconv.Itoa(max)+" bytes")
}

// skipValue checks and skips any JSON value under an unknown key, nested at
// most maxSkipDepth deep.
func (d *decoder) skipValue(depth int) error {
	if depth > maxSkipDepth {
		return d.fail(ErrTooLarge, "nested deeper than "+strconv.Itoa(maxSkipDepth)+" levels")
	}
	d.skipWS()
	if d.pos >= len(d.data) {
		return d.malformed("want a value, found end of message")
	}
	switch c := d.data[d.pos]; {
	case c == '"':
		_, err := d.str(MaxBatchBytes)
		return err
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		_, _, err := d.number()
		return err
	case c == '{':
		d.pos++
		d.skipWS()
		if d.pos < len(d.data) && d.data[d.pos] == '}' {
			d.pos++
			return nil
		}
		for {
			d.skipWS()
			if _, err := d.objectKey(); err != nil {
				return err
			}
			if err := d.skipValue(depth + 1); err != nil {
				return err
			}
			d.skipWS()
			if d.pos < len(d.data) && d.data[d.pos] == ',' {
				d.pos++
				continue
			}
			return d.expect('}', `',' or '}'`)
		}
	case c == '[':
		d.pos++
		d.skipWS()
		if d.pos < len(d.data) && d.data[d.pos] == ']' {
			d.pos++
			return nil
		}
		for {
			if err := d.skipValue(depth + 1); err != nil {
				return err
			}
			d.skipWS()
			if d.pos < len(d.data) && d.data[d.pos] == ',' {
				d.pos++
				continue
			}
			return d.expect(']', `',' or ']'`)
		}
	}
	return d.malformed("want a value, found " + d.describe())
}

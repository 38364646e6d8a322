package opcua

import (
	"reflect"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"
)

// FuzzParseBrowsePath: no panic, and what parses formats back to the same
// elements.
func FuzzParseBrowsePath(f *testing.F) {
	for _, s := range []string{"/Objects/2:Loom7/2:Speed", "/Objects/Loom1/Speed", `/a\/b/\1:c`, "/", "//", "/0:", "Objects", `/x\`, "/65536:x", "/1:a:b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseBrowsePath(s)
		if err != nil {
			return
		}
		again, err := ParseBrowsePath(FormatBrowsePath(p))
		if err != nil || !reflect.DeepEqual(p, again) {
			t.Fatalf("%q → %v → %q → %v, %v", s, p, FormatBrowsePath(p), again, err)
		}
	})
}

// FuzzParseNodeID: no panic on any node: key.
func FuzzParseNodeID(f *testing.F) {
	for _, s := range []string{"ns=2;s=Loom7.Speed", "ns=3;i=1001", "i=2258", "ns=1;g=72962b91-fa75-4ae6-8d28-b404dc7daf63", "ns=1;b=3q2+7w==", "ns=;i=", "s=", "ns=99999;i=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseNodeID(s); err == nil && n == nil {
			t.Fatal("nil node id without error")
		}
	})
}

// FuzzVariant decodes arbitrary bytes as an OPC UA Variant, as a server's
// answer would be, and converts it to samples: no panic, and a scalar gives
// exactly one sample.
func FuzzVariant(f *testing.F) {
	for _, v := range []any{true, int8(-1), uint16(7), int64(-5), uint64(1 << 63), float32(0.1), 3.5, "s", time.Unix(1e9, 0),
		[]byte{1, 2}, []float64{1, 2}, &ua.LocalizedText{Text: "x"}, ua.StatusBadSensorFailure} {
		b, err := ua.MustVariant(v).Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x16, 1, 0, 0x30, 0x01, 0, 0, 0, 0, 0}) // an ExtensionObject
	f.Fuzz(func(t *testing.T, b []byte) {
		v, ok := decodeVariant(b)
		if !ok {
			return
		}
		dv := &ua.DataValue{EncodingMask: ua.DataValueValue, Value: v}
		out, _ := appendSamples(nil, "d", "p", dv, time.Unix(0, 0))
		if !v.Has(ua.VariantArrayValues) && len(out) != 1 {
			t.Fatalf("scalar %v gave %d samples", v.Value(), len(out))
		}
	})
}

// decodeVariant runs gopcua's decoder. It panics on some inputs (v0.8.0:
// reflect.MakeSlice with a negative array length other than -1, see
// testdata/fuzz/FuzzVariant/9ffef42897de763a): that is gopcua's bug, on
// its side of the wire, reported upstream's way in docs/opcua.md; this
// target checks Weft's conversion, so such inputs are set aside here.
//
// Multi-dimensional arrays (mask bit 0x40) are set aside too: gopcua's
// split() loops forever when a dimension exceeds the element count (step
// 0), which no recover can catch.
func decodeVariant(b []byte) (v *ua.Variant, ok bool) {
	if len(b) > 0 && b[0]&ua.VariantArrayDimensions != 0 {
		return nil, false
	}
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	v = new(ua.Variant)
	_, err := v.Decode(b)
	return v, err == nil
}

package wire

import (
	"math"
	"testing"
)

func nan() float64 { return math.NaN() }
func TestFloat32ValueDigits(t *testing.T) {
	for _, c := range []struct {
		in   float32
		want float64
	}{{0.9986583, 0.9986583}, {-1234.5, -1234.5}, {1e-38, 1e-38}, {3.4028235e38, 3.4028235e38}, {0, 0}} {
		if got, _ := Float32Value(c.in).Float(); got != c.want {
			t.Errorf("Float32Value(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if got, _ := Float32Value(float32(nan())).Float(); got == got {
		t.Errorf("NaN became %v", got)
	}
}
func BenchmarkFloat32Value(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = Float32Value(float32(i) * 0.37)
	}
}

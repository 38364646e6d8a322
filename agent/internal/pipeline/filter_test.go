package pipeline

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/weftiot/weft/wire"
)

func f64(v float64) *float64 { return &v }

// step is one sample fed to a filter and whether it must be reported.
type step struct {
	v    wire.Value
	q    wire.Quality
	ts   int64 // ms
	want bool
}

func TestFilterReportByException(t *testing.T) {
	fv := wire.FloatValue
	tests := []struct {
		name  string
		rule  Rule
		steps []step
	}{
		{"no deadband reports every poll", Rule{}, []step{
			{fv(1), wire.Good, 0, true},
			{fv(1), wire.Good, 1000, true},
			{fv(1), wire.Good, 2000, true},
		}},
		{"absolute deadband", Rule{Deadband: f64(0.5)}, []step{
			{fv(10), wire.Good, 0, true},
			{fv(10.4), wire.Good, 1000, false},
			{fv(10.5), wire.Good, 2000, false}, // equal to the deadband is not more than it
			{fv(10.51), wire.Good, 3000, true},
			{fv(10.2), wire.Good, 4000, false}, // compared with the last reported, 10.51
			{fv(10.0), wire.Good, 5000, true},
		}},
		{"slow drift is reported against the last reported value", Rule{Deadband: f64(1)}, []step{
			{fv(0), wire.Good, 0, true},
			{fv(0.6), wire.Good, 1000, false},
			{fv(1.2), wire.Good, 2000, true},
		}},
		{"percent deadband", Rule{DeadbandPercent: f64(10)}, []step{
			{fv(200), wire.Good, 0, true},
			{fv(219), wire.Good, 1000, false},
			{fv(221), wire.Good, 2000, true},
			{fv(200), wire.Good, 3000, false}, // |Δ| 21 is under 10% of 221
			{fv(198), wire.Good, 4000, true},
		}},
		{"percent deadband from zero reports any change", Rule{DeadbandPercent: f64(5)}, []step{
			{fv(0), wire.Good, 0, true},
			{fv(0), wire.Good, 1000, false},
			{fv(0.001), wire.Good, 2000, true},
		}},
		{"negative values", Rule{Deadband: f64(1)}, []step{
			{fv(-5), wire.Good, 0, true},
			{fv(-5.9), wire.Good, 1000, false},
			{fv(-6.5), wire.Good, 2000, true},
		}},
		{"heartbeat reports an unchanged value", Rule{Deadband: f64(1), Heartbeat: 5 * time.Second}, []step{
			{fv(3), wire.Good, 0, true},
			{fv(3), wire.Good, 4999, false},
			{fv(3), wire.Good, 5000, true},
			{fv(3), wire.Good, 9000, false},
			{fv(3), wire.Good, 10000, true},
		}},
		{"default heartbeat is 60s", Rule{Deadband: f64(1)}, []step{
			{fv(3), wire.Good, 0, true},
			{fv(3), wire.Good, 59999, false},
			{fv(3), wire.Good, 60000, true},
		}},
		{"quality change always reported", Rule{Deadband: f64(100)}, []step{
			{fv(3), wire.Good, 0, true},
			{wire.Value{}, wire.Bad, 1000, true},
			{wire.Value{}, wire.Bad, 2000, false},
			{fv(3), wire.Good, 3000, true},
			{fv(3), wire.Uncertain, 4000, true},
		}},
		{"clock stepping back reports", Rule{Deadband: f64(1)}, []step{
			{fv(3), wire.Good, 10000, true},
			{fv(3), wire.Good, 5000, true},
			{fv(3), wire.Good, 6000, false},
		}},
		{"bool with deadband reports changes only", Rule{Deadband: f64(0)}, []step{
			{wire.BoolValue(false), wire.Good, 0, true},
			{wire.BoolValue(false), wire.Good, 1000, false},
			{wire.BoolValue(true), wire.Good, 2000, true},
		}},
		{"string with deadband reports changes only", Rule{Deadband: f64(0)}, []step{
			{wire.StringValue("RUN"), wire.Good, 0, true},
			{wire.StringValue("RUN"), wire.Good, 1000, false},
			{wire.StringValue("STOP"), wire.Good, 2000, true},
		}},
		{"kind change reported", Rule{Deadband: f64(10)}, []step{
			{wire.IntValue(3), wire.Good, 0, true},
			{wire.StringValue("3"), wire.Good, 1000, true},
		}},
		{"NaN to NaN is unchanged, NaN to number is a change", Rule{Deadband: f64(1)}, []step{
			{fv(math.NaN()), wire.Good, 0, true},
			{fv(math.NaN()), wire.Good, 1000, false},
			{fv(0), wire.Good, 2000, true},
		}},
		{"integers compare numerically", Rule{Deadband: f64(2)}, []step{
			{wire.IntValue(100), wire.Good, 0, true},
			{wire.IntValue(102), wire.Good, 1000, false},
			{wire.IntValue(97), wire.Good, 2000, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFilter(map[string]Rule{"p": tt.rule})
			var want int
			for i, st := range tt.steps {
				s := wire.Sample{Device: "d", Point: "p", Value: st.v, Quality: st.q, TS: st.ts}
				if ok := f.Apply(&s); ok != st.want {
					t.Errorf("step %d (%v %v at %d): reported=%v, want %v", i, st.v, st.q, st.ts, ok, st.want)
				}
				if st.want {
					want++
				}
			}
			if f.Passed() != uint64(want) || f.Suppressed() != uint64(len(tt.steps)-want) {
				t.Errorf("counters passed=%d suppressed=%d, want %d and %d",
					f.Passed(), f.Suppressed(), want, len(tt.steps)-want)
			}
		})
	}
}

func TestFilterScaleOffset(t *testing.T) {
	tenth, pointThree := 0.1, 0.3
	tests := []struct {
		name string
		rule Rule
		in   wire.Value
		want wire.Value
	}{
		{"none keeps an int an int", Rule{}, wire.IntValue(7), wire.IntValue(7)},
		{"scale 1 (the config default) keeps an int an int", Rule{Scale: f64(1)}, wire.UintValue(7), wire.UintValue(7)},
		{"scale int", Rule{Scale: f64(0.1)}, wire.IntValue(853), wire.FloatValue(85.3)},
		{"scale 0.1 gives the decimal the map means, not 274*0.1", Rule{Scale: f64(tenth)}, wire.IntValue(274), wire.FloatValue(27.4)},
		{"scale 0.01", Rule{Scale: f64(0.01)}, wire.UintValue(1999), wire.FloatValue(19.99)},
		{"scale 0.3 is not a decimal divisor: multiplied", Rule{Scale: f64(pointThree)}, wire.IntValue(3), wire.FloatValue(3 * pointThree)},
		{"scale and offset", Rule{Scale: f64(2), Offset: -10}, wire.UintValue(20), wire.FloatValue(30)},
		{"offset only", Rule{Offset: 273.15}, wire.FloatValue(20), wire.FloatValue(293.15)},
		{"negative int", Rule{Scale: f64(0.5)}, wire.IntValue(-4), wire.FloatValue(-2)},
		{"bool untouched", Rule{Scale: f64(10), Offset: 1}, wire.BoolValue(true), wire.BoolValue(true)},
		{"string untouched", Rule{Scale: f64(10)}, wire.StringValue("x"), wire.StringValue("x")},
		{"null untouched", Rule{Scale: f64(10)}, wire.Value{}, wire.Value{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFilter(map[string]Rule{"p": tt.rule})
			s := wire.Sample{Point: "p", Value: tt.in}
			if !f.Apply(&s) {
				t.Fatal("first sample not reported")
			}
			if !s.Value.Equal(tt.want) {
				t.Errorf("got %v (kind %d), want %v (kind %d)", s.Value, s.Value.Kind(), tt.want, tt.want.Kind())
			}
		})
	}
}

// The deadband applies to the scaled value: the field engineer writes it in
// engineering units.
func TestFilterDeadbandInEngineeringUnits(t *testing.T) {
	f := NewFilter(map[string]Rule{"temp": {Scale: f64(0.1), Deadband: f64(0.5)}})
	for i, c := range []struct {
		raw  int64
		want bool
	}{{850, true}, {854, false}, {856, true}} {
		s := wire.Sample{Point: "temp", Value: wire.IntValue(c.raw), TS: int64(i) * 1000}
		if got := f.Apply(&s); got != c.want {
			t.Errorf("raw %d: reported=%v, want %v", c.raw, got, c.want)
		}
	}
}

func TestFilterUnknownPointPasses(t *testing.T) {
	f := NewFilter(nil)
	for i := 0; i < 3; i++ {
		s := wire.Sample{Point: "other", Value: wire.IntValue(1), TS: int64(i)}
		if !f.Apply(&s) {
			t.Fatalf("sample %d of a point without a rule was held back", i)
		}
	}
}

// A point without scale, offset or deadband is reported on every poll,
// unchanged; the filter keeps no state for it (memory: an agent with 10,000
// such points kept 3 MB of state for nothing).
func TestFilterKeepsNoStateForPlainPoints(t *testing.T) {
	f := NewFilter(map[string]Rule{
		"plain":  {Heartbeat: 5 * time.Second},
		"one":    {Scale: f64(1)},
		"scaled": {Scale: f64(0.1)},
		"offset": {Offset: 1},
		"db":     {Deadband: f64(1)},
		"dbpct":  {DeadbandPercent: f64(1)},
	})
	for _, name := range []string{"plain", "one"} {
		if _, ok := f.points[name]; ok {
			t.Errorf("point %q: state kept for a rule that changes nothing", name)
		}
	}
	for _, name := range []string{"scaled", "offset", "db", "dbpct"} {
		if _, ok := f.points[name]; !ok {
			t.Errorf("point %q: no state for a rule that scales or filters", name)
		}
	}
	for i := range 3 {
		for _, name := range []string{"plain", "one"} {
			s := wire.Sample{Point: name, Value: wire.IntValue(7), TS: int64(i)}
			if !f.Apply(&s) {
				t.Fatalf("%s: unchanged sample %d held back; a point without deadband is reported on every poll", name, i)
			}
			if s.Value != wire.IntValue(7) {
				t.Fatalf("%s: value became %v; want it unchanged", name, s.Value)
			}
		}
	}
	if f.Passed() != 6 || f.Suppressed() != 0 {
		t.Errorf("passed %d, suppressed %d; want 6 and 0", f.Passed(), f.Suppressed())
	}
}

// BenchmarkNewFilter reports the memory a device's filter keeps for 1,000
// points (B/op), plain (every poll reported) and with a deadband.
func BenchmarkNewFilter(b *testing.B) {
	for _, bc := range []struct {
		name string
		rule Rule
	}{{"plain", Rule{}}, {"deadband", Rule{Deadband: f64(0.5)}}} {
		rules := map[string]Rule{}
		for i := range 1000 {
			rules[fmt.Sprintf("r%04d", i)] = bc.rule
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				NewFilter(rules)
			}
		})
	}
}

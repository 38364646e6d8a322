package modbus

import (
	"fmt"
	"strings"
	"testing"
)

// pt is a point for plan tests: "h10", "h10x2" (two registers), "c5", "d7", "i3x4".
func pts(spec string) ([]span, []string) {
	var spans []span
	var names []string
	for _, f := range strings.Fields(spec) {
		var tb table
		switch f[0] {
		case 'c':
			tb = coil
		case 'd':
			tb = discrete
		case 'h':
			tb = holding
		case 'i':
			tb = input
		}
		addr, width := 0, 1
		if _, err := fmt.Sscanf(f[1:], "%dx%d", &addr, &width); err != nil {
			fmt.Sscanf(f[1:], "%d", &addr)
		}
		spans = append(spans, span{table: tb, addr: addr, width: width})
		names = append(names, f)
	}
	return spans, names
}

func showPlan(plan []Request) string {
	var b []string
	for _, r := range plan {
		b = append(b, fmt.Sprintf("%s %d+%d gap %d [%s]", r.Table, r.Start, r.Count, r.Gap, strings.Join(r.Points, " ")))
	}
	return strings.Join(b, "; ")
}

func TestPlan(t *testing.T) {
	def := limits{maxRegs: 125, maxBits: 2000, maxGap: 10}
	for _, c := range []struct {
		name   string
		points string
		lim    limits
		want   string
	}{
		{"empty", "", def, ""},
		{"one", "h5", def, "holding 5+1 gap 0 [h5]"},
		{"adjacent merge", "h0 h1 h2x2", def, "holding 0+4 gap 0 [h0 h1 h2x2]"},
		{"sorted regardless of config order", "h20 h0 h10", def, "holding 0+21 gap 18 [h0 h10 h20]"},
		{"gap of 10 merges", "h0 h11", def, "holding 0+12 gap 10 [h0 h11]"},
		{"gap of 11 splits", "h0 h12", def, "holding 0+1 gap 0 [h0]; holding 12+1 gap 0 [h12]"},
		{"max_gap 0 merges only adjacent", "h0 h1 h3", limits{125, 2000, 0}, "holding 0+2 gap 0 [h0 h1]; holding 3+1 gap 0 [h3]"},
		{"tables never merge", "h0 i0 c0 d0", def, "coil 0+1 gap 0 [c0]; discrete 0+1 gap 0 [d0]; holding 0+1 gap 0 [h0]; input 0+1 gap 0 [i0]"},
		{"125 register limit", "h0x100 h100x25 h125", def, "holding 0+125 gap 0 [h0x100 h100x25]; holding 125+1 gap 0 [h125]"},
		{"device limit", "h0x2 h2x2 h4x2", limits{4, 2000, 10}, "holding 0+4 gap 0 [h0x2 h2x2]; holding 4+2 gap 0 [h4x2]"},
		{"a value never straddles two requests", "h0x3 h3x4", limits{5, 2000, 10}, "holding 0+3 gap 0 [h0x3]; holding 3+4 gap 0 [h3x4]"},
		{"overlapping points share registers", "h0x4 h0 h1 h3", def, "holding 0+4 gap 0 [h0x4 h0 h1 h3]"},
		{"same register twice (bits of a word)", "h7 h7", def, "holding 7+1 gap 0 [h7 h7]"},
		{"bits gap is 16 per register", "c0 c160 c161 c400", def, "coil 0+162 gap 159 [c0 c160 c161]; coil 400+1 gap 0 [c400]"},
		{"2000 bit limit", "c0 c1999 c2000", limits{125, 2000, 200}, "coil 0+2000 gap 1998 [c0 c1999]; coil 2000+1 gap 0 [c2000]"},
		{"device bit limit", "d0 d8 d16", limits{125, 10, 10}, "discrete 0+9 gap 7 [d0 d8]; discrete 16+1 gap 0 [d16]"},
		{"end of address space", "h65534x2", def, "holding 65534+2 gap 0 [h65534x2]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			spans, names := pts(c.points)
			got := showPlan(exported(planRequests(spans, c.lim), spans, names))
			if got != c.want {
				t.Errorf("plan of %q:\n got %s\nwant %s", c.points, got, c.want)
			}
			// Deterministic: the same map in reverse order plans the same.
			rs, rn := pts(reverse(c.points))
			if again := showPlan(exported(planRequests(rs, c.lim), rs, rn)); again != got && !strings.Contains(c.name, "overlapping") && !strings.Contains(c.name, "same register") {
				t.Errorf("reversed map plans differently:\n%s\n%s", again, got)
			}
		})
	}
}

func reverse(s string) string {
	f := strings.Fields(s)
	for i, j := 0, len(f)-1; i < j; i, j = i+1, j-1 {
		f[i], f[j] = f[j], f[i]
	}
	return strings.Join(f, " ")
}

func TestSplitRequest(t *testing.T) {
	spans, names := pts("h0 h1 h5x2 h9")
	plan := planRequests(spans, limits{125, 2000, 10})
	if len(plan) != 1 {
		t.Fatalf("plan %v", plan)
	}
	a, b := splitRequest(spans, plan[0])
	got := showPlan(exported([]request{a, b}, spans, names))
	if want := "holding 0+2 gap 0 [h0 h1]; holding 5+5 gap 2 [h5x2 h9]"; got != want {
		t.Errorf("split:\n got %s\nwant %s", got, want)
	}
}

func TestWritePlan(t *testing.T) {
	spans, names := pts("c0 c1 h0 h1x2 h20")
	var b strings.Builder
	WritePlan(&b, "dye1", exported(planRequests(spans, limits{125, 2000, 10}), spans, names))
	want := `device "dye1": 5 points in 3 requests, 0 addresses read through as gaps
    #  table    start count   gap  points
    1  coil         0     2     0  c0, c1
    2  holding      0     3     0  h0, h1x2
    3  holding     20     1     0  h20
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

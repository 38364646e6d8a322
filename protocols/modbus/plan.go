package modbus

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Protocol limits of one read request.
const (
	maxRegisters = 125
	maxBits      = 2000
	// bitsPerGapRegister converts max_gap (registers) into a gap of coils or
	// discrete inputs: reading through 16 bits costs what one register does.
	bitsPerGapRegister = 16
)

// table is a Modbus data table.
type table uint8

// The tables, in plan order (their read function codes 1, 2, 3, 4).
const (
	coil table = iota
	discrete
	holding
	input
)

var tableNames = [...]string{"coil", "discrete", "holding", "input"}

func (t table) String() string { return tableNames[t] }

func (t table) isBits() bool { return t == coil || t == discrete }

func parseTable(s string) (table, bool) {
	switch strings.ToLower(s) {
	case "coil", "coils":
		return coil, true
	case "discrete", "discrete_input", "discrete_inputs":
		return discrete, true
	case "holding", "holding_register", "holding_registers":
		return holding, true
	case "input", "input_register", "input_registers":
		return input, true
	}
	return 0, false
}

// Request is one read of the plan: Count registers or bits of Table from
// Start. Points are the points it carries, in address order; Gap is how many
// of the Count addresses no point uses (read through to save a request).
type Request struct {
	Table  string
	Start  int
	Count  int
	Points []string
	Gap    int
}

// span is where a point sits: table, first address and width (registers,
// or 1 for a coil or discrete input).
type span struct {
	table table
	addr  int
	width int
}

func (s span) end() int { return s.addr + s.width }

// request is a planned read; points index the driver's points.
type request struct {
	table  table
	start  int
	count  int
	points []int
}

// limits are a device's request limits after defaults.
type limits struct {
	maxRegs int
	maxBits int
	maxGap  int // registers
}

func (l limits) max(t table) int {
	if t.isBits() {
		return l.maxBits
	}
	return l.maxRegs
}

func (l limits) gap(t table) int {
	if t.isBits() {
		return l.maxGap * bitsPerGapRegister
	}
	return l.maxGap
}

// planRequests groups points by table, sorts them by address and merges
// neighbours into as few requests as the limits allow. The same spans always
// give the same plan. Every span must fit the limits (newDriver checks).
func planRequests(spans []span, lim limits) []request {
	order := make([]int, len(spans))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		sa, sb := spans[order[a]], spans[order[b]]
		if sa.table != sb.table {
			return sa.table < sb.table
		}
		if sa.addr != sb.addr {
			return sa.addr < sb.addr
		}
		return sa.width > sb.width
	})
	var plan []request
	for _, i := range order {
		s := spans[i]
		if n := len(plan); n > 0 {
			cur := &plan[n-1]
			end := cur.start + cur.count
			newEnd := max(end, s.end())
			if cur.table == s.table && s.addr-end <= lim.gap(s.table) && newEnd-cur.start <= lim.max(s.table) {
				cur.count = newEnd - cur.start
				cur.points = append(cur.points, i)
				continue
			}
		}
		plan = append(plan, request{table: s.table, start: s.addr, count: s.width, points: []int{i}})
	}
	return plan
}

// spanOf is the smallest request that carries points (all of one table).
func spanOf(spans []span, points []int) request {
	r := request{table: spans[points[0]].table, start: spans[points[0]].addr, points: points}
	end := spans[points[0]].end()
	for _, i := range points[1:] {
		r.start = min(r.start, spans[i].addr)
		end = max(end, spans[i].end())
	}
	r.count = end - r.start
	return r
}

// splitRequest halves a request's points (in address order) into two
// requests; it is how a block answered with exception 2 or 3 is narrowed
// down to the point the device refuses.
func splitRequest(spans []span, r request) (request, request) {
	h := len(r.points) / 2
	return spanOf(spans, r.points[:h]), spanOf(spans, r.points[h:])
}

// gap counts the addresses of r that none of its points uses.
func (r request) gap(spans []span) int {
	used := make([]bool, r.count)
	for _, i := range r.points {
		for a := spans[i].addr; a < spans[i].end(); a++ {
			used[a-r.start] = true
		}
	}
	n := 0
	for _, u := range used {
		if !u {
			n++
		}
	}
	return n
}

// exported turns the internal plan into Requests naming points.
func exported(plan []request, spans []span, names []string) []Request {
	out := make([]Request, len(plan))
	for i, r := range plan {
		pts := make([]string, len(r.points))
		for j, p := range r.points {
			pts[j] = names[p]
		}
		out[i] = Request{Table: r.table.String(), Start: r.start, Count: r.count, Points: pts, Gap: r.gap(spans)}
	}
	return out
}

// WritePlan prints a device's request plan as a table, for
// `weft-agent once --plan`:
//
//	device "dye1": 14 points in 3 requests, 4 addresses read through as gaps
//	    #  table    start count   gap  points
//	    1  coil         0     5     0  pump, heat_valve, cool_valve, fill_valve, drain_valve
func WritePlan(w io.Writer, device string, plan []Request) {
	points, gaps := 0, 0
	for _, r := range plan {
		points += len(r.Points)
		gaps += r.Gap
	}
	fmt.Fprintf(w, "device %q: %d points in %d requests, %d addresses read through as gaps\n", device, points, len(plan), gaps)
	fmt.Fprintf(w, "  %3s  %-8s %5s %5s %5s  %s\n", "#", "table", "start", "count", "gap", "points")
	for i, r := range plan {
		fmt.Fprintf(w, "  %3d  %-8s %5d %5d %5d  %s\n", i+1, r.Table, r.Start, r.Count, r.Gap, strings.Join(r.Points, ", "))
	}
}

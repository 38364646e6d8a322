package config

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a configuration file, at a position.
//
// It prints as FILE:LINE:COL: path.to.key: what is wrong; what is allowed.
// Line and Col are 1-based; they are 0 when the problem concerns the whole
// file (for example a file that cannot be read). Path names the key with
// dots between map keys and [i] for the i-th list item (0-based), for
// example devices[0].modbus.unit or profiles.dyeing-v2.points[2].table.
type Error struct {
	File string
	Line int
	Col  int
	Path string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, sorted by position. Loading
// returns it (as error) when the file has at least one problem.
type Errors []*Error

// Error prints one problem per line, sorted by position.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// sort orders problems by line, column, path and message, and drops exact
// duplicates (a profile point shared by twenty devices is reported once).
func (es Errors) sort() Errors {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Msg < b.Msg
	})
	out := es[:0]
	for _, e := range es {
		if n := len(out); n > 0 {
			p := out[n-1]
			if p.Line == e.Line && p.Col == e.Col && p.Path == e.Path && p.Msg == e.Msg {
				continue
			}
		}
		out = append(out, e)
	}
	return out
}

package opcua

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gopcua/opcua/ua"
)

// ParseNodeID parses a point's `node:` key: ns=2;s=Loom7.Speed, ns=3;i=1001,
// i=2258, ns=1;g=<guid>, ns=1;b=<base64>.
func ParseNodeID(s string) (*ua.NodeID, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("node id is empty; write it like ns=2;s=Loom7.Speed or ns=3;i=1001")
	}
	n, err := ua.ParseNodeID(s)
	if err != nil {
		return nil, fmt.Errorf("node id %q: %v; write it like ns=2;s=Loom7.Speed or ns=3;i=1001", s, err)
	}
	return n, nil
}

// PathElement is one step of a browse path: a browse name, with its namespace
// index, or Namespace -1 to match the name in any namespace.
type PathElement struct {
	Namespace int
	Name      string
}

func (e PathElement) String() string {
	r := strings.NewReplacer(`\`, `\\`, `/`, `\/`)
	if e.Namespace < 0 {
		// an unescaped colon would read as ns:name
		return strings.NewReplacer(`\`, `\\`, `/`, `\/`, `:`, `\:`).Replace(e.Name)
	}
	return strconv.Itoa(e.Namespace) + ":" + r.Replace(e.Name)
}

// ParseBrowsePath parses a point's `browse_path:` key, a path from the Root
// folder: /Objects/2:Loom7/2:Speed. Each element is NS:Name, or Name alone to
// match that name in any namespace. A backslash escapes the next character
// (\/ is a slash, \: a colon inside a name).
func ParseBrowsePath(s string) ([]PathElement, error) {
	if !strings.HasPrefix(s, "/") {
		return nil, fmt.Errorf("browse path %q must start at the root with /, like /Objects/2:Loom7/2:Speed", s)
	}
	var (
		elems []PathElement
		cur   strings.Builder
		colon = -1 // byte offset in cur of the first unescaped colon
		esc   bool
	)
	flush := func() error {
		raw := cur.String()
		cur.Reset()
		at := colon
		colon = -1
		if raw == "" {
			return fmt.Errorf("browse path %q has an empty element (two slashes, or a slash at the end)", s)
		}
		e := PathElement{Namespace: -1, Name: raw}
		if at > 0 {
			if ns, err := strconv.Atoi(raw[:at]); err == nil && ns >= 0 && ns <= 65535 && isDigits(raw[:at]) {
				e = PathElement{Namespace: ns, Name: raw[at+1:]}
				if e.Name == "" {
					return fmt.Errorf("browse path %q: element %q has a namespace but no name", s, raw)
				}
			}
		}
		elems = append(elems, e)
		return nil
	}
	for _, r := range s[1:] {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\':
			esc = true
		case r == '/':
			if err := flush(); err != nil {
				return nil, err
			}
		default:
			if r == ':' && colon < 0 {
				colon = cur.Len()
			}
			cur.WriteRune(r)
		}
	}
	if esc {
		return nil, fmt.Errorf("browse path %q ends with a lone backslash", s)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return elems, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// FormatBrowsePath is the inverse of ParseBrowsePath.
func FormatBrowsePath(elems []PathElement) string {
	var b strings.Builder
	for _, e := range elems {
		b.WriteByte('/')
		b.WriteString(e.String())
	}
	return b.String()
}

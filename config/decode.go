package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	yaml "github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// The strict decoder. It walks goccy/go-yaml's AST (which knows the line and
// column of every node) into the schema structs by reflection, using their
// yaml tags, and collects every problem instead of stopping at the first.
//
// What it accepts:
//   - structs (block or flow mappings), with `yaml:",inline"` on a struct
//     field merging that struct's keys into its parent;
//   - pointers (nil when the key is absent or null), slices, map[string]T;
//   - string, bool, int, float64 and the special scalars time.Duration
//     ("250ms", "1s", "2m", "168h", "7d"; a bare 0) and ByteSize;
//   - anchors, aliases and merge keys (<<: *defaults);
//   - ${VAR} and ${VAR:-default} inside any scalar, expanded before the
//     scalar is converted to its Go type.
//
// What it rejects: unknown keys (with a suggestion), duplicate keys, a
// mapping where a scalar belongs and so on, numbers out of range of their
// Go type, NaN and infinities.

// maxFileSize bounds what is parsed at all; a real config is a few hundred
// kilobytes at most.
const maxFileSize = 8 << 20

// maxValues bounds how many values one file may decode into, so that aliases
// cannot blow a small file up into an enormous config (a "billion laughs").
const maxValues = 2_000_000

type pos struct{ line, col int }

// place is where a key sits in the file: the key itself and its value. For
// a list item both are the item's position.
type place struct{ key, val pos }

type decoder struct {
	file    string
	getenv  func(string) (string, bool)
	places  map[string]place
	errs    Errors
	anchors map[string]ast.Node
	values  int
	tooMany bool
	// suggested holds the paths of keys proposed for a misspelt key: their
	// "missing" problems would only repeat the unknown-key problem.
	suggested map[string]bool
}

func newDecoder(file string, getenv func(string) (string, bool)) *decoder {
	return &decoder{file: file, getenv: getenv, places: map[string]place{}, anchors: map[string]ast.Node{}, suggested: map[string]bool{}}
}

// errorAt records a problem at a position.
func (d *decoder) errorAt(p pos, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: p.line, Col: p.col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// parse reads the YAML document of data. It returns nil and records the
// problem when the file is not YAML, holds more than one document or is too
// big; an empty file is an empty mapping.
func (d *decoder) parse(data []byte) (root ast.Node) {
	if len(data) > maxFileSize {
		d.errorAt(pos{}, "", "file is %d bytes; at most %d are allowed", len(data), maxFileSize)
		return nil
	}
	data = []byte(strings.TrimPrefix(string(data), "\uFEFF"))
	defer func() {
		// The parser is a third-party decoder of outside input; should it
		// ever panic on a malformed file, that is one more problem with the
		// file, not a crash of the agent.
		if r := recover(); r != nil {
			d.errorAt(pos{1, 1}, "", "YAML parser failed: %v", r)
			root = nil
		}
	}()
	f, err := parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
	if err != nil {
		var ye yaml.Error
		if errors.As(err, &ye) && ye.GetToken() != nil && ye.GetToken().Position != nil {
			tp := ye.GetToken().Position
			d.errorAt(pos{tp.Line, tp.Column}, "", "not valid YAML: %s", ye.GetMessage())
		} else {
			d.errorAt(pos{1, 1}, "", "not valid YAML: %v", err)
		}
		return nil
	}
	var docs []*ast.DocumentNode
	for _, doc := range f.Docs {
		if doc != nil && doc.Body != nil {
			docs = append(docs, doc)
		}
	}
	if len(docs) == 0 {
		return nil
	}
	if len(docs) > 1 {
		d.errorAt(nodePos(docs[1].Body), "", "a second YAML document (after ---); a config file holds exactly one")
	}
	d.collectAnchors(docs[0].Body, 0)
	return docs[0].Body
}

// collectAnchors records every &anchor so that aliases can be resolved even
// when the anchor sits under a key the decoder will reject.
func (d *decoder) collectAnchors(n ast.Node, depth int) {
	if n == nil || depth > 10000 {
		return
	}
	switch n := n.(type) {
	case *ast.AnchorNode:
		if n.Name != nil {
			d.anchors[n.Name.GetToken().Value] = n.Value
		}
		d.collectAnchors(n.Value, depth+1)
	case *ast.TagNode:
		d.collectAnchors(n.Value, depth+1)
	case *ast.MappingNode:
		for _, mv := range n.Values {
			d.collectAnchors(mv.Value, depth+1)
		}
	case *ast.MappingValueNode:
		d.collectAnchors(n.Value, depth+1)
	case *ast.SequenceNode:
		for _, v := range n.Values {
			d.collectAnchors(v, depth+1)
		}
	}
}

// nodePos is where a node starts in the file.
func nodePos(n ast.Node) pos {
	switch m := n.(type) {
	case nil:
		return pos{}
	case *ast.MappingNode:
		// A block mapping's own token is the first ':'; its first key is
		// where a reader sees it start.
		if !m.IsFlowStyle && len(m.Values) > 0 {
			return nodePos(m.Values[0].Key)
		}
	case *ast.MappingValueNode:
		return nodePos(m.Key)
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return pos{}
	}
	return pos{tk.Position.Line, tk.Position.Column}
}

// resolve looks through tags, anchors and aliases to the node that holds the
// value. A dangling alias is reported and yields nil.
func (d *decoder) resolve(n ast.Node, path string) ast.Node {
	for i := 0; i < 100; i++ {
		switch m := n.(type) {
		case *ast.TagNode:
			n = m.Value
		case *ast.AnchorNode:
			n = m.Value
		case *ast.AliasNode:
			name := ""
			if m.Value != nil {
				name = m.Value.GetToken().Value
			}
			target, ok := d.anchors[name]
			if !ok {
				d.errorAt(nodePos(m), path, "alias *%s names no anchor; define &%s first", name, name)
				return nil
			}
			n = target
		default:
			return n
		}
	}
	d.errorAt(nodePos(n), path, "aliases nest too deep")
	return nil
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	byteSizeType = reflect.TypeFor[ByteSize]()
)

// describe names a node's kind for "expected X; got Y" messages.
func describe(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	}
	return "a single value"
}

// decode stores node n into v (settable), at path.
func (d *decoder) decode(n ast.Node, v reflect.Value, path string) {
	if d.values++; d.values > maxValues {
		if !d.tooMany {
			d.tooMany = true
			d.errorAt(nodePos(n), path, "the file expands (through aliases) to more than %d values", maxValues)
		}
		return
	}
	n = d.resolve(n, path)
	if n == nil {
		return
	}
	if _, ok := n.(*ast.NullNode); ok {
		return // an empty value leaves the key unset: its default applies
	}
	switch v.Type() {
	case durationType:
		d.decodeDuration(n, v, path)
		return
	case byteSizeType:
		d.decodeByteSize(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		nv := reflect.New(v.Type().Elem())
		d.decode(n, nv.Elem(), path)
		v.Set(nv)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.String:
		if s, ok := d.scalar(n, path, "a text value"); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		s, ok := d.scalar(n, path, "true or false")
		if !ok {
			return
		}
		switch s {
		case "true", "True", "TRUE":
			v.SetBool(true)
		case "false", "False", "FALSE":
			v.SetBool(false)
		default:
			d.errorAt(nodePos(n), path, "%s is not a boolean; allowed: true, false", d.quote(path, s))
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		s, ok := d.scalar(n, path, "a whole number")
		if !ok {
			return
		}
		i, err := parseInt(s)
		if err == nil && v.OverflowInt(i) {
			err = errRange
		}
		switch {
		case errors.Is(err, errRange):
			d.errorAt(nodePos(n), path, "%s is too large a number", d.quote(path, s))
		case err != nil:
			d.errorAt(nodePos(n), path, "%s is not a whole number; write digits like 100 (or 0x64)", d.quote(path, s))
		default:
			v.SetInt(i)
		}
	case reflect.Float64:
		s, ok := d.scalar(n, path, "a number")
		if !ok {
			return
		}
		f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			d.errorAt(nodePos(n), path, "%s is not a finite number; write a number like 0.5 or -12", d.quote(path, s))
			return
		}
		v.SetFloat(f)
	default:
		// The schema uses only the kinds above; a new kind must be taught
		// to the decoder before it can appear in a config struct.
		d.errorAt(nodePos(n), path, "internal error: the decoder cannot fill a Go %s", v.Type())
	}
}

// scalar returns the text of a scalar node, with ${VAR} expanded. want is
// what the key expects, for the message when n is a mapping or list.
func (d *decoder) scalar(n ast.Node, path, want string) (string, bool) {
	var s string
	switch m := n.(type) {
	case *ast.StringNode:
		s = m.Value
	case *ast.LiteralNode:
		if m.Value != nil {
			s = m.Value.Value
		}
	case *ast.MappingNode, *ast.MappingValueNode, *ast.SequenceNode:
		d.errorAt(nodePos(n), path, "expected %s; got %s", want, describe(n))
		return "", false
	default:
		tk := n.GetToken()
		if tk == nil {
			d.errorAt(nodePos(n), path, "expected %s", want)
			return "", false
		}
		s = tk.Value
	}
	if strings.Contains(s, "$") {
		exp, err := expandEnv(s, d.getenv)
		if err != nil {
			d.errorAt(nodePos(n), path, "%v", err)
			return "", false
		}
		s = exp
	}
	return s, true
}

// quote shows a value in a message, unless the key holds a secret.
func (d *decoder) quote(path, s string) string {
	if isSecret(path) {
		return "the value (not shown: it is a secret)"
	}
	return strconv.Quote(s)
}

// isSecret reports whether the key at path holds a password or token, whose
// value never appears in a message.
func isSecret(path string) bool {
	if i := strings.LastIndexByte(path, '['); i >= 0 && strings.HasSuffix(path, "]") {
		path = path[:i]
	}
	key := path[strings.LastIndexByte(path, '.')+1:]
	switch key {
	case "password", "token", "admin_tokens", "read_tokens":
		return true
	}
	return false
}

var errRange = errors.New("out of range")

// parseInt reads a whole number: decimal (leading zeros stay decimal, unlike
// YAML 1.1's octal), or 0x hex, 0o octal, 0b binary; _ separates digits.
func parseInt(s string) (int64, error) {
	t := strings.ReplaceAll(strings.TrimSpace(s), "_", "")
	neg := false
	if strings.HasPrefix(t, "-") || strings.HasPrefix(t, "+") {
		neg = t[0] == '-'
		t = t[1:]
	}
	base := 10
	if len(t) > 2 && t[0] == '0' {
		switch t[1] {
		case 'x', 'X':
			base, t = 16, t[2:]
		case 'o', 'O':
			base, t = 8, t[2:]
		case 'b', 'B':
			base, t = 2, t[2:]
		}
	}
	if t == "" || t[0] == '-' || t[0] == '+' {
		return 0, strconv.ErrSyntax
	}
	u, err := strconv.ParseUint(t, base, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, errRange
		}
		return 0, err
	}
	if neg {
		if u > 1<<63 {
			return 0, errRange
		}
		return -int64(u), nil
	}
	if u > math.MaxInt64 {
		return 0, errRange
	}
	return int64(u), nil
}

func (d *decoder) decodeDuration(n ast.Node, v reflect.Value, path string) {
	s, ok := d.scalar(n, path, "a duration like 1s")
	if !ok {
		return
	}
	dur, err := parseDuration(s)
	if err != nil {
		d.errorAt(nodePos(n), path, "%s is not a duration; write it like 250ms, 1s, 2m, 168h or 7d", d.quote(path, s))
		return
	}
	v.SetInt(int64(dur))
}

// parseDuration reads Go durations (250ms, 1m30s, 168h), whole days (7d)
// and a bare 0.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 32)
		if err != nil || n > 100000 {
			return 0, errRange
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

func (d *decoder) decodeByteSize(n ast.Node, v reflect.Value, path string) {
	s, ok := d.scalar(n, path, "a size like 512MiB")
	if !ok {
		return
	}
	b, err := ParseByteSize(s)
	if err != nil {
		d.errorAt(nodePos(n), path, "%s is not a size; write it like 1GiB, 512MiB, 64KiB, 10MB or a number of bytes", d.quote(path, s))
		return
	}
	v.SetInt(int64(b))
}

// entry is one key of a mapping, after merge keys have been expanded.
type entry struct {
	key     string
	keyNode ast.Node
	value   ast.Node
	merged  bool // came in through <<: and yields to explicit keys
}

// entries lists the keys of a mapping node in file order, with merge keys
// (<<: *anchor) expanded; an explicit key wins over a merged one. It reports
// duplicate explicit keys and keys that are not plain text.
func (d *decoder) entries(n ast.Node, path string, depth int) ([]entry, bool) {
	var mvs []*ast.MappingValueNode
	switch m := n.(type) {
	case *ast.MappingNode:
		mvs = m.Values
	case *ast.MappingValueNode:
		mvs = []*ast.MappingValueNode{m}
	default:
		return nil, false
	}
	var out []entry
	explicit := map[string]pos{}
	for _, mv := range mvs {
		if _, ok := mv.Key.(*ast.MergeKeyNode); ok {
			if depth > 20 {
				d.errorAt(nodePos(mv.Key), path, "merge keys (<<) nest too deep")
				continue
			}
			src := d.resolve(mv.Value, path)
			var srcs []ast.Node
			if seq, ok := src.(*ast.SequenceNode); ok {
				for _, s := range seq.Values {
					srcs = append(srcs, d.resolve(s, path))
				}
			} else {
				srcs = []ast.Node{src}
			}
			for _, s := range srcs {
				if s == nil {
					continue
				}
				es, ok := d.entries(s, path, depth+1)
				if !ok {
					d.errorAt(nodePos(mv.Value), path, "<< merges mappings only; got %s", describe(s))
					continue
				}
				for _, e := range es {
					e.merged = true
					out = append(out, e)
				}
			}
			continue
		}
		key, ok := keyText(mv.Key)
		if !ok {
			d.errorAt(nodePos(mv.Key), path, "keys must be plain words; got %s", describe(mv.Key))
			continue
		}
		kp := join(path, key)
		if first, dup := explicit[key]; dup {
			d.errorAt(nodePos(mv.Key), kp, "duplicate key; it is already set at line %d", first.line)
			continue
		}
		explicit[key] = nodePos(mv.Key)
		out = append(out, entry{key: key, keyNode: mv.Key, value: mv.Value})
	}
	// Drop merged keys that an explicit key or an earlier merge overrides.
	seen := map[string]bool{}
	kept := out[:0]
	for _, e := range out {
		if e.merged {
			if _, ok := explicit[e.key]; ok || seen[e.key] {
				continue
			}
		}
		seen[e.key] = true
		kept = append(kept, e)
	}
	return kept, true
}

func keyText(n ast.Node) (string, bool) {
	switch k := n.(type) {
	case *ast.StringNode:
		return k.Value, true
	case *ast.MappingKeyNode:
		return keyText(k.Value)
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		return k.GetToken().Value, true
	}
	return "", false
}

// join appends a map key to a path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *decoder) decodeStruct(n ast.Node, v reflect.Value, path string) {
	es, ok := d.entries(n, path, 0)
	if !ok {
		d.errorAt(nodePos(n), path, "expected a mapping of keys (key: value); got %s", describe(n))
		return
	}
	fs := fieldsOf(v.Type())
	for _, e := range es {
		kp := join(path, e.key)
		f, ok := fs.byKey[e.key]
		if !ok {
			best, msg := fs.suggest(e.key)
			if best != "" {
				d.suggested[join(path, best)] = true
			}
			d.errorAt(nodePos(e.keyNode), kp, "unknown key; %s", msg)
			continue
		}
		d.places[kp] = place{key: nodePos(e.keyNode), val: nodePos(d.resolveQuiet(e.value))}
		d.decode(e.value, v.FieldByIndex(f), kp)
	}
}

// resolveQuiet is resolve without reporting (used for positions only).
func (d *decoder) resolveQuiet(n ast.Node) ast.Node {
	for i := 0; i < 100; i++ {
		switch m := n.(type) {
		case *ast.TagNode:
			n = m.Value
		case *ast.AnchorNode:
			n = m.Value
		case *ast.AliasNode:
			// The value of an alias is written where the alias is.
			return m
		default:
			return n
		}
	}
	return n
}

func (d *decoder) decodeSlice(n ast.Node, v reflect.Value, path string) {
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		d.errorAt(nodePos(n), path, "expected a list (- item, or [a, b]); got %s", describe(n))
		return
	}
	out := reflect.MakeSlice(v.Type(), len(seq.Values), len(seq.Values))
	for i, item := range seq.Values {
		ip := fmt.Sprintf("%s[%d]", path, i)
		p := nodePos(d.resolveQuiet(item))
		d.places[ip] = place{key: p, val: p}
		d.decode(item, out.Index(i), ip)
	}
	v.Set(out)
}

func (d *decoder) decodeMap(n ast.Node, v reflect.Value, path string) {
	es, ok := d.entries(n, path, 0)
	if !ok {
		d.errorAt(nodePos(n), path, "expected a mapping (name: value); got %s", describe(n))
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		d.errorAt(nodePos(n), path, "internal error: map keys must be strings")
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(es))
	for _, e := range es {
		kp := join(path, e.key)
		d.places[kp] = place{key: nodePos(e.keyNode), val: nodePos(d.resolveQuiet(e.value))}
		ev := reflect.New(v.Type().Elem()).Elem()
		d.decode(e.value, ev, kp)
		m.SetMapIndex(reflect.ValueOf(e.key).Convert(v.Type().Key()), ev)
	}
	v.Set(m)
}

// fields is the key table of a struct type.
type fields struct {
	byKey map[string][]int // yaml key -> field index path (through inline structs)
	keys  []string         // in declaration order
}

var fieldCache sync.Map // reflect.Type -> fields

// fieldsOf lists a struct's yaml keys. Fields without a yaml tag and
// unexported fields are not keys; `yaml:",inline"` merges a struct's keys.
func fieldsOf(t reflect.Type) fields {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.(fields)
	}
	fs := fields{byKey: map[string][]int{}}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			tag, ok := sf.Tag.Lookup("yaml")
			if !ok || !sf.IsExported() || tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			idx := append(append([]int(nil), prefix...), i)
			if opts == "inline" && sf.Type.Kind() == reflect.Struct {
				walk(sf.Type, idx)
				continue
			}
			if name == "" {
				continue
			}
			if _, dup := fs.byKey[name]; !dup {
				fs.keys = append(fs.keys, name)
			}
			fs.byKey[name] = idx
		}
	}
	walk(t, nil)
	fieldCache.Store(t, fs)
	return fs
}

// suggest says which key was probably meant and which keys exist.
func (fs fields) suggest(key string) (best, msg string) {
	bestDist := 3
	for _, k := range fs.keys {
		dist := editDistance(strings.ToLower(key), k)
		if dist < bestDist && dist <= len(k)/3+1 {
			best, bestDist = k, dist
		}
	}
	allowed := "allowed: " + strings.Join(fs.keys, ", ")
	if best != "" {
		return best, fmt.Sprintf("did you mean %q? %s", best, allowed)
	}
	return "", allowed
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of two neighbours each count one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		return 64
	}
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

package opcua

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"github.com/weftiot/weft/protocols"
	"github.com/weftiot/weft/wire"
)

// BrowseNode is one node found by Browse.
type BrowseNode struct {
	Depth      int           // 0 for the start node's children
	NodeID     string        // ns=1;s=Loom1.Speed
	BrowseName PathElement   // with its namespace index
	Path       []PathElement // from the start node, this node included
	Class      ua.NodeClass
	// For variables: the data type's name (Double, or the type's NodeId
	// when it is not a built-in type), ValueRank (-1 scalar, 1 array), and
	// the current value as text, or the bad status when it cannot be read.
	DataType string
	Rank     int32
	Value    string
}

// Browse walks the address space below root (a NodeId; "" is the Objects
// folder) down to depth levels and reads each variable's data type and
// current value. Connect must have succeeded.
func (d *Driver) Browse(ctx context.Context, root string, depth int) ([]BrowseNode, error) {
	c, _, _ := d.current()
	if c == nil {
		return nil, fmt.Errorf("%s: browse: %w", d.where(), protocols.ErrNotConnected)
	}
	start := ua.NewNumericNodeID(0, id.ObjectsFolder)
	if root != "" {
		var err error
		if start, err = ParseNodeID(root); err != nil {
			return nil, err
		}
	}
	var out []BrowseNode
	seen := map[string]bool{start.String(): true}
	count := func() { d.requests.Add(1) }
	var walk func(n *ua.NodeID, level int, path []PathElement) error
	walk = func(n *ua.NodeID, level int, path []PathElement) error {
		bctx, cancel := context.WithTimeout(ctx, d.timeout)
		refs, err := browseChildren(bctx, c, n, count)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w", d.where(), err)
		}
		for _, r := range refs {
			if r.NodeID == nil || r.NodeID.NodeID == nil || r.BrowseName == nil {
				continue
			}
			nid := r.NodeID.NodeID
			if seen[nid.String()] {
				continue
			}
			seen[nid.String()] = true
			p := append(append([]PathElement(nil), path...), PathElement{Namespace: int(r.BrowseName.NamespaceIndex), Name: r.BrowseName.Name})
			out = append(out, BrowseNode{Depth: level, NodeID: nid.String(), BrowseName: p[len(p)-1], Path: p, Class: r.NodeClass})
			if level+1 < depth {
				if err := walk(nid, level+1, p); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(start, 0, nil); err != nil {
		return nil, err
	}
	return out, d.describeVariables(ctx, out)
}

// describeVariables reads DataType, ValueRank and Value of every variable,
// three attributes per node, in chunks the server accepts.
func (d *Driver) describeVariables(ctx context.Context, nodes []BrowseNode) error {
	c, _, _ := d.current()
	var vars []int
	for i, n := range nodes {
		if n.Class == ua.NodeClassVariable {
			vars = append(vars, i)
		}
	}
	d.mu.Lock()
	chunk := d.maxRead / 3
	d.mu.Unlock()
	if chunk <= 0 {
		chunk = 300
	}
	for startIdx := 0; startIdx < len(vars); startIdx += chunk {
		part := vars[startIdx:min(startIdx+chunk, len(vars))]
		req := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnSource}
		for _, i := range part {
			nid, err := ua.ParseNodeID(nodes[i].NodeID)
			if err != nil {
				return err
			}
			for _, a := range []ua.AttributeID{ua.AttributeIDDataType, ua.AttributeIDValueRank, ua.AttributeIDValue} {
				req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: nid, AttributeID: a})
			}
		}
		rctx, cancel := context.WithTimeout(ctx, d.timeout)
		d.requests.Add(1)
		res, err := c.Read(rctx, req)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: read %d variables: %w", d.where(), len(part), err)
		}
		if len(res.Results) != 3*len(part) {
			return fmt.Errorf("%s: read %d attributes: the server answered %d", d.where(), 3*len(part), len(res.Results))
		}
		for k, i := range part {
			dt, rank, val := res.Results[3*k], res.Results[3*k+1], res.Results[3*k+2]
			nodes[i].DataType = dataTypeName(dt)
			nodes[i].Rank = -1
			if rank != nil && rank.Value != nil {
				if r, ok := rank.Value.Value().(int32); ok {
					nodes[i].Rank = r
				}
			}
			nodes[i].Value = valueText(val)
		}
	}
	return nil
}

func dataTypeName(dv *ua.DataValue) string {
	if dv == nil || dv.Value == nil {
		return "?"
	}
	var n *ua.NodeID
	switch v := dv.Value.Value().(type) {
	case *ua.NodeID:
		n = v
	case *ua.ExpandedNodeID:
		n = v.NodeID
	}
	if n == nil {
		return "?"
	}
	if n.Namespace() == 0 && n.Type() <= ua.NodeIDTypeNumeric {
		if name := id.Name(n.IntID()); name != "" {
			return name
		}
	}
	return n.String()
}

func valueText(dv *ua.DataValue) string {
	if dv == nil {
		return "(no value)"
	}
	samples, err := appendSamples(nil, "", "v", dv, time.Now())
	if Quality(dv.Status) == wire.Bad && len(samples) > 0 && samples[0].Value.Kind() == wire.Null {
		return dv.Status.Error()
	}
	if err != nil {
		return "(" + err.Error() + ")"
	}
	parts := make([]string, len(samples))
	for i, s := range samples {
		parts[i] = valueString(s.Value)
	}
	if dv.Value != nil && dv.Value.Has(ua.VariantArrayValues) {
		return "[" + strings.Join(parts, " ") + "]"
	}
	if len(parts) == 0 {
		return "null"
	}
	return parts[0]
}

func valueString(v wire.Value) string {
	switch v.Kind() {
	case wire.Float:
		f, _ := v.Float()
		return fmt.Sprint(f)
	case wire.Int:
		return fmt.Sprint(v.Int())
	case wire.Uint:
		return fmt.Sprint(v.Uint())
	case wire.Bool:
		return fmt.Sprint(v.Bool())
	case wire.String:
		return fmt.Sprintf("%q", v.Str())
	}
	return "null"
}

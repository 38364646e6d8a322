package opcua

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
)

// resolve finds the node of every point: a NodeId as configured, a browse
// path by TranslateBrowsePathsToNodeIDs, or, when the server does not offer
// that service or an element matches any namespace, by browsing down from
// the Root folder. A point that cannot be resolved gets a nil node and an
// error; the other points go on.
func (d *Driver) resolve(ctx context.Context, c *opcua.Client) ([]*ua.NodeID, []error) {
	nodes := make([]*ua.NodeID, len(d.points))
	errs := make([]error, len(d.points))
	var translate, walk []int
	for i := range d.points {
		switch {
		case d.parsed[i] != nil:
			nodes[i] = d.parsed[i]
		case anyNamespace(d.paths[i]):
			walk = append(walk, i)
		default:
			translate = append(translate, i)
		}
	}
	if len(translate) > 0 {
		found, err := d.translate(ctx, c, translate)
		if err != nil {
			d.log.Debug("TranslateBrowsePathsToNodeIDs failed; browsing instead", "err", err)
			walk = append(walk, translate...)
		} else {
			for k, i := range translate {
				nodes[i], errs[i] = found[k].node, found[k].err
			}
		}
	}
	if len(walk) > 0 {
		w := &walker{c: c, timeout: d.timeout, cache: map[string][]*ua.ReferenceDescription{}, count: func() { d.requests.Add(1) }}
		for _, i := range walk {
			nodes[i], errs[i] = w.follow(ctx, d.paths[i])
		}
	}
	for i := range errs {
		if errs[i] != nil {
			errs[i] = fmt.Errorf("point %q: browse path %s: %w", d.points[i].Name, d.points[i].BrowsePath, errs[i])
		}
	}
	return nodes, errs
}

func anyNamespace(p []PathElement) bool {
	for _, e := range p {
		if e.Namespace < 0 {
			return true
		}
	}
	return false
}

type found struct {
	node *ua.NodeID
	err  error
}

func (d *Driver) translate(ctx context.Context, c *opcua.Client, idx []int) ([]found, error) {
	req := &ua.TranslateBrowsePathsToNodeIDsRequest{}
	for _, i := range idx {
		bp := &ua.BrowsePath{StartingNode: ua.NewNumericNodeID(0, id.RootFolder), RelativePath: &ua.RelativePath{}}
		for _, e := range d.paths[i] {
			bp.RelativePath.Elements = append(bp.RelativePath.Elements, &ua.RelativePathElement{
				ReferenceTypeID: ua.NewNumericNodeID(0, id.HierarchicalReferences),
				IncludeSubtypes: true,
				TargetName:      &ua.QualifiedName{NamespaceIndex: uint16(e.Namespace), Name: e.Name},
			})
		}
		req.BrowsePaths = append(req.BrowsePaths, bp)
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	d.requests.Add(1)
	var res *ua.TranslateBrowsePathsToNodeIDsResponse
	err := c.Send(ctx, req, func(v ua.Response) error {
		r, ok := v.(*ua.TranslateBrowsePathsToNodeIDsResponse)
		if !ok {
			return fmt.Errorf("unexpected answer %T", v)
		}
		res = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(res.Results) != len(idx) {
		return nil, fmt.Errorf("%d results for %d paths", len(res.Results), len(idx))
	}
	out := make([]found, len(idx))
	for k, r := range res.Results {
		switch {
		case r == nil:
			out[k].err = errors.New("no result")
		case r.StatusCode != ua.StatusOK:
			out[k].err = fmt.Errorf("not found (%w)", r.StatusCode)
		case len(r.Targets) == 0 || r.Targets[0].TargetID == nil || r.Targets[0].TargetID.NodeID == nil:
			out[k].err = errors.New("not found (no target)")
		default:
			out[k].node = r.Targets[0].TargetID.NodeID
		}
	}
	return out, nil
}

// walker resolves browse paths by browsing, caching each node's children.
type walker struct {
	c       *opcua.Client
	timeout time.Duration // per Browse request
	cache   map[string][]*ua.ReferenceDescription
	count   func()
}

func (w *walker) follow(ctx context.Context, path []PathElement) (*ua.NodeID, error) {
	cur := ua.NewNumericNodeID(0, id.RootFolder)
	for k, e := range path {
		refs, err := w.children(ctx, cur)
		if err != nil {
			return nil, err
		}
		var next *ua.NodeID
		for _, r := range refs {
			if r.BrowseName == nil || r.NodeID == nil || r.BrowseName.Name != e.Name {
				continue
			}
			if e.Namespace >= 0 && int(r.BrowseName.NamespaceIndex) != e.Namespace {
				continue
			}
			next = r.NodeID.NodeID
			break
		}
		if next == nil {
			return nil, fmt.Errorf("no %s below %s", e, FormatBrowsePath(path[:k]))
		}
		cur = next
	}
	return cur, nil
}

func (w *walker) children(ctx context.Context, n *ua.NodeID) ([]*ua.ReferenceDescription, error) {
	key := n.String()
	if refs, ok := w.cache[key]; ok {
		return refs, nil
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	refs, err := browseChildren(ctx, w.c, n, w.count)
	if err != nil {
		return nil, err
	}
	w.cache[key] = refs
	return refs, nil
}

// browseChildren returns the forward hierarchical references of a node,
// following continuation points.
func browseChildren(ctx context.Context, c *opcua.Client, n *ua.NodeID, count func()) ([]*ua.ReferenceDescription, error) {
	req := &ua.BrowseRequest{
		View:                          &ua.ViewDescription{ViewID: ua.NewTwoByteNodeID(0)},
		RequestedMaxReferencesPerNode: 0,
		NodesToBrowse: []*ua.BrowseDescription{{
			NodeID:          n,
			BrowseDirection: ua.BrowseDirectionForward,
			ReferenceTypeID: ua.NewNumericNodeID(0, id.HierarchicalReferences),
			IncludeSubtypes: true,
			NodeClassMask:   0,
			ResultMask:      uint32(ua.BrowseResultMaskAll),
		}},
	}
	count()
	res, err := c.Browse(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("browse %s: %w", n, err)
	}
	if len(res.Results) != 1 {
		return nil, fmt.Errorf("browse %s: %d results for 1 node", n, len(res.Results))
	}
	r := res.Results[0]
	if r.StatusCode != ua.StatusOK {
		return nil, fmt.Errorf("browse %s: %w", n, r.StatusCode)
	}
	refs := r.References
	for cp := r.ContinuationPoint; len(cp) > 0; {
		count()
		next, err := c.BrowseNext(ctx, &ua.BrowseNextRequest{ContinuationPoints: [][]byte{cp}})
		if err != nil {
			return nil, fmt.Errorf("browse next %s: %w", n, err)
		}
		if len(next.Results) != 1 || next.Results[0].StatusCode != ua.StatusOK {
			break
		}
		refs = append(refs, next.Results[0].References...)
		cp = next.Results[0].ContinuationPoint
	}
	return refs, nil
}

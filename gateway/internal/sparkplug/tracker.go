package sparkplug

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/weftiot/weft/wire"
	spb "github.com/weftiot/weft/wire/sparkplug"
)

// NodeDevice is the device tag of an edge node's own metrics (NBIRTH,
// NDATA): InfluxDB tags cannot be empty.
const NodeDevice = "_node"

// Rebirth reasons, also the label of the rebirth counter.
const (
	ReasonUnborn = "unborn"    // a message from a node whose NBIRTH this host has not seen
	ReasonSeqGap = "seq_gap"   // a sequence number that is not the next one
	ReasonAlias  = "alias"     // a metric alias or name the birth did not declare
	ReasonDevice = "device"    // a device message for a device without a DBIRTH
	ReasonBirth  = "bad_birth" // a birth without what Sparkplug requires (bdSeq, seq)
)

// metricDef is what a birth declared about one metric.
type metricDef struct {
	name string
	dt   spb.DataType
	unit string // the birth's engUnit property, if any
}

// defs are the metrics of one birth, by alias and by name.
type defs struct {
	byAlias map[uint64]metricDef
	byName  map[string]metricDef
}

func newDefs() defs {
	return defs{byAlias: map[uint64]metricDef{}, byName: map[string]metricDef{}}
}

type device struct {
	online bool
	defs   defs
}

type node struct {
	online  bool
	bdSeq   uint64
	seq     uint64 // of the last message
	defs    defs
	devices map[string]*device
	// births and deaths count NBIRTHs and NDEATHs (for NodeInfo).
	births, deaths uint64
}

// outcome is what handling one message gives the host to do.
type outcome struct {
	batch *wire.Batch // samples to store, or nil
	// rebirth names why the node should be asked to rebirth ("" = no need).
	rebirth string
	// status, when not "", is the node's new state for the registry.
	status string
	// problems are metrics that could not be read (counted, not fatal).
	problems []error
	// ignored says the message changed nothing (a stale NDEATH, for example).
	ignored string
}

// tracker holds the Sparkplug state of every edge node this host has seen:
// births, deaths, aliases and sequence numbers. It is used by one goroutine
// (the MQTT handler, which Sparkplug needs in order anyway).
type tracker struct {
	nodes map[string]*node // group + "/" + edge node
}

func newTracker() *tracker { return &tracker{nodes: map[string]*node{}} }

func nodeKey(group, edge string) string { return group + "/" + edge }

// handle applies one decoded message from topic t (not STATE) received at
// now.
func (tr *tracker) handle(t spb.Topic, p *spb.Payload, now time.Time) outcome {
	k := nodeKey(t.Group, t.EdgeNode)
	n := tr.nodes[k]
	switch t.Type {
	case spb.NBIRTH:
		return tr.nbirth(k, t, p, now)
	case spb.NDEATH:
		if n == nil || !n.online {
			return outcome{ignored: "NDEATH of a node that is not online"}
		}
		bd, ok := bdSeq(p)
		if !ok {
			return outcome{ignored: "NDEATH without a bdSeq metric"}
		}
		if bd != n.bdSeq {
			// The will of an older session, arriving after the node was
			// born again: not this session's death.
			return outcome{ignored: fmt.Sprintf("NDEATH bdSeq %d does not match the birth's %d", bd, n.bdSeq)}
		}
		n.online = false
		n.deaths++
		for _, d := range n.devices {
			d.online = false
		}
		return outcome{status: wire.Offline}
	case spb.NCMD, spb.DCMD:
		return outcome{ignored: "a command (ours or another host's)"}
	}

	// NDATA, DBIRTH, DDEATH, DDATA: the node must be born, and the message
	// must carry the next sequence number.
	if n == nil || !n.online {
		return outcome{rebirth: ReasonUnborn, ignored: "message from a node without a birth"}
	}
	var out outcome
	if p.Seq == nil {
		out.rebirth = ReasonSeqGap
	} else {
		if s := p.GetSeq(); s != (n.seq+1)%256 {
			out.rebirth = ReasonSeqGap
		}
		n.seq = p.GetSeq()
	}
	switch t.Type {
	case spb.DBIRTH:
		d := &device{online: true, defs: newDefs()}
		n.devices[t.Device] = d
		out.batch, out.problems = tr.samples(t, p, &d.defs, true, now)
	case spb.DDEATH:
		if d := n.devices[t.Device]; d != nil {
			d.online = false
		}
	case spb.NDATA:
		var reb bool
		out.batch, out.problems, reb = tr.data(t, p, &n.defs, now)
		if reb && out.rebirth == "" {
			out.rebirth = ReasonAlias
		}
	case spb.DDATA:
		d := n.devices[t.Device]
		if d == nil || !d.online {
			if out.rebirth == "" {
				out.rebirth = ReasonDevice
			}
			out.ignored = "DDATA of a device without a birth"
			return out
		}
		var reb bool
		out.batch, out.problems, reb = tr.data(t, p, &d.defs, now)
		if reb && out.rebirth == "" {
			out.rebirth = ReasonAlias
		}
	}
	return out
}

func (tr *tracker) nbirth(k string, t spb.Topic, p *spb.Payload, now time.Time) outcome {
	bd, ok := bdSeq(p)
	if !ok || p.Seq == nil {
		// Without bdSeq the node's death cannot be matched to this birth.
		if n := tr.nodes[k]; n != nil {
			n.online = false
		}
		return outcome{rebirth: ReasonBirth, ignored: "NBIRTH without bdSeq or seq"}
	}
	n := &node{online: true, bdSeq: bd, seq: p.GetSeq(), defs: newDefs(), devices: map[string]*device{}}
	if old := tr.nodes[k]; old != nil {
		n.births, n.deaths = old.births, old.deaths
	}
	n.births++
	tr.nodes[k] = n
	out := outcome{status: wire.Online}
	out.batch, out.problems = tr.samples(t, p, &n.defs, true, now)
	return out
}

// bdSeq finds the bdSeq metric of an NBIRTH or NDEATH.
func bdSeq(p *spb.Payload) (uint64, bool) {
	for _, m := range p.GetMetrics() {
		if m.GetName() == spb.MetricBdSeq {
			return spb.Int(m)
		}
	}
	return 0, false
}

// control reports whether a metric is Sparkplug machinery, not a reading.
func control(name string) bool {
	return name == spb.MetricBdSeq || strings.HasPrefix(name, "Node Control/") || strings.HasPrefix(name, "Device Control/")
}

// samples reads a birth: it declares every metric into d and returns the
// metrics' current values as samples.
func (tr *tracker) samples(t spb.Topic, p *spb.Payload, d *defs, birth bool, now time.Time) (*wire.Batch, []error) {
	b := &wire.Batch{Site: t.Group, Agent: t.EdgeNode}
	var problems []error
	dev := t.Device
	if dev == "" {
		dev = NodeDevice
	}
	for i, m := range p.GetMetrics() {
		name := m.GetName()
		if name == "" {
			problems = append(problems, fmt.Errorf("%s metrics[%d]: a birth metric without a name", t.Type, i))
			continue
		}
		def := metricDef{name: name, dt: spb.DataType(m.GetDatatype())}
		if u, ok := spb.Property(m, spb.PropUnit); ok {
			def.unit = u.GetStringValue()
		}
		d.byName[name] = def
		if m.Alias != nil {
			d.byAlias[m.GetAlias()] = def
		}
		if control(name) {
			continue
		}
		if s, err := sample(dev, def, m, p, now); err != nil {
			problems = append(problems, fmt.Errorf("%s metrics[%d]: %w", t.Type, i, err))
		} else if hasData(s) {
			b.Samples = append(b.Samples, s)
		}
	}
	if len(b.Samples) == 0 {
		return nil, problems
	}
	return b, problems
}

// data reads an NDATA or DDATA against the birth's declarations. rebirth is
// true when a metric was neither a declared alias nor a declared name.
func (tr *tracker) data(t spb.Topic, p *spb.Payload, d *defs, now time.Time) (_ *wire.Batch, problems []error, rebirth bool) {
	b := &wire.Batch{Site: t.Group, Agent: t.EdgeNode}
	dev := t.Device
	if dev == "" {
		dev = NodeDevice
	}
	for i, m := range p.GetMetrics() {
		var def metricDef
		var ok bool
		if m.Alias != nil {
			def, ok = d.byAlias[m.GetAlias()]
		} else {
			def, ok = d.byName[m.GetName()]
		}
		if !ok {
			rebirth = true
			problems = append(problems, fmt.Errorf("%s metrics[%d]: alias %d / name %q not in the birth", t.Type, i, m.GetAlias(), m.GetName()))
			continue
		}
		if control(def.name) {
			continue
		}
		s, err := sample(dev, def, m, p, now)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s metrics[%d] %q: %w", t.Type, i, def.name, err))
			continue
		}
		if hasData(s) {
			b.Samples = append(b.Samples, s)
		}
	}
	if len(b.Samples) == 0 {
		return nil, problems, rebirth
	}
	return b, problems, rebirth
}

// sample makes a wire.Sample of metric m declared as def. Its time is the
// metric's timestamp, else the payload's, else now.
func sample(dev string, def metricDef, m *spb.Metric, p *spb.Payload, now time.Time) (wire.Sample, error) {
	v, err := spb.Value(m, def.dt)
	if err != nil {
		return wire.Sample{}, err
	}
	ts := int64(m.GetTimestamp())
	if m.GetTimestamp() == 0 || m.GetTimestamp() > 1<<62 {
		ts = int64(p.GetTimestamp())
		if p.GetTimestamp() == 0 || p.GetTimestamp() > 1<<62 {
			ts = now.UnixMilli()
		}
	}
	return wire.Sample{Device: dev, Point: def.name, Value: v, Quality: spb.QualityOf(m), TS: ts}, nil
}

// NodeInfo is one edge node as the host sees it.
type NodeInfo struct {
	Group, EdgeNode string
	Online          bool
	BdSeq           uint64
	Births, Deaths  uint64
	Devices         map[string]bool // device id → online
}

func (tr *tracker) info() []NodeInfo {
	out := make([]NodeInfo, 0, len(tr.nodes))
	for k, n := range tr.nodes {
		g, e, _ := strings.Cut(k, "/")
		ni := NodeInfo{Group: g, EdgeNode: e, Online: n.online, BdSeq: n.bdSeq, Births: n.births, Deaths: n.deaths, Devices: map[string]bool{}}
		for id, d := range n.devices {
			ni.Devices[id] = d.online
		}
		out = append(out, ni)
	}
	return out
}

// points describes the metrics the node's births declared, for the fleet
// view's units: the node's own under NodeDevice, then each device's.
func (n *node) points() []wire.DevicePoints {
	out := []wire.DevicePoints{}
	add := func(dev string, d defs) {
		dp := wire.DevicePoints{Device: dev, Protocol: "sparkplug_b", Points: []wire.PointInfo{}}
		for name, def := range d.byName {
			if !control(name) {
				dp.Points = append(dp.Points, wire.PointInfo{Name: name, Unit: def.unit, Type: def.dt.String()})
			}
		}
		sort.Slice(dp.Points, func(i, j int) bool { return dp.Points[i].Name < dp.Points[j].Name })
		if len(dp.Points) > 0 {
			out = append(out, dp)
		}
	}
	add(NodeDevice, n.defs)
	ids := make([]string, 0, len(n.devices))
	for id := range n.devices {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		add(id, n.devices[id].defs)
	}
	return out
}

// hasData: a null value with good quality (a birth's "no value yet") has
// nothing to store.
func hasData(s wire.Sample) bool { return s.Quality != wire.Good || s.Value.Kind() != wire.Null }

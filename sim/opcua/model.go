package opcua

import (
	"context"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/ua"
)

// NamespaceURI is the simulator's namespace; it gets index 1.
const NamespaceURI = "urn:weft:sim"

// variable is one simulated value. Its NodeId is ns=1;s=<dotted path>.
type variable struct {
	nid    *ua.NodeID
	name   string
	dtype  uint32 // ns=0 DataType id
	rank   int32  // -1 scalar, 1 one-dimensional array
	status ua.StatusCode
	next   func(t float64) any // nil: constant
	value  any
	ts     time.Time
}

type folder struct {
	name string
	path string // dotted, used as the string NodeId
	vars []*variable
	subs []*folder
}

// model is the address space and how it changes over time.
type model struct {
	mu    sync.Mutex
	roots []*folder
	vars  map[string]*variable // by NodeId string
	// dropped counts notifications a busy or ended subscription did not
	// take in time (see notify).
	dropped atomic.Uint64
}

func newModel(profile string, bulk int) (*model, error) {
	m := &model{vars: map[string]*variable{}}
	machines := map[string]func() *folder{"dyeing": dyeingMachine, "loom": loom, "winder": winder}
	switch profile {
	case "", "all":
		m.roots = append(m.roots, dyeingMachine(), loom(), winder())
	default:
		f, ok := machines[profile]
		if !ok {
			return nil, fmt.Errorf("opcua simulator: unknown profile %q (use dyeing, loom, winder or all)", profile)
		}
		m.roots = append(m.roots, f())
	}
	m.roots = append(m.roots, types())
	if bulk > 0 {
		b := &folder{name: "Bulk"}
		for i := range bulk {
			i := float64(i)
			b.vars = append(b.vars, &variable{name: fmt.Sprintf("V%05d", int(i)), dtype: id.Double,
				next: func(t float64) any { return i + math.Round(t*10)/10 }})
		}
		m.roots = append(m.roots, b)
	}
	now := time.Now()
	var index func(f *folder, parent string)
	index = func(f *folder, parent string) {
		f.path = f.name
		if parent != "" {
			f.path = parent + "." + f.name
		}
		for _, v := range f.vars {
			v.nid = ua.NewStringNodeID(1, f.path+"."+v.name)
			if v.rank == 0 {
				v.rank = -1
			}
			if v.next != nil {
				v.value = v.next(0)
			}
			v.ts = now
			m.vars[v.nid.String()] = v
		}
		for _, s := range f.subs {
			index(s, f.path)
		}
	}
	for _, r := range m.roots {
		index(r, "")
	}
	return m, nil
}

// install adds the address space to a new gopcua server.
func (m *model) install(srv *server.Server, maxNodesPerRead uint32) error {
	ns0, err := srv.Namespace(0)
	if err != nil {
		return err
	}
	ns := server.NewNodeNameSpace(srv, NamespaceURI)
	if ns.ID() != 1 {
		return fmt.Errorf("opcua simulator: namespace %s got index %d, want 1", NamespaceURI, ns.ID())
	}
	ns0.AddNode(server.NewNode(
		ua.NewNumericNodeID(0, id.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead),
		server.Attributes{
			ua.AttributeIDBrowseName: server.DataValueFromValue(&ua.QualifiedName{Name: "MaxNodesPerRead"}),
			ua.AttributeIDNodeClass:  server.DataValueFromValue(uint32(ua.NodeClassVariable)),
		}, nil,
		func() *ua.DataValue { return server.DataValueFromValue(maxNodesPerRead) }))

	var add func(parent *server.Node, f *folder)
	add = func(parent *server.Node, f *folder) {
		fn := ns.AddNode(server.NewNode(ua.NewStringNodeID(ns.ID(), f.path), server.Attributes{
			ua.AttributeIDNodeClass:   server.DataValueFromValue(uint32(ua.NodeClassObject)),
			ua.AttributeIDBrowseName:  server.DataValueFromValue(&ua.QualifiedName{NamespaceIndex: ns.ID(), Name: f.name}),
			ua.AttributeIDDisplayName: server.DataValueFromValue(localized(f.name)),
			ua.AttributeIDDescription: server.DataValueFromValue(localized("")),
		}, nil, nil))
		parent.AddRef(fn, server.RefType(id.Organizes), true)
		for _, v := range f.vars {
			vn := ns.AddNode(server.NewNode(v.nid, server.Attributes{
				ua.AttributeIDNodeClass:       server.DataValueFromValue(uint32(ua.NodeClassVariable)),
				ua.AttributeIDBrowseName:      server.DataValueFromValue(&ua.QualifiedName{NamespaceIndex: ns.ID(), Name: v.name}),
				ua.AttributeIDDisplayName:     server.DataValueFromValue(localized(v.name)),
				ua.AttributeIDDescription:     server.DataValueFromValue(localized("")),
				ua.AttributeIDDataType:        server.DataValueFromValue(ua.NewNumericExpandedNodeID(0, v.dtype)),
				ua.AttributeIDValueRank:       server.DataValueFromValue(v.rank),
				ua.AttributeIDAccessLevel:     server.DataValueFromValue(byte(ua.AccessLevelTypeCurrentRead)),
				ua.AttributeIDUserAccessLevel: server.DataValueFromValue(byte(ua.AccessLevelTypeCurrentRead)),
			}, nil, m.valueFunc(v)))
			fn.AddRef(vn, server.RefType(id.HasComponent), true)
		}
		for _, s := range f.subs {
			add(fn, s)
		}
	}
	objects := ns0.Objects()
	for _, r := range m.roots {
		add(objects, r)
	}
	return nil
}

func localized(s string) *ua.LocalizedText {
	lt := &ua.LocalizedText{Text: s}
	lt.UpdateMask()
	return lt
}

func (m *model) valueFunc(v *variable) server.ValueFunc {
	return func() *ua.DataValue {
		m.mu.Lock()
		val, ts, st := v.value, v.ts, v.status
		m.mu.Unlock()
		dv := &ua.DataValue{
			EncodingMask:    ua.DataValueValue | ua.DataValueSourceTimestamp | ua.DataValueServerTimestamp,
			Value:           ua.MustVariant(val),
			SourceTimestamp: ts,
			ServerTimestamp: time.Now(),
		}
		if st != ua.StatusGood {
			dv.EncodingMask |= ua.DataValueStatusCode
			dv.Status = st
		}
		return dv
	}
}

// set changes one variable; false when there is none by that NodeId.
func (m *model) set(key string, val any, ts time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.vars[key]
	if !ok {
		return false
	}
	v.value, v.ts = val, ts
	return true
}

// run advances every variable each interval and tells the server which
// changed, so that monitored items publish them.
func (m *model) run(ctx context.Context, srv *server.Server, every time.Duration, start time.Time) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	var changed []*ua.NodeID
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			t := now.Sub(start).Seconds()
			changed = changed[:0]
			m.mu.Lock()
			for _, v := range m.vars {
				if v.next == nil {
					continue
				}
				nv := v.next(t)
				if reflect.DeepEqual(nv, v.value) {
					continue
				}
				v.value, v.ts = nv, now
				changed = append(changed, v.nid)
			}
			m.mu.Unlock()
			if ctx.Err() != nil {
				return
			}
			m.dropped.Add(uint64(notify(srv, changed)))
		}
	}
}

// round keeps simulated readings to the resolution a real sensor reports.
func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// dyeingMachine is a jet dyeing machine running a 10-minute program: heat the
// bath to 130 °C, hold, cool, repeat.
func dyeingMachine() *folder {
	const cycle = 600.0
	phase := func(t float64) (p int, in float64) {
		in = math.Mod(t, cycle)
		return int(in / 200), in
	}
	temp := func(t float64) float64 {
		p, in := phase(t)
		switch p {
		case 0:
			return 25 + 105*in/200
		case 1:
			return 130 + 0.3*math.Sin(t)
		}
		return 130 - 70*(in-400)/200
	}
	return &folder{name: "DyeingMachine1", subs: []*folder{
		{name: "Bath", vars: []*variable{
			{name: "Temperature", dtype: id.Double, next: func(t float64) any { return round(temp(t), 2) }},
			{name: "Setpoint", dtype: id.Double, next: func(t float64) any {
				if p, _ := phase(t); p < 2 {
					return 130.0
				}
				return 60.0
			}},
			{name: "Level", dtype: id.Float, next: func(t float64) any { return float32(round(70+5*math.Sin(t/30), 1)) }},
			{name: "PH", dtype: id.Double, next: func(t float64) any { return round(6.5+0.3*math.Sin(t/45), 2) }},
		}},
		{name: "Pump", vars: []*variable{
			{name: "Speed", dtype: id.Float, next: func(t float64) any { return float32(round(1450+10*math.Sin(t), 0)) }},
			{name: "Running", dtype: id.Boolean, next: func(t float64) any { _, in := phase(t); return in < 580 }},
		}},
		{name: "Program", vars: []*variable{
			{name: "Name", dtype: id.String, value: "Reactive navy 130C"},
			{name: "Step", dtype: id.UInt16, next: func(t float64) any { p, _ := phase(t); return uint16(p + 1) }},
			{name: "BatchStart", dtype: id.DateTime, next: func(t float64) any {
				_, in := phase(t)
				return time.Now().UTC().Add(-time.Duration(in * float64(time.Second))).Truncate(10 * time.Second)
			}},
		}},
		{name: "Counters", vars: []*variable{
			{name: "Batches", dtype: id.UInt32, next: func(t float64) any { return uint32(t / cycle) }},
		}},
	}}
}

// loom is a weaving machine that stops for a warp break every two minutes.
func loom() *folder {
	running := func(t float64) bool { return math.Mod(t, 120) < 110 }
	return &folder{name: "Loom1", vars: []*variable{
		{name: "Speed", dtype: id.Double, next: func(t float64) any {
			if !running(t) {
				return 0.0
			}
			return round(600+5*math.Sin(t/7), 1)
		}},
		{name: "Running", dtype: id.Boolean, next: func(t float64) any { return running(t) }},
		{name: "PickCount", dtype: id.UInt64, next: func(t float64) any {
			full := math.Floor(t / 120)
			in := math.Min(math.Mod(t, 120), 110)
			return uint64((full*110 + in) * 10)
		}},
		{name: "StopCode", dtype: id.Int16, next: func(t float64) any {
			if running(t) {
				return int16(0)
			}
			return int16(3) // warp break
		}},
		{name: "WarpTension", dtype: id.Float, next: func(t float64) any { return float32(round(2.5+0.1*math.Sin(t/3), 2)) }},
		{name: "Efficiency", dtype: id.Double, value: 91.7},
		{name: "Style", dtype: id.String, value: "Denim 3/1 twill 12oz"},
	}}
}

// winder is a six-spindle cone winder.
func winder() *folder {
	return &folder{name: "Winder1", vars: []*variable{
		{name: "Running", dtype: id.Boolean, value: true},
		{name: "DrumSpeed", dtype: id.Float, next: func(t float64) any { return float32(round(1200+20*math.Sin(t/5), 0)) }},
		{name: "Length", dtype: id.Double, next: func(t float64) any { return round(t*20, 1) }},
		{name: "Doffs", dtype: id.UInt32, next: func(t float64) any { return uint32(t / 300) }},
		{name: "SpindleSpeeds", dtype: id.Float, rank: 1, next: func(t float64) any {
			s := make([]float32, 6)
			for i := range s {
				s[i] = float32(round(1200+15*math.Sin(t/5+float64(i)), 0))
			}
			return s
		}},
	}}
}

// TypesValues are the fixed values of the Types folder, by browse name, so
// that tests can check each conversion exactly.
var TypesValues = map[string]any{
	"Boolean":    true,
	"SByte":      int8(-128),
	"Byte":       uint8(255),
	"Int16":      int16(-32768),
	"UInt16":     uint16(65535),
	"Int32":      int32(-2147483648),
	"UInt32":     uint32(4294967295),
	"Int64":      int64(math.MinInt64),
	"UInt64":     uint64(math.MaxUint64),
	"Float":      float32(1.5),
	"Double":     math.Pi,
	"String":     "染色机 dyeing machine",
	"DateTime":   time.Date(2024, 5, 1, 8, 30, 0, 123e6, time.UTC),
	"ByteString": []byte{0xde, 0xad, 0xbe, 0xef},
	"DoubleArray": []float64{
		1.25, -2.5, 0, 1e6,
	},
}

func types() *folder {
	f := &folder{name: "Types"}
	dtypes := map[string]uint32{
		"Boolean": id.Boolean, "SByte": id.SByte, "Byte": id.Byte, "Int16": id.Int16, "UInt16": id.UInt16,
		"Int32": id.Int32, "UInt32": id.UInt32, "Int64": id.Int64, "UInt64": id.UInt64, "Float": id.Float,
		"Double": id.Double, "String": id.String, "DateTime": id.DateTime, "ByteString": id.ByteString,
		"DoubleArray": id.Double,
	}
	for _, name := range slices.Sorted(maps.Keys(TypesValues)) {
		v := &variable{name: name, dtype: dtypes[name], value: TypesValues[name]}
		if strings.HasSuffix(name, "Array") {
			v.rank = 1
		}
		f.vars = append(f.vars, v)
	}
	f.vars = append(f.vars,
		&variable{name: "Counter", dtype: id.UInt32, next: func(t float64) any { return uint32(t * 2) }},
		&variable{name: "StatusUncertain", dtype: id.Double, value: 42.0, status: ua.StatusUncertainLastUsableValue},
		&variable{name: "StatusBad", dtype: id.Double, value: 0.0, status: ua.StatusBadSensorFailure},
	)
	return f
}

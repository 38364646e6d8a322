package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/weftiot/weft/protocols/modbus"
	"github.com/weftiot/weft/protocols/opcua"
)

// Keys of each protocol inside a point, for the protocol mismatch rule.
var (
	pointFields  = fieldsOf(reflect.TypeFor[Point]())
	modbusKeys   = fieldsOf(reflect.TypeFor[modbus.PointConfig]()).keys
	opcuaKeys    = fieldsOf(reflect.TypeFor[opcua.PointConfig]()).keys
	protocolKeys = map[string][]string{"modbus": modbusKeys, "opcua": opcuaKeys}
)

// reservedTags are set by Weft on every stored sample.
var reservedTags = map[string]bool{"agent": true, "site": true, "device": true, "point": true}

func (c *checker) agent(a *Agent) {
	c.name("agent.id", a.Agent.ID, true, "the agent an id")
	c.name("agent.site", a.Agent.Site, true, "the site a name")
	if c.set("agent.data_dir") && a.Agent.DataDir == "" {
		c.bad("agent.data_dir", "is empty; allowed a directory path like /var/lib/weft (leave the key out for that default)")
	}
	c.interval("agent.health_interval", a.Agent.HealthInterval)
	c.interval("agent.rollback_after", a.Agent.RollbackAfter)

	c.mqtt(&a.MQTT, false)

	if c.set("spool.max_bytes") && a.Spool.MaxBytes < 1<<20 {
		c.bad("spool.max_bytes", "%s is below 1MiB; allowed 1MiB or more, like 1GiB", a.Spool.MaxBytes)
	}
	if a.Spool.MaxAge < 0 {
		c.bad("spool.max_age", "%s is negative; allowed a duration like 168h, or 0 to keep batches until they are sent", a.Spool.MaxAge)
	}
	c.oneOf("spool.overflow", a.Spool.Overflow, "drop_oldest", "drop_newest")

	if c.set("batch.max_samples") && (a.Batch.MaxSamples < 1 || a.Batch.MaxSamples > 1_000_000) {
		c.bad("batch.max_samples", "%d is out of range; allowed 1..1000000", a.Batch.MaxSamples)
	}
	c.interval("batch.flush_interval", a.Batch.FlushInterval)
	c.hostPort("metrics.listen", a.Metrics.Listen, "127.0.0.1:9100")

	names := make([]string, 0, len(a.Profiles))
	for name := range a.Profiles {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := a.Profiles[name]
		pp := "profiles." + name
		if !validName(name) {
			c.badKey(pp, "profile name %q has characters outside %s", name, nameChars)
		}
		proto := p.Protocol
		switch p.Protocol {
		case "modbus", "opcua":
		case "":
			c.bad(pp+".protocol", "missing; allowed modbus, opcua")
		default:
			c.bad(pp+".protocol", "%q is not a protocol; allowed modbus, opcua", p.Protocol)
			proto = ""
		}
		if len(p.Points) == 0 {
			c.bad(pp+".points", "the profile has no points; allowed a list of points like - {name: speed, ...}")
		}
		seen := map[string]string{}
		for i := range p.Points {
			ip := fmt.Sprintf("%s.points[%d]", pp, i)
			c.uniquePoint(seen, p.Points[i].Name, ip)
			c.point(&p.Points[i], proto, func(k string) string { return join(ip, k) })
		}
	}

	if len(a.Devices) == 0 {
		c.bad("devices", "missing; the agent needs at least one device")
	}
	ids := map[string]string{}
	for i := range a.Devices {
		c.device(a, &a.Devices[i], fmt.Sprintf("devices[%d]", i), ids)
	}
}

// uniquePoint reports a point name used twice in one list.
func (c *checker) uniquePoint(seen map[string]string, name, path string) {
	if name == "" {
		return
	}
	if first, dup := seen[name]; dup {
		pl, _ := c.place(first)
		c.bad(path+".name", "duplicate point name %q; it is already used at line %d, names must be unique in a device", name, pl.val.line)
		return
	}
	seen[name] = path
}

func (c *checker) device(a *Agent, dev *Device, dp string, ids map[string]string) {
	c.name(dp+".id", dev.ID, true, "the device an id")
	if dev.ID != "" {
		if first, dup := ids[dev.ID]; dup {
			pl, _ := c.place(first)
			c.bad(dp+".id", "duplicate device id %q; it is already used at line %d, ids must be unique in the agent", dev.ID, pl.val.line)
		} else {
			ids[dev.ID] = dp + ".id"
		}
	}

	// The protocol comes from the device, its profile or its one section.
	var profile *Profile
	if dev.Profile != "" {
		if p, ok := a.Profiles[dev.Profile]; ok {
			profile = &p
		} else {
			c.bad(dp+".profile", "unknown profile %q; %s", dev.Profile, profileList(a.Profiles))
		}
	}
	proto := dev.Protocol
	from := "its protocol key"
	switch dev.Protocol {
	case "", "modbus", "opcua":
	default:
		c.bad(dp+".protocol", "%q is not a protocol; allowed modbus, opcua", dev.Protocol)
		proto = ""
	}
	if profile != nil && (profile.Protocol == "modbus" || profile.Protocol == "opcua") {
		if proto != "" && proto != profile.Protocol {
			c.bad(dp+".protocol", "%s does not match profile %s, which is %s; remove protocol or use a %s profile", proto, dev.Profile, profile.Protocol, proto)
		} else {
			proto, from = profile.Protocol, "profile "+dev.Profile
		}
	}
	if proto == "" && dev.Protocol == "" && (profile == nil || profile.Protocol == "") {
		// A section that is written but failed to decode still says
		// which protocol is meant.
		hasModbus, hasOPCUA := c.set(dp+".modbus"), c.set(dp+".opcua")
		switch {
		case hasModbus && !hasOPCUA:
			proto, from = "modbus", "its modbus section"
		case hasOPCUA && !hasModbus:
			proto, from = "opcua", "its opcua section"
		case !hasModbus && !hasOPCUA && dev.Profile == "":
			c.bad(dp+".protocol", "missing; add protocol: modbus with a modbus: section, protocol: opcua with an opcua: section, or a profile")
		case hasModbus && hasOPCUA:
			c.badKey(dp+".opcua", "a device has one protocol; it has both a modbus and an opcua section, remove one")
		}
	}
	if proto != "" {
		dev.Protocol = proto
	}

	switch proto {
	case "modbus":
		if dev.Modbus == nil {
			c.bad(dp+".modbus", "missing; a modbus device needs a modbus: section with at least target")
		} else {
			mp := dp + ".modbus"
			c.fieldErrors(dev.Modbus.Validate(), func(k string) string { return join(mp, k) })
			c.interval(mp+".timeout", dev.Modbus.Timeout)
			// 0 is "use the default" to the driver; written out, it is a mistake.
			if c.set(mp+".max_registers_per_request") && dev.Modbus.MaxRegistersPerRequest == 0 {
				c.bad(mp+".max_registers_per_request", "0 is out of range; allowed 1..125")
			}
			if c.set(mp+".max_bits_per_request") && dev.Modbus.MaxBitsPerRequest == 0 {
				c.bad(mp+".max_bits_per_request", "0 is out of range; allowed 1..2000")
			}
		}
		if dev.OPCUA != nil {
			c.badKey(dp+".opcua", "an opcua section on a modbus device (the protocol comes from %s); remove it", from)
		}
	case "opcua":
		if dev.OPCUA == nil {
			c.bad(dp+".opcua", "missing; an opcua device needs an opcua: section with at least endpoint")
		} else {
			c.fieldErrors(dev.OPCUA.Validate(), func(k string) string { return join(dp+".opcua", k) })
			c.interval(dp+".opcua.timeout", dev.OPCUA.Timeout)
			c.interval(dp+".opcua.publishing_interval", dev.OPCUA.PublishingInterval)
		}
		if dev.Modbus != nil {
			c.badKey(dp+".modbus", "a modbus section on an opcua device (the protocol comes from %s); remove it", from)
		}
	}

	c.interval(dp+".interval", dev.Interval)
	c.interval(dp+".heartbeat", dev.Heartbeat)
	tagKeys := make([]string, 0, len(dev.Tags))
	for k := range dev.Tags {
		tagKeys = append(tagKeys, k)
	}
	sort.Strings(tagKeys)
	for _, k := range tagKeys {
		tp := dp + ".tags." + k
		switch {
		case reservedTags[k]:
			c.badKey(tp, "tag %q is set by Weft on every sample; choose another name", k)
		case !validName(k):
			c.badKey(tp, "tag name %q has characters outside %s", k, nameChars)
		case dev.Tags[k] == "":
			c.bad(tp, "is empty; allowed a value, or leave the tag out")
		}
	}

	// Device points: unique among themselves; same name as a profile point
	// overrides that point key by key, a new name extends the list.
	seen := map[string]string{}
	for j := range dev.Points {
		c.uniquePoint(seen, dev.Points[j].Name, fmt.Sprintf("%s.points[%d]", dp, j))
	}
	points, srcs, written := c.mergePoints(dev, dp, profile)
	for k := range points {
		if written[k] {
			c.point(&points[k], proto, srcs[k])
		}
		// A profile point untouched by the device was checked with its
		// profile; only what depends on the device is left.
		c.deviceLimits(&points[k], proto, dev, srcs[k])
	}
	if len(points) == 0 && (dev.Profile == "" || (profile != nil && len(profile.Points) > 0)) {
		c.bad(dp+".points", "the device has no points; add points: or a profile:")
	}
	dev.Points = points
}

func profileList(ps map[string]Profile) string {
	if len(ps) == 0 {
		return "no profiles are defined (add them under profiles:)"
	}
	names := make([]string, 0, len(ps))
	for n := range ps {
		names = append(names, n)
	}
	sort.Strings(names)
	return "allowed " + strings.Join(names, ", ")
}

// mergePoints builds a device's final points: the profile's points in their
// order, each overridden key by key by a device point of the same name,
// then the device's other points in their order. srcs[i] maps a key of
// point i to where it was written, so a problem in a profile's key is
// reported at the profile's line. written[i] is true when the device wrote
// some of point i.
func (c *checker) mergePoints(dev *Device, dp string, profile *Profile) (points []Point, srcs []func(string) string, written []bool) {
	n := len(dev.Points)
	if profile != nil {
		n += len(profile.Points)
	}
	points = make([]Point, 0, n)
	srcs = make([]func(string) string, 0, n)
	written = make([]bool, 0, n)
	byName := map[string]int{}
	if profile != nil {
		for i := range profile.Points {
			pp := fmt.Sprintf("profiles.%s.points[%d]", dev.Profile, i)
			points = append(points, clonePoint(profile.Points[i]))
			srcs = append(srcs, func(k string) string { return join(pp, k) })
			written = append(written, false)
			if n := profile.Points[i].Name; n != "" {
				if _, dup := byName[n]; !dup {
					byName[n] = i
				}
			}
		}
	}
	for j := range dev.Points {
		ip := fmt.Sprintf("%s.points[%d]", dp, j)
		i, ok := byName[dev.Points[j].Name]
		if !ok || dev.Points[j].Name == "" {
			points = append(points, clonePoint(dev.Points[j]))
			srcs = append(srcs, func(k string) string { return join(ip, k) })
			written = append(written, true)
			continue
		}
		delete(byName, dev.Points[j].Name) // a second device point of that name extends (and is reported as a duplicate)
		dst := reflect.ValueOf(&points[i]).Elem()
		src := reflect.ValueOf(clonePoint(dev.Points[j]))
		overridden := map[string]bool{}
		for _, key := range pointFields.keys {
			if c.set(join(ip, key)) {
				idx := pointFields.byKey[key]
				dst.FieldByIndex(idx).Set(src.FieldByIndex(idx))
				overridden[key] = true
			}
		}
		written[i] = true
		prof := srcs[i]
		srcs[i] = func(k string) string {
			if overridden[strings.SplitN(k, ".", 2)[0]] {
				return join(ip, k)
			}
			return prof(k)
		}
	}
	return points, srcs, written
}

// clonePoint copies a point so that devices sharing a profile share no
// pointers.
func clonePoint(p Point) Point {
	v := reflect.ValueOf(&p).Elem()
	for _, idx := range pointFields.byKey {
		f := v.FieldByIndex(idx)
		if f.Kind() == reflect.Pointer && !f.IsNil() {
			n := reflect.New(f.Type().Elem())
			n.Elem().Set(f.Elem())
			f.Set(n)
		}
	}
	return p
}

// point checks one point of protocol proto ("" when unknown: only the
// common keys are checked). src maps a key of the point to its path in the
// file.
func (c *checker) point(p *Point, proto string, src func(string) string) {
	c.name(src("name"), p.Name, true, "the point a name")
	if p.Deadband != nil && *p.Deadband < 0 {
		c.bad(src("deadband"), "%g is negative; allowed 0 or more", *p.Deadband)
	}
	if p.DeadbandPercent != nil && *p.DeadbandPercent < 0 {
		c.bad(src("deadband_percent"), "%g is negative; allowed 0 or more", *p.DeadbandPercent)
	}
	if p.Deadband != nil && p.DeadbandPercent != nil {
		c.badKey(src("deadband_percent"), "both deadband and deadband_percent are set; keep one")
	}
	c.interval(src("heartbeat"), p.Heartbeat)
	if p.Scale != nil && *p.Scale == 0 {
		c.bad(src("scale"), "0 would turn every value into the offset; allowed any other number (leave it out for 1)")
	}
	foreign, own := false, false
	for other, keys := range protocolKeys {
		if proto == "" {
			continue
		}
		for _, k := range keys {
			if !c.set(src(k)) {
				continue
			}
			if other == proto {
				own = true
				continue
			}
			foreign = true
			c.badKey(src(k), "%s is a key of %s points, but this is a %s point; allowed for %s: %s",
				k, other, proto, proto, strings.Join(protocolKeys[proto], ", "))
		}
	}
	if foreign && !own {
		// A point written wholly for the other protocol: one message
		// says so; listing every missing key would bury it.
		return
	}
	switch proto {
	case "modbus":
		c.fieldErrors(p.Modbus.Validate(), src)
	case "opcua":
		c.fieldErrors(p.OPCUA.Validate(), src)
		c.interval(src("sampling_interval"), p.OPCUA.SamplingInterval)
	}
}

// deviceLimits checks what a point asks of its device: a string must fit in
// one request of the device's max_registers_per_request.
func (c *checker) deviceLimits(p *Point, proto string, dev *Device, src func(string) string) {
	if proto != "modbus" || dev.Modbus == nil || p.Modbus.Type != "string" {
		return
	}
	limit := dev.Modbus.MaxRegistersPerRequest
	if limit > 0 && limit <= 125 && p.Modbus.Length > limit {
		c.bad(src("length"), "%d registers do not fit in one request of device %s (max_registers_per_request %d); allowed 1..%d", p.Modbus.Length, dev.ID, limit, limit)
	}
}

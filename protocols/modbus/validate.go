package modbus

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/weftiot/weft/protocols"
)

// Validation and defaults of the `modbus:` device section and the Modbus keys
// of a point. The config loader calls Validate on every section and point and
// turns each FieldError into FILE:LINE:COL: path: message; SetDefaults runs
// only on a config without problems.

// Defaults of the device section.
const (
	cfgDefaultUnit                   = 1
	cfgDefaultTimeout                = time.Second
	cfgDefaultRetries                = 2
	cfgDefaultMaxRegistersPerRequest = 125
	cfgDefaultMaxBitsPerRequest      = 2000
	cfgDefaultOrder                  = "ABCD"
)

// cfgRegisterTypes maps each register point type to the registers it
// occupies (a string occupies its length).
var cfgRegisterTypes = map[string]int{
	"int16": 1, "uint16": 1, "bit": 1,
	"int32": 2, "uint32": 2, "float32": 2,
	"int64": 4, "uint64": 4, "float64": 4,
	"string": 0,
}

const (
	cfgTypes  = "bool, bit, int16, uint16, int32, uint32, int64, uint64, float32, float64, string"
	cfgTables = "coil, discrete, input, holding"
	cfgOrders = "ABCD, DCBA, BADC, CDAB"
)

func cfgFieldErr(field, format string, args ...any) protocols.FieldError {
	return protocols.FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Validate checks the device section. Field names the key below `modbus:`.
func (c *DeviceConfig) Validate() []protocols.FieldError {
	var errs []protocols.FieldError
	errs = append(errs, cfgValidateTarget(c.Target)...)
	if len(errs) == 0 {
		// The driver's own parser as well: what passes here, the driver
		// accepts.
		if _, err := ParseTarget(c.Target); err != nil {
			errs = append(errs, cfgFieldErr("target", "%v", err))
		}
	}
	if c.Unit != nil {
		// Serial slaves are 1..247 (0 broadcasts); on Modbus TCP the unit
		// id only matters behind a gateway, and 255 addresses the device
		// itself, as the Modbus TCP specification recommends.
		top := 247
		if scheme, _, _ := strings.Cut(c.Target, "://"); strings.EqualFold(scheme, "tcp") {
			top = 255
		}
		if *c.Unit < 0 || *c.Unit > top {
			errs = append(errs, cfgFieldErr("unit", "%d is out of range; allowed 0..255 on tcp:// (255: the device itself), 0..247 on serial lines", *c.Unit))
		}
	}
	if c.Timeout < 0 {
		errs = append(errs, cfgFieldErr("timeout", "%s is negative; allowed a duration greater than 0, like 1s", c.Timeout))
	}
	if c.Retries != nil && (*c.Retries < 0 || *c.Retries > 10) {
		errs = append(errs, cfgFieldErr("retries", "%d is out of range; allowed 0..10", *c.Retries))
	}
	if c.MaxRegistersPerRequest != 0 && (c.MaxRegistersPerRequest < 1 || c.MaxRegistersPerRequest > 125) {
		errs = append(errs, cfgFieldErr("max_registers_per_request", "%d is out of range; allowed 1..125", c.MaxRegistersPerRequest))
	}
	if c.MaxBitsPerRequest != 0 && (c.MaxBitsPerRequest < 1 || c.MaxBitsPerRequest > 2000) {
		errs = append(errs, cfgFieldErr("max_bits_per_request", "%d is out of range; allowed 1..2000", c.MaxBitsPerRequest))
	}
	if c.MaxGap != nil && (*c.MaxGap < 0 || *c.MaxGap > 125) {
		errs = append(errs, cfgFieldErr("max_gap", "%d is out of range; allowed 0..125", *c.MaxGap))
	}
	if c.InterRequestDelay < 0 || c.InterRequestDelay > 10*time.Second {
		errs = append(errs, cfgFieldErr("inter_request_delay", "%s is out of range; allowed 0s..10s", c.InterRequestDelay))
	}
	if c.MaxInflight != nil {
		scheme, _, _ := strings.Cut(c.Target, "://")
		if msg := maxInflightProblem(*c.MaxInflight, scheme); msg != "" {
			errs = append(errs, cfgFieldErr("max_inflight", "%s", msg))
		}
	}
	return errs
}

// maxInflightProblem says what is wrong with max_inflight n on a target of
// scheme, or "" when nothing is: one rule for config check and the driver.
func maxInflightProblem(n int, scheme string) string {
	switch {
	case n < 1 || n > MaxInflightLimit:
		return fmt.Sprintf("%d is out of range; allowed 1..%d (1: one request at a time)", n, MaxInflightLimit)
	case n > 1 && !strings.EqualFold(scheme, "tcp"):
		return fmt.Sprintf("%d needs a tcp:// target; %s frames carry no transaction id, so the line carries one request at a time: leave max_inflight out or set 1", n, cfgOr(scheme, "this target's"))
	}
	return ""
}

// validateTarget checks tcp://host[:port], rtuovertcp://host[:port] (port
// 502 when omitted), rtu:///dev/ttyX?baud=9600&parity=N&data_bits=8&stop_bits=1
// and ascii:///dev/ttyX?... .
func cfgValidateTarget(target string) []protocols.FieldError {
	const allowed = "allowed tcp://host:port, rtuovertcp://host:port, rtu:///dev/ttyUSB0?baud=9600 or ascii:///dev/ttyS0?baud=9600"
	if target == "" {
		return []protocols.FieldError{cfgFieldErr("target", "missing; %s", allowed)}
	}
	scheme, rest, ok := strings.Cut(target, "://")
	if !ok {
		return []protocols.FieldError{cfgFieldErr("target", "%q has no scheme; %s", target, allowed)}
	}
	switch scheme {
	case "tcp", "rtuovertcp":
		if strings.ContainsAny(rest, "/?#@") {
			return []protocols.FieldError{cfgFieldErr("target", "%q: %s takes only host:port, no path or settings", target, scheme)}
		}
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			host, port = strings.Trim(rest, "[]"), "502"
		}
		if host == "" {
			return []protocols.FieldError{cfgFieldErr("target", "%q has no host; allowed %s://host:port", target, scheme)}
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return []protocols.FieldError{cfgFieldErr("target", "port %q is out of range; allowed 1..65535", port)}
		}
		return nil
	case "rtu", "ascii":
		path, query, _ := strings.Cut(rest, "?")
		if !strings.HasPrefix(path, "/") || len(path) < 2 {
			return []protocols.FieldError{cfgFieldErr("target", "%q has no device path; allowed %s:///dev/ttyUSB0?baud=9600 (three slashes)", target, scheme)}
		}
		q, err := url.ParseQuery(query)
		if err != nil {
			return []protocols.FieldError{cfgFieldErr("target", "%q: settings after ? are not key=value&...; allowed baud, parity, data_bits, stop_bits", target)}
		}
		var errs []protocols.FieldError
		for _, key := range []string{"baud", "parity", "data_bits", "stop_bits"} {
			vals, ok := q[key]
			if !ok {
				continue
			}
			delete(q, key)
			v := vals[len(vals)-1]
			switch key {
			case "baud":
				if n, err := strconv.Atoi(v); err != nil || n < 50 || n > 4000000 {
					errs = append(errs, cfgFieldErr("target", "baud %q is not a baud rate; allowed a rate like 9600, 19200 or 115200", v))
				}
			case "parity":
				if v != "N" && v != "E" && v != "O" {
					errs = append(errs, cfgFieldErr("target", "parity %q is not allowed; allowed N, E, O", v))
				}
			case "data_bits":
				if v != "7" && v != "8" {
					errs = append(errs, cfgFieldErr("target", "data_bits %q is not allowed; allowed 7, 8", v))
				}
			case "stop_bits":
				if v != "1" && v != "2" {
					errs = append(errs, cfgFieldErr("target", "stop_bits %q is not allowed; allowed 1, 2", v))
				}
			}
		}
		for key := range q {
			errs = append(errs, cfgFieldErr("target", "unknown serial setting %q; allowed baud, parity, data_bits, stop_bits", key))
		}
		return errs
	}
	return []protocols.FieldError{cfgFieldErr("target", "scheme %q is not a Modbus transport; %s", scheme, allowed)}
}

// AddressCount is how many addresses of its table the point occupies: 1 for a
// coil, discrete input or 16-bit register, 2 or 4 for 32- and 64-bit
// values, its length for a string. It is 0 when the type is unknown.
func (p *PointConfig) AddressCount() int {
	if p.Type == "bool" || (p.Type == "" && (p.Table == "coil" || p.Table == "discrete")) {
		return 1
	}
	n, ok := cfgRegisterTypes[p.Type]
	if !ok {
		return 0
	}
	if p.Type == "string" {
		return p.Length
	}
	return n
}

// Validate checks the Modbus keys of a point. Field names the key (table,
// address, type, order, bit, length).
func (p *PointConfig) Validate() []protocols.FieldError {
	var errs []protocols.FieldError
	bits := p.Table == "coil" || p.Table == "discrete"
	tableOK := false
	switch p.Table {
	case "coil", "discrete", "input", "holding":
		tableOK = true
	case "":
		errs = append(errs, cfgFieldErr("table", "missing; allowed %s", cfgTables))
	default:
		errs = append(errs, cfgFieldErr("table", "%q is not a Modbus table; allowed %s", p.Table, cfgTables))
	}
	if p.Address == nil {
		errs = append(errs, cfgFieldErr("address", "missing; allowed 0..65535 (the 0-based protocol address)"))
	} else if *p.Address < 0 || *p.Address > 65535 {
		errs = append(errs, cfgFieldErr("address", "%d is out of range; allowed 0..65535 (the 0-based protocol address)", *p.Address))
	}

	_, isRegType := cfgRegisterTypes[p.Type]
	typeOK := true
	switch {
	case p.Type == "" && bits:
		// bool is the only type of a coil or discrete input: the default.
	case p.Type == "":
		typeOK = false
		if tableOK {
			errs = append(errs, cfgFieldErr("type", "missing; allowed %s", cfgTypes))
		}
	case p.Type == "bool":
		if p.Table == "input" || p.Table == "holding" {
			typeOK = false
			errs = append(errs, cfgFieldErr("type", "bool is for coil and discrete tables; for one bit of a %s register use type: bit with bit: 0..15", p.Table))
		}
	case isRegType:
		if bits {
			typeOK = false
			errs = append(errs, cfgFieldErr("type", "%s needs a register table (input or holding); a %s is a single bit: use type bool or leave type out", p.Type, p.Table))
		}
	default:
		typeOK = false
		errs = append(errs, cfgFieldErr("type", "%q is not a Modbus point type; allowed %s", p.Type, cfgTypes))
	}

	if p.Order != "" {
		switch {
		case p.Order != "ABCD" && p.Order != "DCBA" && p.Order != "BADC" && p.Order != "CDAB":
			errs = append(errs, cfgFieldErr("order", "%q is not a byte order; allowed %s", p.Order, cfgOrders))
		case bits || p.Type == "bool" || p.Type == "bit":
			errs = append(errs, cfgFieldErr("order", "a %s point has no byte order; order is for register types int16 .. float64 and string", cfgOr(p.Type, "bool")))
		}
	}

	if p.Type == "bit" {
		if p.Bit == nil {
			errs = append(errs, cfgFieldErr("bit", "missing; type bit needs bit: 0..15 (0 is the least significant)"))
		} else if *p.Bit < 0 || *p.Bit > 15 {
			errs = append(errs, cfgFieldErr("bit", "%d is out of range; allowed 0..15 (0 is the least significant)", *p.Bit))
		}
	} else if p.Bit != nil {
		errs = append(errs, cfgFieldErr("bit", "only a point of type bit takes bit; this one is %s", cfgOr(p.Type, "bool")))
	}

	if p.Type == "string" {
		if p.Length < 1 || p.Length > 125 {
			if p.Length == 0 {
				errs = append(errs, cfgFieldErr("length", "missing; type string needs length: 1..125 (registers, two characters each)"))
			} else {
				errs = append(errs, cfgFieldErr("length", "%d is out of range; allowed 1..125 (registers, two characters each)", p.Length))
			}
			typeOK = false
		}
	} else if p.Length != 0 {
		errs = append(errs, cfgFieldErr("length", "only a point of type string takes length; this one is %s", cfgOr(p.Type, "bool")))
	}

	if typeOK && p.Address != nil && *p.Address >= 0 && *p.Address <= 65535 {
		if w := p.AddressCount(); w > 1 && *p.Address+w-1 > 65535 {
			errs = append(errs, cfgFieldErr("address", "%s at %d ends at %d, past the last address 65535", p.Type, *p.Address, *p.Address+w-1))
		}
	}
	return errs
}

func cfgOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// SetDefaults fills the keys left out of a valid device section.
func (c *DeviceConfig) SetDefaults() {
	if c.Unit == nil {
		u := cfgDefaultUnit
		c.Unit = &u
	}
	if c.Timeout == 0 {
		c.Timeout = cfgDefaultTimeout
	}
	if c.Retries == nil {
		r := cfgDefaultRetries
		c.Retries = &r
	}
	if c.MaxRegistersPerRequest == 0 {
		c.MaxRegistersPerRequest = cfgDefaultMaxRegistersPerRequest
	}
	if c.MaxBitsPerRequest == 0 {
		c.MaxBitsPerRequest = cfgDefaultMaxBitsPerRequest
	}
	if c.MaxGap == nil {
		scheme, _, _ := strings.Cut(c.Target, "://")
		g := DefaultMaxGapFor(scheme)
		c.MaxGap = &g
	}
	if c.MaxInflight == nil {
		n := 1
		c.MaxInflight = &n
	}
}

// SetDefaults fills the keys left out of a valid point: type bool on coil
// and discrete tables, order ABCD on register types other than bit.
func (p *PointConfig) SetDefaults() {
	if p.Type == "" && (p.Table == "coil" || p.Table == "discrete") {
		p.Type = "bool"
	}
	if _, ok := cfgRegisterTypes[p.Type]; ok && p.Type != "bit" && p.Order == "" {
		p.Order = cfgDefaultOrder
	}
}

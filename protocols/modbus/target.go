package modbus

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// BaudRates are the serial line speeds the driver can set.
var BaudRates = []int{1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600}

// Target is a parsed device target (DeviceConfig.Target).
type Target struct {
	// Scheme is tcp, rtuovertcp, rtu or ascii.
	Scheme string
	// Address is host:port for tcp and rtuovertcp (port 502 when omitted),
	// the serial device path for rtu and ascii.
	Address string
	// Serial line settings for rtu and ascii (defaults 9600 8N1).
	Baud     int
	DataBits int
	Parity   string // N, E or O
	StopBits int
}

// Serial reports whether the target is a serial line.
func (t Target) Serial() bool { return t.Scheme == "rtu" || t.Scheme == "ascii" }

// String is the canonical form of the target; devices whose targets have the
// same canonical form share one connection and one request queue.
func (t Target) String() string {
	if t.Serial() {
		return fmt.Sprintf("%s://%s?baud=%d&data_bits=%d&parity=%s&stop_bits=%d", t.Scheme, t.Address, t.Baud, t.DataBits, t.Parity, t.StopBits)
	}
	return t.Scheme + "://" + t.Address
}

// ParseTarget parses tcp://host[:port], rtuovertcp://host[:port],
// rtu:///dev/ttyUSB0?baud=9600&parity=N&data_bits=8&stop_bits=1 and
// ascii:///dev/ttyS1?... . The error says what is wrong and what is expected.
func ParseTarget(s string) (Target, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return Target{}, fmt.Errorf("target %q: want tcp://host:port, rtuovertcp://host:port, rtu:///dev/ttyX?baud=9600 or ascii:///dev/ttyX?baud=9600", s)
	}
	t := Target{Scheme: strings.ToLower(scheme)}
	switch t.Scheme {
	case "tcp", "rtuovertcp":
		if strings.ContainsAny(rest, "/?#@") {
			return Target{}, fmt.Errorf("target %q: %s takes only host:port", s, t.Scheme)
		}
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			// No port: the Modbus default.
			host, port = strings.Trim(rest, "[]"), "502"
		}
		if host == "" {
			return Target{}, fmt.Errorf("target %q: missing host", s)
		}
		if strings.ContainsAny(host, "[] \t\r\n") || (strings.Contains(host, ":") && net.ParseIP(host) == nil) {
			return Target{}, fmt.Errorf("target %q: host %q: want a name, an IPv4 address or a bracketed IPv6 address", s, host)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return Target{}, fmt.Errorf("target %q: port %q: want 1..65535", s, port)
		}
		t.Address = net.JoinHostPort(host, strconv.Itoa(p))
		return t, nil
	case "rtu", "ascii":
		path, query, _ := strings.Cut(rest, "?")
		if path == "" || !strings.HasPrefix(path, "/") {
			return Target{}, fmt.Errorf("target %q: want %s:///dev/ttyX (an absolute device path)", s, t.Scheme)
		}
		t.Address = path
		t.Baud, t.DataBits, t.Parity, t.StopBits = 9600, 8, "N", 1
		q, err := url.ParseQuery(query)
		if err != nil {
			return Target{}, fmt.Errorf("target %q: query: %v", s, err)
		}
		for key, vals := range q {
			v := vals[len(vals)-1]
			switch key {
			case "baud":
				t.Baud, err = strconv.Atoi(v)
				if err != nil || !slices.Contains(BaudRates, t.Baud) {
					return Target{}, fmt.Errorf("target %q: baud %q: want one of %v", s, v, BaudRates)
				}
			case "data_bits":
				t.DataBits, err = strconv.Atoi(v)
				if err != nil || t.DataBits < 5 || t.DataBits > 8 {
					return Target{}, fmt.Errorf("target %q: data_bits %q: want 7 or 8", s, v)
				}
			case "parity":
				t.Parity = strings.ToUpper(v)
				if t.Parity != "N" && t.Parity != "E" && t.Parity != "O" {
					return Target{}, fmt.Errorf("target %q: parity %q: want N, E or O", s, v)
				}
			case "stop_bits":
				t.StopBits, err = strconv.Atoi(v)
				if err != nil || (t.StopBits != 1 && t.StopBits != 2) {
					return Target{}, fmt.Errorf("target %q: stop_bits %q: want 1 or 2", s, v)
				}
			default:
				return Target{}, fmt.Errorf("target %q: unknown setting %q: want baud, data_bits, parity or stop_bits", s, key)
			}
		}
		return t, nil
	}
	return Target{}, fmt.Errorf("target %q: scheme %q: want tcp, rtuovertcp, rtu or ascii", s, scheme)
}

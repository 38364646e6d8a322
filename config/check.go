package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/weftiot/weft/protocols"
)

// checker runs the semantic rules on a decoded config. It knows where each
// key was written (the decoder's places) so that every problem carries a
// position: the key's value when the key is present, otherwise the nearest
// enclosing mapping or list item that is.
type checker struct {
	d    *decoder
	dir  string // the config file's directory; *_file paths are relative to it
	errs Errors
}

func (c *checker) place(path string) (place, bool) {
	for p := path; p != ""; p = parent(p) {
		if pl, ok := c.d.places[p]; ok {
			return pl, true
		}
	}
	return place{key: pos{1, 1}, val: pos{1, 1}}, false
}

// parent strips the last .key or [i] from a path.
func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// set reports whether the key at path was written in the file (even as
// null).
func (c *checker) set(path string) bool {
	_, ok := c.d.places[path]
	return ok
}

// bad records a problem with the value at path.
func (c *checker) bad(path, format string, args ...any) {
	pl, _ := c.place(path)
	c.add(pl.val, path, fmt.Sprintf(format, args...))
}

// badKey records a problem with the key at path itself (for example a key
// that does not belong).
func (c *checker) badKey(path, format string, args ...any) {
	pl, _ := c.place(path)
	c.add(pl.key, path, fmt.Sprintf(format, args...))
}

func (c *checker) add(p pos, path, msg string) {
	c.errs = append(c.errs, &Error{File: c.d.file, Line: p.line, Col: p.col, Path: path, Msg: msg})
}

// fieldErrors records a driver's problems; src maps a FieldError.Field (a
// key below the driver's section or point) to its path in the file.
func (c *checker) fieldErrors(fes []protocols.FieldError, src func(string) string) {
	for _, fe := range fes {
		c.bad(src(fe.Field), "%s", fe.Msg)
	}
}

// nameChars is what ids, sites and names may hold: they become MQTT topic
// levels, InfluxDB tag values and file names.
const nameChars = "letters, digits, _ . -"

func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '_', b == '.', b == '-':
		default:
			return false
		}
	}
	return true
}

// name checks an id, site or name; what says what it is, for the message.
func (c *checker) name(path, val string, required bool, what string) {
	switch {
	case val == "" && required:
		c.bad(path, "missing; give %s of %s", what, nameChars)
	case val == "":
	case len(val) > 128:
		c.bad(path, "is %d characters long; allowed 1..128 characters of %s", len(val), nameChars)
	case !validName(val):
		c.bad(path, "%q has characters outside %s; it becomes an MQTT topic level, so only those are allowed", val, nameChars)
	}
}

// interval checks a duration that must be greater than 0 when written.
func (c *checker) interval(path string, d time.Duration) {
	if c.set(path) && d <= 0 {
		c.bad(path, "%s is not greater than 0; allowed a duration like 1s (leave the key out for the default)", d)
	}
}

// oneOf checks an enumeration (empty is allowed: the default applies).
func (c *checker) oneOf(path, val string, allowed ...string) {
	if val == "" && !c.set(path) {
		return
	}
	for _, a := range allowed {
		if val == a {
			return
		}
	}
	c.bad(path, "%q is not allowed; allowed %s", val, strings.Join(allowed, ", "))
}

// hostPort checks a listen or dial address host:port.
func (c *checker) hostPort(path, val, example string) {
	if val == "" {
		return
	}
	host, port, err := net.SplitHostPort(val)
	if err != nil {
		c.bad(path, "%q is not host:port; allowed an address like %s", val, example)
		return
	}
	_ = host // empty host listens on every interface; that is a choice, not a mistake
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		c.bad(path, "port %q is out of range; allowed 0..65535", port)
	}
}

// secretFile reads a password_file or token_file into *dst. The file's path
// is relative to the config file's directory; one trailing newline (\n or
// \r\n) is removed. When *dst is already set the rules have reported that
// both are given, and the file is not read.
func (c *checker) secretFile(path, file string, dst *string) {
	if file == "" || *dst != "" {
		return
	}
	if !filepath.IsAbs(file) {
		file = filepath.Join(c.dir, file)
	}
	f, err := os.Open(file)
	if err != nil {
		c.bad(path, "cannot read the secret: %v; allowed a readable file holding it", err)
		return
	}
	defer f.Close()
	buf := make([]byte, 64<<10+1)
	n, _ := f.Read(buf)
	if n > 64<<10 {
		c.bad(path, "%s is larger than 64KiB; allowed a file holding only the secret", file)
		return
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(buf[:n]), "\n"), "\r")
	if s == "" {
		c.bad(path, "%s is empty; allowed a file holding the secret", file)
		return
	}
	*dst = s
}

// mqtt checks the broker link of the agent (gateway false) or the gateway.
func (c *checker) mqtt(m *MQTT, gateway bool) {
	const schemes = "tcp://host:port, ssl://host:port (also tls:// or mqtts://), ws://host:port/path or wss://host:port/path"
	encrypted := false
	shown := redactURL(m.Broker) // a password in the URL never appears in a message
	switch {
	case m.Broker == "":
		if gateway {
			c.bad("mqtt.broker", "missing; allowed %s, or embedded for the gateway's own broker", schemes)
		} else {
			c.bad("mqtt.broker", "missing; allowed %s", schemes)
		}
	case m.Broker == "embedded":
		if !gateway {
			c.bad("mqtt.broker", "embedded is only for the gateway; allowed %s", schemes)
		}
	default:
		u, err := url.Parse(m.Broker)
		if err != nil || !strings.Contains(m.Broker, "://") {
			c.bad("mqtt.broker", "%q is not a URL; allowed %s", shown, schemes)
			break
		}
		switch u.Scheme {
		case "tcp", "ssl", "tls", "mqtts":
			encrypted = u.Scheme != "tcp"
			if u.Port() == "" {
				port := "1883"
				if encrypted {
					port = "8883"
				}
				c.bad("mqtt.broker", "%q has no port; allowed %s://host:port, like %s://127.0.0.1:%s", shown, u.Scheme, u.Scheme, port)
			} else if u.Path != "" && u.Path != "/" {
				c.bad("mqtt.broker", "%q has a path; %s:// takes only host:port", shown, u.Scheme)
			}
		case "ws", "wss":
			encrypted = u.Scheme == "wss"
		default:
			c.bad("mqtt.broker", "scheme %q is not an MQTT transport; allowed %s", u.Scheme, schemes)
		}
		if u.Scheme != "" && u.Hostname() == "" {
			c.bad("mqtt.broker", "%q has no host; allowed %s", shown, schemes)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				c.bad("mqtt.broker", "port %q is out of range; allowed 1..65535", p)
			}
		}
		if u.User != nil {
			c.bad("mqtt.broker", "has user information in the URL; put it in mqtt.username and mqtt.password (or password_file)")
		}
	}
	if m.TLS != (TLS{}) && m.Broker != "" && m.Broker != "embedded" && !encrypted && strings.Contains(m.Broker, "://") {
		c.badKey("mqtt.tls", "is set but the broker %s is not encrypted; use ssl://, tls://, mqtts:// or wss://", shown)
	}
	if (m.TLS.Cert == "") != (m.TLS.Key == "") {
		missing := "mqtt.tls.key"
		if m.TLS.Cert == "" {
			missing = "mqtt.tls.cert"
		}
		c.bad(missing, "missing; a client certificate needs both cert and key (PEM files)")
	}
	if m.TopicPrefix != "" || c.set("mqtt.topic_prefix") {
		if msg := checkTopicPrefix(m.TopicPrefix); msg != "" {
			c.bad("mqtt.topic_prefix", "%q %s; allowed levels of %s separated by /, like weft/v1", m.TopicPrefix, msg, nameChars)
		}
	}
	if m.ClientID != "" && (len(m.ClientID) > 128 || strings.ContainsAny(m.ClientID, "+#/")) {
		c.bad("mqtt.client_id", "%q is not allowed; allowed up to 128 characters without + # /", m.ClientID)
	}
	if m.Password != "" && m.PasswordFile != "" {
		c.bad("mqtt.password_file", "both password and password_file are set; keep one")
	}
	if (m.Password != "" || m.PasswordFile != "") && m.Username == "" {
		key := "mqtt.password"
		if m.Password == "" {
			key = "mqtt.password_file"
		}
		c.badKey(key, "a password needs a username (MQTT sends no password without one); add mqtt.username")
	}
	if c.set("mqtt.keepalive") && m.KeepAlive < time.Second {
		c.bad("mqtt.keepalive", "%s is below 1s; allowed a duration of 1s or more, like 30s", m.KeepAlive)
	}
	if c.set("mqtt.max_inflight") && (m.MaxInflight < 1 || m.MaxInflight > 65535) {
		c.bad("mqtt.max_inflight", "%d is out of range; allowed 1..65535", m.MaxInflight)
	}
	c.oneOf("mqtt.format", m.Format, "native", "sparkplug_b")
	if gateway {
		c.sharedGroup(m.SharedGroup)
	} else if c.set("mqtt.shared_group") {
		c.badKey("mqtt.shared_group", "is a gateway key; the agent publishes and does not share subscriptions, remove it")
	}
	if c.set("mqtt.sparkplug.host_id") || m.Sparkplug.HostID != "" {
		c.name("mqtt.sparkplug.host_id", m.Sparkplug.HostID, true, "the Sparkplug host application id")
	}
	if !gateway {
		if c.set("mqtt.sparkplug.enabled") {
			c.badKey("mqtt.sparkplug.enabled", "is a gateway key; an agent speaks Sparkplug B with mqtt.format: sparkplug_b, remove it")
		}
		if c.set("mqtt.sparkplug.host_id") && m.Format != "sparkplug_b" {
			c.badKey("mqtt.sparkplug.host_id", "is set but mqtt.format is not sparkplug_b; set mqtt.format: sparkplug_b or remove it")
		}
		if c.set("mqtt.sparkplug.hold") {
			switch {
			case m.Format != "sparkplug_b":
				c.badKey("mqtt.sparkplug.hold", "is set but mqtt.format is not sparkplug_b; set mqtt.format: sparkplug_b or remove it")
			case m.Sparkplug.HostID == "":
				c.badKey("mqtt.sparkplug.hold", "does nothing without a primary host; set mqtt.sparkplug.host_id or remove it")
			}
			if m.Sparkplug.Hold < time.Second {
				c.bad("mqtt.sparkplug.hold", "%s is below 1s; allowed a duration of 1s or more, like 60s (longer than the host takes to come back after a broker restart)", m.Sparkplug.Hold)
			}
		}
	} else {
		if c.set("mqtt.format") && m.Format == "sparkplug_b" {
			c.badKey("mqtt.format", "sparkplug_b is an agent setting; a gateway takes Sparkplug B with mqtt.sparkplug: {enabled: true}")
		}
		if c.set("mqtt.sparkplug.hold") {
			c.badKey("mqtt.sparkplug.hold", "is an agent key (how long an edge node keeps what it sent in its spool); remove it")
		}
	}
}

// offWords are values of mqtt.shared_group that read as "no group" but
// would be taken as a group's name.
var offWords = map[string]bool{"none": true, "off": true, "no": true, "false": true, "disabled": true, "disable": true, "null": true}

// sharedGroup checks the gateway's mqtt.shared_group. Left out, the gateway
// subscribes to the data without a group (the default: Mosquitto keeps such
// a subscription across its restart, not a $share one). A name opts into
// $share/NAME/. An empty value and words that read as "off" are refused, so
// nobody believes they switched sharing off while they named a group.
func (c *checker) sharedGroup(g string) {
	const path = "mqtt.shared_group"
	switch {
	case !c.set(path):
	case g == "":
		c.bad(path, "is empty; leave the key out to subscribe without a shared group (the default), or name a group, like weft-gateway, to share the data among gateways")
	case offWords[strings.ToLower(g)]:
		c.bad(path, "%q would be taken as the name of a group, not as switching sharing off; leave the key out to subscribe without a shared group (the default)", g)
	default:
		c.name(path, g, false, "the shared subscription group")
	}
}

// checkTopicPrefix says what is wrong with an MQTT topic prefix, or "".
func checkTopicPrefix(p string) string {
	if p == "" {
		return "is empty"
	}
	if strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
		return "starts or ends with /"
	}
	for _, level := range strings.Split(p, "/") {
		if !validName(level) {
			return "has an empty level or characters outside " + nameChars
		}
	}
	return ""
}

// redactURL hides the password of a URL with user information (and the
// whole text when it cannot be parsed but looks like it holds one).
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			return "(a URL with user information, not shown)"
		}
		return s
	}
	return u.Redacted()
}

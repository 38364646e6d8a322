package opcua

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/weftiot/weft/protocols"
)

// Validation and defaults of the `opcua:` device section and the OPC UA keys
// of a point. The config loader calls Validate on every section and point and
// turns each FieldError into FILE:LINE:COL: path: message; SetDefaults runs
// only on a config without problems.

// Defaults of the device section and of a point.
const (
	cfgDefaultTimeout   = 5 * time.Second
	cfgDefaultQueueSize = 10
)

const (
	cfgPolicies = "None, Basic256Sha256, Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss"
	cfgModes    = "None, Sign, SignAndEncrypt"
	cfgAuths    = "anonymous, username, certificate"
)

func cfgFieldErr(field, format string, args ...any) protocols.FieldError {
	return protocols.FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Validate checks the device section. Field names the key below `opcua:`.
func (c *DeviceConfig) Validate() []protocols.FieldError {
	var errs []protocols.FieldError
	if e, ok := cfgValidateEndpoint(c.Endpoint); !ok {
		errs = append(errs, e)
	}
	policyOK := true
	switch c.SecurityPolicy {
	case "", "None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss":
	case "Basic128Rsa15", "Basic256":
		policyOK = false
		errs = append(errs, cfgFieldErr("security_policy", "%s is deprecated by the OPC Foundation and not supported; allowed %s", c.SecurityPolicy, cfgPolicies))
	default:
		policyOK = false
		errs = append(errs, cfgFieldErr("security_policy", "%q is not a security policy; allowed %s", c.SecurityPolicy, cfgPolicies))
	}
	modeOK := true
	switch c.SecurityMode {
	case "", "None", "Sign", "SignAndEncrypt":
	default:
		modeOK = false
		errs = append(errs, cfgFieldErr("security_mode", "%q is not a security mode; allowed %s", c.SecurityMode, cfgModes))
	}
	if policyOK && modeOK {
		noPolicy := c.SecurityPolicy == "" || c.SecurityPolicy == "None"
		noMode := c.SecurityMode == "" || c.SecurityMode == "None"
		switch {
		case noPolicy && !noMode:
			errs = append(errs, cfgFieldErr("security_mode", "%s needs a security_policy other than None; allowed %s", c.SecurityMode, strings.TrimPrefix(cfgPolicies, "None, ")))
		case !noPolicy && noMode:
			errs = append(errs, cfgFieldErr("security_mode", "security_policy %s needs security_mode Sign or SignAndEncrypt", c.SecurityPolicy))
		}
	}
	switch c.Auth {
	case "", "anonymous", "certificate":
		if c.Username != "" {
			errs = append(errs, cfgFieldErr("username", "is set but auth is %s; set auth: username, or remove username", cfgOr(c.Auth, "anonymous")))
		}
		if c.Password != "" {
			errs = append(errs, cfgFieldErr("password", "is set but auth is %s; set auth: username, or remove password", cfgOr(c.Auth, "anonymous")))
		} else if c.PasswordFile != "" {
			errs = append(errs, cfgFieldErr("password_file", "is set but auth is %s; set auth: username, or remove password_file", cfgOr(c.Auth, "anonymous")))
		}
	case "username":
		if c.Username == "" {
			errs = append(errs, cfgFieldErr("username", "missing; auth: username needs username and password (or password_file)"))
		}
		if c.Password == "" && c.PasswordFile == "" {
			errs = append(errs, cfgFieldErr("password", "missing; auth: username needs password (or password_file)"))
		}
	default:
		errs = append(errs, cfgFieldErr("auth", "%q is not an authentication; allowed %s", c.Auth, cfgAuths))
	}
	if c.Password != "" && c.PasswordFile != "" {
		errs = append(errs, cfgFieldErr("password_file", "both password and password_file are set; keep one"))
	}
	if (c.Certificate == "") != (c.PrivateKey == "") {
		missing := "private_key"
		if c.Certificate == "" {
			missing = "certificate"
		}
		errs = append(errs, cfgFieldErr(missing, "missing; certificate and private_key go together (leave both out and the agent makes its own)"))
	}
	for i, f := range c.TrustedServerCerts {
		if strings.TrimSpace(f) == "" {
			errs = append(errs, cfgFieldErr(fmt.Sprintf("trusted_server_certs[%d]", i), "is empty; allowed the path of a PEM or DER certificate file"))
		}
	}
	if c.Timeout < 0 {
		errs = append(errs, cfgFieldErr("timeout", "%s is negative; allowed a duration greater than 0, like 5s", c.Timeout))
	}
	if c.PublishingInterval < 0 {
		errs = append(errs, cfgFieldErr("publishing_interval", "%s is negative; allowed a duration greater than 0, like 1s", c.PublishingInterval))
	}
	return errs
}

// cfgValidateEndpoint checks opc.tcp://host[:port][/path].
func cfgValidateEndpoint(s string) (protocols.FieldError, bool) {
	const allowed = "allowed opc.tcp://host:port/path, like opc.tcp://127.0.0.1:4840"
	if s == "" {
		return cfgFieldErr("endpoint", "missing; %s", allowed), false
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "opc.tcp" {
		return cfgFieldErr("endpoint", "%q is not an opc.tcp:// URL; %s", s, allowed), false
	}
	if u.Hostname() == "" {
		return cfgFieldErr("endpoint", "%q has no host; %s", s, allowed), false
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return cfgFieldErr("endpoint", "port %q is out of range; allowed 1..65535", p), false
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return cfgFieldErr("endpoint", "%q has an empty port; %s", s, allowed), false
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil && u.Port() != "" {
		return cfgFieldErr("endpoint", "%q: %v; %s", s, err, allowed), false
	}
	return protocols.FieldError{}, true
}

func cfgOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Validate checks the OPC UA keys of a point. Field names the key (node,
// browse_path, mode, sampling_interval, queue_size).
func (p *PointConfig) Validate() []protocols.FieldError {
	var errs []protocols.FieldError
	switch {
	case p.Node == "" && p.BrowsePath == "":
		errs = append(errs, cfgFieldErr("node", "missing; give node (a NodeId like ns=2;s=Loom7.Speed) or browse_path (like /Objects/2:Loom7/2:Speed)"))
	case p.Node != "" && p.BrowsePath != "":
		errs = append(errs, cfgFieldErr("browse_path", "both node and browse_path are set; keep one"))
	case p.Node != "":
		// The driver's own parsers: what passes here, the driver accepts.
		if _, err := ParseNodeID(p.Node); err != nil {
			errs = append(errs, cfgFieldErr("node", "%v", err))
		} else if msg := cfgNodeIDForm(p.Node); msg != "" {
			errs = append(errs, cfgFieldErr("node", "%q %s; write it like ns=2;s=Loom7.Speed, ns=3;i=1001 or i=2258", p.Node, msg))
		}
	default:
		if _, err := ParseBrowsePath(p.BrowsePath); err != nil {
			errs = append(errs, cfgFieldErr("browse_path", "%v", err))
		}
	}
	switch p.Mode {
	case "", "subscribe", "poll":
	default:
		errs = append(errs, cfgFieldErr("mode", "%q is not a mode; allowed subscribe, poll", p.Mode))
	}
	switch p.Trigger {
	case "", "status", "status_value", "status_value_timestamp":
	default:
		errs = append(errs, cfgFieldErr("trigger", "%q is not a data-change trigger; allowed status, status_value, status_value_timestamp", p.Trigger))
	}
	if p.SamplingInterval < 0 {
		errs = append(errs, cfgFieldErr("sampling_interval", "%s is negative; allowed a duration greater than 0, like 500ms", p.SamplingInterval))
	}
	if p.QueueSize < 0 || p.QueueSize > 10000 {
		errs = append(errs, cfgFieldErr("queue_size", "%d is out of range; allowed 1..10000", p.QueueSize))
	}
	return errs
}

// cfgNodeIDForm asks more of a NodeId than the driver's parser, which reads
// anything without i=, s=, g= or b= as a string id: "ns=2;x=Speed" or "Speed"
// are far more often typos than string ids. It returns what is wrong, or "".
func cfgNodeIDForm(s string) string {
	id := s
	if strings.HasPrefix(id, "ns=") || strings.HasPrefix(id, "nsu=") {
		_, id, _ = strings.Cut(id, ";")
	}
	kind, val, ok := strings.Cut(id, "=")
	switch {
	case !ok || (kind != "i" && kind != "s" && kind != "g" && kind != "b"):
		return "has no identifier type (i=, s=, g= or b=)"
	case val == "":
		return "has an empty identifier"
	}
	return ""
}

// SetDefaults fills the keys left out of a valid device section; interval
// is the device's polling interval, the default publishing interval.
func (c *DeviceConfig) SetDefaults(interval time.Duration) {
	if c.SecurityPolicy == "" {
		c.SecurityPolicy = "None"
	}
	if c.SecurityMode == "" {
		c.SecurityMode = "None"
	}
	if c.Auth == "" {
		c.Auth = "anonymous"
	}
	if c.Timeout == 0 {
		c.Timeout = cfgDefaultTimeout
	}
	if c.PublishingInterval == 0 {
		c.PublishingInterval = interval
	}
}

// SetDefaults fills the keys left out of a valid point; interval is the
// device's interval, the default sampling interval.
func (p *PointConfig) SetDefaults(interval time.Duration) {
	if p.Mode == "" {
		p.Mode = "subscribe"
	}
	if p.SamplingInterval == 0 {
		p.SamplingInterval = interval
	}
	if p.QueueSize == 0 {
		p.QueueSize = cfgDefaultQueueSize
	}
}

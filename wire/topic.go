package wire

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Topic kinds: the level after {site}/{agent}.
const (
	KindData   = "data"   // data batches, QoS 1, not retained
	KindStatus = "status" // Status, QoS 1, retained; the will sets it offline
	KindHealth = "health" // Health, QoS 0, not retained
	KindCmd    = "cmd"    // Command, QoS 1, not retained; followed by /{name}
	KindReply  = "reply"  // Reply, QoS 1, not retained; followed by /{id}
)

// DefaultPrefix is the topic prefix when the configuration names none.
const DefaultPrefix = "weft/v1"

// Topics builds the topics of the contract under a prefix:
//
//	{prefix}/{site}/{agent}/data|status|health|cmd/{name}|reply/{id}
//
// The builders do not validate their arguments; check names once with
// CheckLevel (config loading does) and the prefix with Validate.
// An empty Prefix means topics start at {site}.
type Topics struct{ Prefix string }

func (t Topics) base(site, agent string) string {
	if t.Prefix == "" {
		return site + "/" + agent + "/"
	}
	return t.Prefix + "/" + site + "/" + agent + "/"
}

// Data is the topic an agent publishes its batches on.
func (t Topics) Data(site, agent string) string { return t.base(site, agent) + KindData }

// Status is the agent's retained status topic, also its MQTT will topic.
func (t Topics) Status(site, agent string) string { return t.base(site, agent) + KindStatus }

// Health is the topic of the agent's periodic health.
func (t Topics) Health(site, agent string) string { return t.base(site, agent) + KindHealth }

// Cmd is the topic the gateway publishes command name to.
func (t Topics) Cmd(site, agent, name string) string {
	return t.base(site, agent) + KindCmd + "/" + name
}

// Reply is the topic the agent answers command id on.
func (t Topics) Reply(site, agent, id string) string {
	return t.base(site, agent) + KindReply + "/" + id
}

// DataWildcard matches the data topics of every agent.
func (t Topics) DataWildcard() string { return t.base("+", "+") + KindData }

// StatusWildcard matches the status topics of every agent.
func (t Topics) StatusWildcard() string { return t.base("+", "+") + KindStatus }

// HealthWildcard matches the health topics of every agent.
func (t Topics) HealthWildcard() string { return t.base("+", "+") + KindHealth }

// ReplyWildcard matches the replies of every agent, for the gateway.
func (t Topics) ReplyWildcard() string { return t.base("+", "+") + KindReply + "/+" }

// CmdWildcard matches every command for one agent, for that agent.
func (t Topics) CmdWildcard(site, agent string) string {
	return t.base(site, agent) + KindCmd + "/+"
}

// Validate checks the prefix: levels separated by '/', none empty, no
// wildcard, and no leading '$' (MQTT reserves $ topics for the broker).
func (t Topics) Validate() error {
	if t.Prefix == "" {
		return nil
	}
	if strings.HasPrefix(t.Prefix, "$") {
		return fmt.Errorf("wire: topic prefix %q: must not start with '$' (reserved for the broker)", t.Prefix)
	}
	for _, level := range strings.Split(t.Prefix, "/") {
		if err := CheckLevel(level); err != nil {
			return fmt.Errorf("wire: topic prefix %q: %w", t.Prefix, err)
		}
	}
	return nil
}

// CheckLevel checks that s can stand as one topic level: a site, an agent id,
// a command name or id. It must be non-empty UTF-8 of at most MaxNameBytes,
// without '/', '+', '#' or control characters.
func CheckLevel(s string) error {
	reason := checkLevel(s)
	if reason == "" && !utf8.ValidString(s) {
		reason = "is not valid UTF-8"
	}
	if reason != "" {
		return fmt.Errorf("topic level %q: %s", s, reason)
	}
	return nil
}

// checkLevel returns what is wrong with s as a topic level, or "", except
// for invalid UTF-8, which the caller checks (the decoder never yields it).
// It takes string or []byte without copying.
func checkLevel[T string | []byte](s T) string {
	if len(s) == 0 {
		return "must not be empty"
	}
	if len(s) > MaxNameBytes {
		return fmt.Sprintf("longer than %d bytes", MaxNameBytes)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '/':
			return "must not contain '/'"
		case c == '+' || c == '#':
			return "must not contain the MQTT wildcards '+' or '#'"
		case c < 0x20 || c == 0x7f:
			return "must not contain control characters"
		}
	}
	return ""
}

// ParseTopic splits a topic of the contract under prefix into its parts.
// kind is one of the Kind constants; rest is the command name after cmd/ or
// the id after reply/, and "" for the other kinds. An error wraps ErrTopic.
func ParseTopic(prefix, topic string) (site, agent, kind, rest string, err error) {
	tail := topic
	if prefix != "" {
		var ok bool
		tail, ok = strings.CutPrefix(topic, prefix+"/")
		if !ok {
			return "", "", "", "", fmt.Errorf("wire: topic %q: %w: not under the prefix %q", topic, ErrTopic, prefix)
		}
	}
	levels := strings.Split(tail, "/")
	if len(levels) < 3 {
		return "", "", "", "", fmt.Errorf("wire: topic %q: %w: want {site}/{agent}/{kind} after the prefix", topic, ErrTopic)
	}
	site, agent, kind = levels[0], levels[1], levels[2]
	for i, l := range levels {
		if err := CheckLevel(l); err != nil {
			return "", "", "", "", fmt.Errorf("wire: topic %q: %w: level %d: %v", topic, ErrTopic, i+1, err)
		}
	}
	switch kind {
	case KindData, KindStatus, KindHealth:
		if len(levels) != 3 {
			return "", "", "", "", fmt.Errorf("wire: topic %q: %w: nothing may follow %q", topic, ErrTopic, kind)
		}
	case KindCmd, KindReply:
		if len(levels) != 4 {
			what := "command name"
			if kind == KindReply {
				what = "command id"
			}
			return "", "", "", "", fmt.Errorf("wire: topic %q: %w: want one level, the %s, after %q", topic, ErrTopic, what, kind)
		}
		rest = levels[3]
	default:
		return "", "", "", "", fmt.Errorf("wire: topic %q: %w: unknown kind %q; want data, status, health, cmd or reply", topic, ErrTopic, kind)
	}
	return site, agent, kind, rest, nil
}

// CheckTopic checks that a decoded batch came from the agent its topic names:
// a batch that claims another site or agent than its topic is rejected, so
// one agent's credentials cannot write another agent's data.
func CheckTopic(b *Batch, site, agent string) error {
	return CheckSource(KindData, b.Site, b.Agent, site, agent)
}

// CheckSource compares the site and agent a message of the given kind
// carries with the ones of its topic. The error wraps ErrTopic.
func CheckSource(kind, msgSite, msgAgent, site, agent string) error {
	if msgSite != site || msgAgent != agent {
		return fmt.Errorf("wire: %s message: %w: payload says site %q agent %q, topic says site %q agent %q",
			kind, ErrTopic, msgSite, msgAgent, site, agent)
	}
	return nil
}

// QoS of each kind of message; only status is retained (docs/wire.md).
const (
	QoSData   byte = 1
	QoSStatus byte = 1
	QoSHealth byte = 0
	QoSCmd    byte = 1
	QoSReply  byte = 1
)

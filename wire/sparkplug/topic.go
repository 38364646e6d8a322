package sparkplug

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Namespace is the first topic level of every Sparkplug B message.
const Namespace = "spBv1.0"

// MessageType is the third topic level of a Sparkplug B topic (or STATE).
type MessageType string

// The message types of Sparkplug B 3.0.
const (
	NBIRTH MessageType = "NBIRTH"
	NDEATH MessageType = "NDEATH"
	DBIRTH MessageType = "DBIRTH"
	DDEATH MessageType = "DDEATH"
	NDATA  MessageType = "NDATA"
	DDATA  MessageType = "DDATA"
	NCMD   MessageType = "NCMD"
	DCMD   MessageType = "DCMD"
	STATE  MessageType = "STATE"
)

// IsDevice reports whether t is about a device (its topic has a device level).
func (t MessageType) IsDevice() bool {
	switch t {
	case DBIRTH, DDEATH, DDATA, DCMD:
		return true
	}
	return false
}

func (t MessageType) valid() bool {
	switch t {
	case NBIRTH, NDEATH, DBIRTH, DDEATH, NDATA, DDATA, NCMD, DCMD:
		return true
	}
	return false
}

// Topic is a parsed Sparkplug B topic:
//
//	spBv1.0/{Group}/{Type}/{EdgeNode}[/{Device}]
//	spBv1.0/STATE/{HostID}
type Topic struct {
	Group    string
	Type     MessageType
	EdgeNode string
	Device   string // only for DBIRTH, DDEATH, DDATA and DCMD
	HostID   string // only for STATE
}

// String builds the topic. It does not validate; CheckID does.
func (t Topic) String() string {
	if t.Type == STATE {
		return Namespace + "/STATE/" + t.HostID
	}
	s := Namespace + "/" + t.Group + "/" + string(t.Type) + "/" + t.EdgeNode
	if t.Type.IsDevice() {
		s += "/" + t.Device
	}
	return s
}

// NodeTopic is the topic of a node-level message of edge node group/node.
func NodeTopic(group string, typ MessageType, node string) string {
	return Topic{Group: group, Type: typ, EdgeNode: node}.String()
}

// DeviceTopic is the topic of a device-level message.
func DeviceTopic(group string, typ MessageType, node, device string) string {
	return Topic{Group: group, Type: typ, EdgeNode: node, Device: device}.String()
}

// StateTopic is the topic of a host application's STATE (Sparkplug 3.0).
func StateTopic(hostID string) string { return Namespace + "/STATE/" + hostID }

// MaxTopic bounds the length of a topic ParseTopic reads (MQTT allows 65535).
const MaxTopic = 65535

// ParseTopic parses a Sparkplug B topic. Each id must be a valid MQTT topic
// level without wildcards: non-empty, valid UTF-8, none of + # /. The group
// id STATE is refused (it would be the STATE topic).
func ParseTopic(topic string) (Topic, error) {
	if len(topic) > MaxTopic {
		return Topic{}, fmt.Errorf("sparkplug: topic of %d bytes: %w", len(topic), ErrTooLarge)
	}
	rest, ok := strings.CutPrefix(topic, Namespace+"/")
	if !ok {
		return Topic{}, fmt.Errorf("sparkplug: topic %q: %w: does not start with %s/", topic, ErrTopic, Namespace)
	}
	levels := strings.Split(rest, "/")
	if levels[0] == "STATE" {
		if len(levels) != 2 {
			return Topic{}, fmt.Errorf("sparkplug: topic %q: %w: want %s/STATE/{host id}", topic, ErrTopic, Namespace)
		}
		if err := CheckID(levels[1]); err != nil {
			return Topic{}, fmt.Errorf("sparkplug: topic %q: host id: %w", topic, err)
		}
		return Topic{Type: STATE, HostID: levels[1]}, nil
	}
	if len(levels) < 3 {
		return Topic{}, fmt.Errorf("sparkplug: topic %q: %w: want %s/{group}/{type}/{edge node}[/{device}]", topic, ErrTopic, Namespace)
	}
	t := Topic{Group: levels[0], Type: MessageType(levels[1]), EdgeNode: levels[2]}
	if !t.Type.valid() {
		return Topic{}, fmt.Errorf("sparkplug: topic %q: %w: unknown message type %q", topic, ErrTopic, levels[1])
	}
	want := 3
	if t.Type.IsDevice() {
		want = 4
	}
	if len(levels) != want {
		return Topic{}, fmt.Errorf("sparkplug: topic %q: %w: %s wants %d levels after %s, not %d", topic, ErrTopic, t.Type, want, Namespace, len(levels))
	}
	if t.Type.IsDevice() {
		t.Device = levels[3]
	}
	for _, l := range []struct{ what, id string }{{"group id", t.Group}, {"edge node id", t.EdgeNode}, {"device id", t.Device}} {
		if l.what == "device id" && !t.Type.IsDevice() {
			continue
		}
		if err := CheckID(l.id); err != nil {
			return Topic{}, fmt.Errorf("sparkplug: topic %q: %s: %w", topic, l.what, err)
		}
	}
	return t, nil
}

// CheckID checks a group, edge node, device or host id: a non-empty MQTT
// topic level, valid UTF-8, without + # or /.
func CheckID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty id", ErrTopic)
	case strings.ContainsAny(id, "+#/"):
		return fmt.Errorf("%w: id %q contains + # or /", ErrTopic, id)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: id %q is not valid UTF-8", ErrTopic, id)
	case strings.ContainsRune(id, 0):
		return fmt.Errorf("%w: id %q contains a NUL character", ErrTopic, id)
	}
	return nil
}

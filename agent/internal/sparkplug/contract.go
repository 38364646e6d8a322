package sparkplug

// The parts of the Sparkplug B contract the edge node needs besides the
// payloads: topics and the host's STATE message. They are
// wire/sparkplug's, restated here because importing that package links the
// generated protobuf code and its runtime into the agent (see payload.go);
// contract_test.go checks them against it.

import (
	"encoding/json"
	"fmt"
	"math"
)

// Message types of the topics the edge node publishes or subscribes to.
const (
	typeNBIRTH = "NBIRTH"
	typeNDEATH = "NDEATH"
	typeDBIRTH = "DBIRTH"
	typeDDEATH = "DDEATH"
	typeDDATA  = "DDATA"
	typeNCMD   = "NCMD"
)

// nodeTopic is spBv1.0/{group}/{typ}/{node}.
func nodeTopic(group, typ, node string) string {
	return "spBv1.0/" + group + "/" + typ + "/" + node
}

// deviceTopic is spBv1.0/{group}/{typ}/{node}/{device}.
func deviceTopic(group, typ, node, device string) string {
	return nodeTopic(group, typ, node) + "/" + device
}

// stateTopic is the topic of a host application's STATE (Sparkplug 3.0).
func stateTopic(host string) string { return "spBv1.0/STATE/" + host }

// Metric names of the node.
const (
	metricBdSeq   = "bdSeq"
	metricRebirth = "Node Control/Rebirth"
)

// hostState is a host application's STATE message (Sparkplug 3.0: JSON,
// retained, on spBv1.0/STATE/{host id}).
type hostState struct {
	Online    bool
	Timestamp int64 // ms since the epoch
}

// maxState bounds a STATE message.
const maxState = 4096

// decodeState parses a STATE payload: a JSON object with a boolean online
// and a numeric timestamp of whole milliseconds; other keys are ignored.
func decodeState(b []byte) (hostState, error) {
	if len(b) > maxState {
		return hostState{}, fmt.Errorf("STATE of %d bytes, limit %d", len(b), maxState)
	}
	var raw struct {
		Online    *bool    `json:"online"`
		Timestamp *float64 `json:"timestamp"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return hostState{}, fmt.Errorf("STATE %q: %v", clip(b), err)
	}
	if raw.Online == nil || raw.Timestamp == nil {
		return hostState{}, fmt.Errorf("STATE %q: want {\"online\": bool, \"timestamp\": ms}", clip(b))
	}
	ts := *raw.Timestamp
	if ts < 0 || ts > 1<<53 || ts != math.Trunc(ts) {
		return hostState{}, fmt.Errorf("STATE %q: timestamp is not whole milliseconds since the epoch", clip(b))
	}
	return hostState{Online: *raw.Online, Timestamp: int64(ts)}, nil
}

func clip(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}

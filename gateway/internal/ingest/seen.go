package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/weftiot/weft/gateway/internal/registry"
)

// Fleet-wide sequence accounting. With several gateways on one shared
// subscription each instance stores only part of every agent's batches, so
// on its own it would take every batch another instance stored for a
// missing one. So each instance publishes the batch numbers it stored, as
// compact ranges, on {prefix}/_gateways/{gateway id}/seen (QoS 1, every
// SeenInterval), and every instance subscribes to all of them and merges
// the others' into its registry: a hole becomes a gap only when no
// instance stored the batch within the grace period (alerts.offline_after),
// and every instance counts the same gaps and duplicates. No coordination
// service, only the broker the gateways already share (docs/gateway.md,
// Several gateways, says why not reconciling from InfluxDB).

// SeenVersion is the version of the seen message.
const SeenVersion = 1

// Limits of a seen message.
const (
	maxSeenBytes  = 1 << 20   // a received message larger than this is refused
	seenSplit     = 256 << 10 // a published message is split past this size
	maxSeenRanges = 4096      // ranges of one agent in one published message
)

// seenMsg is the payload of a seen message:
//
//	{"v":1,"gateway":"gw-1","agents":[{"site":"s","agent":"a1","seqs":[[1,5],[7,7]]}]}
type seenMsg struct {
	V       int         `json:"v"`
	Gateway string      `json:"gateway"`
	Agents  []seenAgent `json:"agents"`
}

type seenAgent struct {
	Site  string      `json:"site"`
	Agent string      `json:"agent"`
	Seqs  [][2]uint64 `json:"seqs"` // [from, to] inclusive, in the order stored
}

// errSeen is the category of a refused seen message.
var errSeen = errors.New("bad seen message")

// decodeSeen decodes and checks a seen message published by gateway id
// (from its topic).
func decodeSeen(data []byte, id string) (*seenMsg, error) {
	if len(data) > maxSeenBytes {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", errSeen, len(data), maxSeenBytes)
	}
	var m seenMsg
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", errSeen, err)
	}
	if m.V != SeenVersion {
		return nil, fmt.Errorf("%w: version %d, this gateway reads %d", errSeen, m.V, SeenVersion)
	}
	if m.Gateway != id {
		return nil, fmt.Errorf("%w: gateway %q on the topic of %q", errSeen, m.Gateway, id)
	}
	for i, a := range m.Agents {
		if a.Site == "" || a.Agent == "" {
			return nil, fmt.Errorf("%w: agents[%d]: site and agent are required", errSeen, i)
		}
		for j, r := range a.Seqs {
			if r[0] == 0 || r[0] > r[1] {
				return nil, fmt.Errorf("%w: agents[%d] (%s/%s) seqs[%d]: [%d,%d] is not a range from 1 up", errSeen, i, a.Site, a.Agent, j, r[0], r[1])
			}
		}
	}
	return &m, nil
}

// seenKey names one agent.
type seenKey struct{ site, agent string }

// seenBook collects the batch numbers this instance stored since the last
// publication.
type seenBook struct {
	mu     sync.Mutex
	agents map[seenKey][][2]uint64
}

// add records a stored batch. Consecutive numbers extend the last range; a
// number stored again starts a new one, so the others count it too.
func (s *seenBook) add(site, agent string, seq uint64) {
	if seq == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.agents == nil {
		s.agents = map[seenKey][][2]uint64{}
	}
	k := seenKey{site, agent}
	rs := s.agents[k]
	if l := len(rs); l > 0 && rs[l-1][1]+1 == seq {
		rs[l-1][1] = seq
		return
	}
	s.agents[k] = append(rs, [2]uint64{seq, seq})
}

// take returns what was collected and starts afresh.
func (s *seenBook) take() map[seenKey][][2]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.agents
	s.agents = nil
	return a
}

// putBack returns ranges that could not be published, to go with the next.
func (s *seenBook) putBack(a map[seenKey][][2]uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.agents == nil {
		s.agents = map[seenKey][][2]uint64{}
	}
	for k, rs := range a {
		s.agents[k] = append(rs, s.agents[k]...)
	}
}

// encodeSeen encodes the collected ranges into messages of at most about
// seenSplit bytes each.
func encodeSeen(id string, a map[seenKey][][2]uint64) [][]byte {
	var out [][]byte
	cur := seenMsg{V: SeenVersion, Gateway: id}
	size := 0
	flush := func() {
		if len(cur.Agents) == 0 {
			return
		}
		b, err := json.Marshal(cur)
		if err == nil { // a struct of strings and numbers always marshals
			out = append(out, b)
		}
		cur.Agents, size = nil, 0
	}
	for k, rs := range a {
		for len(rs) > 0 {
			n := min(len(rs), maxSeenRanges)
			est := len(k.site) + len(k.agent) + 40 + n*44
			if size > 0 && size+est > seenSplit {
				flush()
			}
			cur.Agents = append(cur.Agents, seenAgent{Site: k.site, Agent: k.agent, Seqs: rs[:n]})
			size += est
			rs = rs[n:]
		}
	}
	flush()
	return out
}

// seenTopic is the topic gateway id publishes its seen messages on.
func (in *Ingest) seenTopic(id string) string { return in.seenBase() + id + "/seen" }

// seenWildcard matches every gateway's seen topic.
func (in *Ingest) seenWildcard() string { return in.seenBase() + "+/seen" }

func (in *Ingest) seenBase() string {
	if in.o.Prefix == "" {
		return "_gateways/"
	}
	return in.o.Prefix + "/_gateways/"
}

// seenSharing reports whether this instance takes part: on a shared
// subscription, with a gateway id usable as a topic level.
func (in *Ingest) seenSharing() bool {
	return in.o.SharedGroup != "" && in.o.GatewayID != "" && !strings.ContainsAny(in.o.GatewayID, "/+#")
}

// onSeen handles a message on a seen topic: another instance's batch
// numbers go into the registry; this instance's own are ignored.
func (in *Ingest) onSeen(topic string, payload []byte) {
	id, ok := strings.CutPrefix(topic, in.seenBase())
	if ok {
		id, ok = strings.CutSuffix(id, "/seen")
	}
	if !ok || id == "" || strings.Contains(id, "/") {
		in.o.Metrics.Control.WithLabelValues("seen", "topic").Inc()
		return
	}
	if id == in.o.GatewayID {
		return
	}
	m, err := decodeSeen(payload, id)
	if err != nil {
		in.o.Metrics.Control.WithLabelValues("seen", "malformed").Inc()
		in.rl.Warn("seen", "rejected another gateway's seen message", "topic", topic, "bytes", len(payload), "error", err)
		return
	}
	in.o.Metrics.Control.WithLabelValues("seen", "ok").Inc()
	for _, a := range m.Agents {
		rs := make([]registry.Range, len(a.Seqs))
		for i, r := range a.Seqs {
			rs[i] = registry.Range{From: r[0], To: r[1]}
		}
		in.o.Registry.Seen(a.Site, a.Agent, rs)
	}
}

// announce publishes the stored batch numbers every SeenInterval until
// stop, and once more at the end.
func (in *Ingest) announce(stop <-chan struct{}) {
	t := time.NewTicker(in.o.SeenInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			in.publishSeen()
		case <-stop:
			in.publishSeen()
			return
		}
	}
}

// publishSeen publishes what was stored since the last time. What cannot be
// published (not connected, refused) waits for the next time; a
// publication not acknowledged in time is left to paho, which sends it
// again after a reconnection.
func (in *Ingest) publishSeen() {
	if !in.Connected() {
		return
	}
	a := in.seen.take()
	if len(a) == 0 {
		return
	}
	topic := in.seenTopic(in.o.GatewayID)
	msgs := encodeSeen(in.o.GatewayID, a)
	for i, p := range msgs {
		t := in.client.Publish(topic, 1, false, p)
		if !t.WaitTimeout(10 * time.Second) {
			continue
		}
		if t.Error() != nil {
			in.o.Metrics.Errors.WithLabelValues("seen_publish").Inc()
			in.rl.Warn("seenpub", "publishing the stored batch numbers failed; retrying with the next", "topic", topic, "error", t.Error())
			for _, p := range msgs[i:] {
				var m seenMsg
				if json.Unmarshal(p, &m) != nil {
					continue
				}
				back := map[seenKey][][2]uint64{}
				for _, a := range m.Agents {
					k := seenKey{a.Site, a.Agent}
					back[k] = append(back[k], a.Seqs...)
				}
				in.seen.putBack(back)
			}
			return
		}
	}
}

package broker

import (
	"bytes"
	"log/slog"
	"strconv"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
)

// store is mochi's bolt storage hook (broker.db) with its in-flight
// messages repaired when they are loaded.
//
// mochi v2.7.9's bolt hook saves an in-flight message without its packet
// id: the id is only in the key, IFM_{client}:{id}. Every message it loads
// at start-up therefore has packet id 0. mochi keeps a client's in-flight
// messages by packet id, so all but one of them are lost, and when the
// client resumes its session mochi resends the last one with id 0, which it
// refuses to encode (MQTT-2.2.1-2): it drops the connection, saves the
// message again under IFM_{client}:0, and does the same on every reconnect.
// The client that meets this is the gateway's own connection: when the
// broker stops, the agents' wills (their offline status, QoS 1) go to the
// gateway's persistent session after the gateway has disconnected, and stay
// in broker.db as its in-flight messages.
//
// StoredInflightMessages gives each message the id from its key. A message
// saved under id 0 by that resend (a broker.db from before this repair) is
// dropped if the same message is also saved under its real id, and moved to
// a free id of its client otherwise, so it is delivered once more.
type store struct {
	*bolt.Hook
	log *slog.Logger
}

// StoredInflightMessages returns the saved in-flight messages with their
// packet ids.
func (s *store) StoredInflightMessages() ([]storage.Message, error) {
	v, err := s.Hook.StoredInflightMessages()
	if err != nil {
		return v, err
	}
	return s.repair(v), nil
}

// repair sets each message's packet id from its key and re-keys or drops
// the ones saved under id 0; it returns the messages to load.
func (s *store) repair(v []storage.Message) []storage.Message {
	used := map[string]map[uint16]bool{} // client -> packet ids in use
	out := make([]storage.Message, 0, len(v))
	var orphans []storage.Message // saved under id 0
	for _, m := range v {
		if m.PacketID == 0 {
			m.PacketID = packetIDFromKey(m.ID, m.Client)
		}
		if m.PacketID == 0 {
			orphans = append(orphans, m)
			continue
		}
		if used[m.Client] == nil {
			used[m.Client] = map[uint16]bool{}
		}
		used[m.Client][m.PacketID] = true
		out = append(out, m)
	}
	for _, m := range orphans {
		cl := &mqtt.Client{ID: m.Client}
		// The packet's id is 0 here, so this deletes IFM_{client}:0.
		s.Hook.OnQosDropped(cl, m.ToPacket())
		if sameAsOneOf(m, out) {
			s.log.Info("broker.db: dropped an in-flight message saved twice, once without its packet id",
				"client_id", m.Client, "topic", m.TopicName)
			continue
		}
		id, ok := freePacketID(used[m.Client])
		if !ok {
			s.log.Warn("broker.db: dropped an in-flight message saved without its packet id: the client has no free packet id",
				"client_id", m.Client, "topic", m.TopicName)
			continue
		}
		if used[m.Client] == nil {
			used[m.Client] = map[uint16]bool{}
		}
		used[m.Client][id] = true
		m.PacketID = id
		pk := m.ToPacket()
		m.ID = storage.InflightKey + "_" + m.Client + ":" + pk.FormatID()
		s.Hook.OnQosPublish(cl, pk, m.Sent, 0)
		s.log.Info("broker.db: gave an in-flight message saved without its packet id a new one; it is delivered again",
			"client_id", m.Client, "topic", m.TopicName, "packet_id", id)
		out = append(out, m)
	}
	return out
}

// packetIDFromKey reads the packet id from a key IFM_{client}:{id}; 0 if
// the key is not of that form.
func packetIDFromKey(key, client string) uint16 {
	rest, ok := strings.CutPrefix(key, storage.InflightKey+"_"+client+":")
	if !ok {
		return 0
	}
	id, err := strconv.ParseUint(rest, 10, 16)
	if err != nil {
		return 0
	}
	return uint16(id)
}

// sameAsOneOf reports whether ms holds m for the same client under another id.
func sameAsOneOf(m storage.Message, ms []storage.Message) bool {
	for _, o := range ms {
		if o.Client == m.Client && o.FixedHeader.Type == m.FixedHeader.Type && o.TopicName == m.TopicName &&
			o.Origin == m.Origin && o.Created == m.Created && bytes.Equal(o.Payload, m.Payload) {
			return true
		}
	}
	return false
}

// freePacketID returns the lowest packet id not in used.
func freePacketID(used map[uint16]bool) (uint16, bool) {
	for id := 1; id <= 65535; id++ {
		if !used[uint16(id)] {
			return uint16(id), true
		}
	}
	return 0, false
}

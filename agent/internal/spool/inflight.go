package spool

// Evicting a batch that is on its way to the broker.
//
// The forwarder hands batches out with Peek and acknowledges them with Ack
// when the broker's PUBACK comes. Eviction from the head (drop_oldest at
// max_bytes, max_age, a full disk) takes the oldest batches, and those are
// exactly the ones the forwarder is sending after a reconnect or on a link
// slower than collection. Counting such a batch as dropped at eviction
// would count as lost a batch the broker then acknowledges and the store
// keeps: the drop counters would no longer equal what is missing (issue 10,
// scenario 6). So a batch evicted while handed out waits in limbo: its Ack
// counts it as acknowledged; a new pass (Peek from a lower sequence number
// than handed out before, as the forwarder does on each connection) or
// Close counts it as dropped. A batch published when the connection died
// and evicted during the outage is therefore counted as dropped although
// the broker may have taken it before the PUBACK was lost: MQTT cannot
// tell, and that is the one case where a drop count can exceed what is
// missing.

// evictedRec is one batch evicted from the head.
type evictedRec struct {
	seq     uint64
	samples int
	expired bool // by MaxAge
}

// evictedLocked accounts for a batch evicted from the head; s.mu is held.
func (s *Spool) evictedLocked(e evictedRec) {
	s.evicted = max(s.evicted, e.seq)
	if e.seq != 0 && e.seq <= s.handed {
		if s.limbo == nil {
			s.limbo = map[uint64]evictedRec{}
		}
		s.limbo[e.seq] = e
		return
	}
	s.st.countDropped(e)
}

// ackedLocked handles an Ack of a batch no longer in the file; s.mu is held.
func (s *Spool) ackedLocked(seq uint64) {
	if _, ok := s.limbo[seq]; ok {
		delete(s.limbo, seq)
		s.st.Acked++
	}
}

// handOutLocked records what Peek(after) hands out and returns it; s.mu is
// held. Entries a concurrent eviction removed after Peek's read began are
// left out (eviction takes the head, so every number up to s.evicted is
// gone), so no batch is handed out after it was counted as dropped.
func (s *Spool) handOutLocked(after uint64, out []Entry) []Entry {
	i := 0
	for i < len(out) && out[i].Seq <= s.evicted {
		i++
	}
	out = out[i:]
	if after < s.handed {
		s.settleLimboLocked(after)
		s.handed = after
	}
	if n := len(out); n > 0 && out[n-1].Seq > s.handed {
		s.handed = out[n-1].Seq
	}
	return out
}

// settleLimboLocked counts as dropped the batches in limbo above after: a
// new pass starts there, so their Acks are not coming. s.mu is held.
func (s *Spool) settleLimboLocked(after uint64) {
	for seq, e := range s.limbo {
		if seq > after {
			s.st.countDropped(e)
			delete(s.limbo, seq)
		}
	}
}

func (st *Stats) countDropped(e evictedRec) {
	st.DroppedOldest += uint64(e.samples)
	if e.expired {
		st.DroppedExpired += uint64(e.samples)
	}
}

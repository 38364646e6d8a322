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

// inflight is that accounting, shared by Spool and Memory; the queue's
// lock guards it.
type inflight struct {
	handed  uint64                // highest sequence number handed out in this pass
	evicted uint64                // highest sequence number evicted from the head
	limbo   map[uint64]evictedRec // evicted while handed out, fate unknown yet
}

// evict accounts for a batch evicted from the head.
func (f *inflight) evict(e evictedRec, st *Stats) {
	f.evicted = max(f.evicted, e.seq)
	if e.seq != 0 && e.seq <= f.handed {
		if f.limbo == nil {
			f.limbo = map[uint64]evictedRec{}
		}
		f.limbo[e.seq] = e
		return
	}
	st.countDropped(e)
}

// ackGone handles an Ack of a batch no longer stored.
func (f *inflight) ackGone(seq uint64, st *Stats) {
	if _, ok := f.limbo[seq]; ok {
		delete(f.limbo, seq)
		st.Acked++
	}
}

// handOut records what Peek(after) hands out and returns it. Entries a
// concurrent eviction removed after Peek's read began are left out
// (eviction takes the head, so every number up to f.evicted is gone), so
// no batch is handed out after it was counted as dropped.
func (f *inflight) handOut(after uint64, out []Entry, st *Stats) []Entry {
	i := 0
	for i < len(out) && out[i].Seq <= f.evicted {
		i++
	}
	out = out[i:]
	if after < f.handed {
		f.settle(after, st)
		f.handed = after
	}
	if n := len(out); n > 0 && out[n-1].Seq > f.handed {
		f.handed = out[n-1].Seq
	}
	return out
}

// settle counts as dropped the batches in limbo above after: a new pass
// starts there (or the queue closes, after 0), so their Acks are not
// coming.
func (f *inflight) settle(after uint64, st *Stats) {
	for seq, e := range f.limbo {
		if seq > after {
			st.countDropped(e)
			delete(f.limbo, seq)
		}
	}
}

func (st *Stats) countDropped(e evictedRec) {
	st.DroppedOldest += uint64(e.samples)
	if e.expired {
		st.DroppedExpired += uint64(e.samples)
	}
}

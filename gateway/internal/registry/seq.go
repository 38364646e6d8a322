package registry

import "sort"

// Sequence tracking. Each agent numbers its batches 1, 2, 3… and never goes
// back. The gateway sees them in order most of the time, but not always: a
// forwarder with several batches in flight that reconnects resends some, and
// the broker redelivers whatever the gateway had not acknowledged. So a
// missing number is first a hole, and becomes a gap only when it stays
// missing for the grace period; a number that fills a hole is late, not a
// duplicate; a number seen before is a duplicate.

// maxHoles bounds the holes remembered per agent; past it the oldest are
// counted as gaps at once.
const maxHoles = 1000

// resetBehind is how far behind the highest sequence a batch may be before
// the gateway takes it as the agent starting its numbering again (a data
// directory wiped) rather than as a duplicate.
const resetBehind = 1_000_000

// hole is a run of missing sequence numbers, From..To inclusive, first
// noticed at Since (ms).
type hole struct {
	From  uint64 `json:"from"`
	To    uint64 `json:"to"`
	Since int64  `json:"since"`
}

// seqState is one agent's sequence bookkeeping; it is persisted.
type seqState struct {
	Started    bool   `json:"started"`
	Last       uint64 `json:"last"`
	Gaps       uint64 `json:"gaps"`       // batches confirmed missing
	Duplicates uint64 `json:"duplicates"` // batches received again
	Late       uint64 `json:"late"`       // batches that arrived after a higher one
	Resets     uint64 `json:"resets"`
	Holes      []hole `json:"holes,omitempty"`
}

// seqOutcome is what observe made of one sequence number.
type seqOutcome uint8

const (
	seqNext seqOutcome = iota
	seqAhead
	seqLate
	seqDuplicate
	seqReset
)

// observe records one batch's sequence number received at now (ms).
func (s *seqState) observe(seq uint64, now int64) seqOutcome {
	if !s.Started {
		s.Started, s.Last = true, seq
		return seqNext
	}
	switch {
	case seq == s.Last+1:
		s.Last = seq
		return seqNext
	case seq > s.Last:
		s.Holes = append(s.Holes, hole{From: s.Last + 1, To: seq - 1, Since: now})
		s.Last = seq
		if len(s.Holes) > maxHoles {
			h := s.Holes[0]
			s.Gaps += h.To - h.From + 1
			s.Holes = append(s.Holes[:0], s.Holes[1:]...)
		}
		return seqAhead
	case s.Last-seq > resetBehind:
		s.Last, s.Holes = seq, nil
		s.Resets++
		return seqReset
	}
	i := sort.Search(len(s.Holes), func(i int) bool { return s.Holes[i].To >= seq })
	if i == len(s.Holes) || s.Holes[i].From > seq {
		s.Duplicates++
		return seqDuplicate
	}
	h := s.Holes[i]
	switch {
	case h.From == seq && h.To == seq:
		s.Holes = append(s.Holes[:i], s.Holes[i+1:]...)
	case h.From == seq:
		s.Holes[i].From++
	case h.To == seq:
		s.Holes[i].To--
	default:
		s.Holes = append(s.Holes, hole{})
		copy(s.Holes[i+2:], s.Holes[i+1:])
		s.Holes[i].To = seq - 1
		s.Holes[i+1] = hole{From: seq + 1, To: h.To, Since: h.Since}
	}
	s.Late++
	return seqLate
}

// expire turns holes older than grace (ms) into gaps and returns how many
// batches became gaps.
func (s *seqState) expire(now, grace int64) uint64 {
	var n uint64
	kept := s.Holes[:0]
	for _, h := range s.Holes {
		if now-h.Since >= grace {
			n += h.To - h.From + 1
			continue
		}
		kept = append(kept, h)
	}
	s.Holes = kept
	s.Gaps += n
	return n
}

// missing is how many batches are in open holes now.
func (s *seqState) missing() uint64 {
	var n uint64
	for _, h := range s.Holes {
		n += h.To - h.From + 1
	}
	return n
}

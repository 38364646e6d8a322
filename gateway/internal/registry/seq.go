package registry

import "sort"

// Sequence tracking. Each agent numbers its batches 1, 2, 3… and never goes
// back. The gateway sees them in order most of the time, but not always: a
// forwarder with several batches in flight that reconnects resends some, and
// the broker redelivers whatever the gateway had not acknowledged. So a
// missing number is first a hole, and becomes a gap only when it stays
// missing for the grace period; a number that fills a hole is late, not a
// duplicate; a number seen before is a duplicate.
//
// With several gateway instances on one shared subscription each receives
// only part of every agent's batches; the instances tell each other the
// numbers they stored (package ingest, the seen topic) and merge tells this
// state, so a hole is a gap only when no instance received the batch
// within the grace period, and every instance counts the same gaps and
// duplicates.

// maxHoles bounds the holes remembered per agent; past it the oldest are
// counted as gaps at once. With N instances sharing the load an instance
// sees holes between all its own batches until the others' reports fill
// them, about a second later: 10,000 holes allow 5,000 batches a second
// from one agent with two instances.
const maxHoles = 10_000

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
	Started bool `json:"started"`
	// First is the lowest number known; 0 in a record saved before it
	// existed (read as 1). A number below it is late, not a duplicate: a
	// new gateway, or one of several, may see batch 2 before batch 1.
	First      uint64 `json:"first,omitempty"`
	Last       uint64 `json:"last"`
	Gaps       uint64 `json:"gaps"`       // batches confirmed missing
	Duplicates uint64 `json:"duplicates"` // batches received again
	Late       uint64 `json:"late"`       // batches that arrived after a higher one
	Resets     uint64 `json:"resets"`
	// Others counts numbers other gateway instances reported that this
	// one had not seen.
	Others uint64 `json:"others"`
	Holes  []hole `json:"holes,omitempty"`
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
		s.Started, s.First, s.Last = true, seq, seq
		return seqNext
	}
	s.normalise()
	switch {
	case seq == s.Last+1:
		s.Last = seq
		return seqNext
	case seq > s.Last:
		s.addHole(s.Last+1, seq-1, now)
		s.Last = seq
		return seqAhead
	case s.Last-seq > resetBehind:
		s.reset(seq, seq, now)
		return seqReset
	case seq < s.First:
		s.below(seq, now)
		s.Late++
		return seqLate
	}
	if s.fill(seq, seq) == 0 {
		s.Duplicates++
		return seqDuplicate
	}
	s.Late++
	return seqLate
}

// merge records that another gateway instance stored the batches from..to
// (inclusive), as this instance learned at now (ms). Numbers this instance
// had not seen count in Others, numbers it had in Duplicates: the same
// batch stored by two instances is a duplicate, as it is on one.
func (s *seqState) merge(from, to uint64, now int64) {
	if from > to {
		return
	}
	if !s.Started {
		s.Started, s.First, s.Last = true, from, to
		s.Others += to - from + 1
		return
	}
	s.normalise()
	if s.Last > to && s.Last-to > resetBehind {
		s.reset(from, to, now)
		s.Others += to - from + 1
		return
	}
	if to > s.Last {
		lo := max(from, s.Last+1)
		if lo > s.Last+1 {
			s.addHole(s.Last+1, lo-1, now)
		}
		s.Others += to - lo + 1
		s.Last = to
		if from >= lo {
			return
		}
		to = lo - 1
	}
	if from < s.First {
		first := s.First
		hi := min(to, first-1)
		s.below(from, now) // First = from; from+1..first-1 a hole
		s.fill(from+1, hi)
		s.Others += hi - from + 1
		if to < first {
			return
		}
		from = first
	}
	filled := s.fill(from, to)
	s.Others += filled
	s.Duplicates += (to - from + 1) - filled
}

// normalise reads a First of 0 (a record saved before First existed) as 1.
func (s *seqState) normalise() {
	if s.First == 0 {
		s.First = 1
	}
}

// reset starts the numbering again at from..to: the agent began anew (its
// data directory wiped), so numbers below from are holes.
func (s *seqState) reset(from, to uint64, now int64) {
	s.Resets++
	s.First, s.Last, s.Holes = 1, to, nil
	if from > 1 {
		s.addHole(1, from-1, now)
	}
}

// below lowers First to seq, the numbers between being holes.
func (s *seqState) below(seq uint64, now int64) {
	if seq+1 < s.First {
		s.Holes = append(s.Holes, hole{})
		copy(s.Holes[1:], s.Holes)
		s.Holes[0] = hole{From: seq + 1, To: s.First - 1, Since: now}
		s.trim()
	}
	s.First = seq
}

// addHole appends the hole from..to above every other hole.
func (s *seqState) addHole(from, to uint64, now int64) {
	s.Holes = append(s.Holes, hole{From: from, To: to, Since: now})
	s.trim()
}

// trim counts the oldest holes past maxHoles as gaps.
func (s *seqState) trim() {
	for len(s.Holes) > maxHoles {
		h := s.Holes[0]
		s.Gaps += h.To - h.From + 1
		s.Holes = append(s.Holes[:0], s.Holes[1:]...)
	}
}

// fill removes from..to from the holes and returns how many numbers it
// removed. The holes are sorted and do not overlap.
func (s *seqState) fill(from, to uint64) uint64 {
	if from > to {
		return 0
	}
	i := sort.Search(len(s.Holes), func(i int) bool { return s.Holes[i].To >= from })
	j := i
	for j < len(s.Holes) && s.Holes[j].From <= to {
		j++
	}
	if i == j {
		return 0
	}
	// Holes i..j-1 overlap from..to: keep what lies outside it.
	var n uint64
	var keep [2]hole
	k := 0
	if h := s.Holes[i]; h.From < from {
		keep[k] = hole{From: h.From, To: from - 1, Since: h.Since}
		k++
	}
	if h := s.Holes[j-1]; h.To > to {
		keep[k] = hole{From: to + 1, To: h.To, Since: h.Since}
		k++
	}
	for _, h := range s.Holes[i:j] {
		n += min(h.To, to) - max(h.From, from) + 1
	}
	s.Holes = append(s.Holes[:i], append(keep[:k:k], s.Holes[j:]...)...)
	return n
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

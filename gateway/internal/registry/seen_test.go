package registry

import "testing"

// twoInstances plays two gateways sharing one agent's batches: a takes
// the odd numbers and b the even ones of 1..n except skip, in an order
// where b sees 2 before a sees 1; each then merges what the other stored,
// in the compact ranges the seen topic carries.
func twoInstances(n uint64, skip func(uint64) bool) (a, b *seqState) {
	a, b = &seqState{}, &seqState{}
	var ra, rb []Range
	add := func(rs []Range, seq uint64) []Range {
		if l := len(rs); l > 0 && rs[l-1].To+1 == seq {
			rs[l-1].To = seq
			return rs
		}
		return append(rs, Range{seq, seq})
	}
	for seq := uint64(1); seq <= n; seq++ {
		if skip(seq) {
			continue
		}
		if seq%2 == 1 {
			a.observe(seq, 0)
			ra = add(ra, seq)
		} else {
			b.observe(seq, 0)
			rb = add(rb, seq)
		}
	}
	for _, r := range rb {
		a.merge(r.From, r.To, 0)
	}
	for _, r := range ra {
		b.merge(r.From, r.To, 0)
	}
	return a, b
}

func TestSeqMergeNothingLost(t *testing.T) {
	a, b := twoInstances(200, func(uint64) bool { return false })
	for name, s := range map[string]*seqState{"a": a, "b": b} {
		if s.Last != 200 || s.missing() != 0 || s.Duplicates != 0 || s.Others != 100 || s.First != 1 {
			t.Errorf("%s: %+v; want last 200, nothing missing, no duplicates, 100 from the other", name, *s)
		}
		if n := s.expire(1000, 100); n != 0 {
			t.Errorf("%s: %d gaps", name, n)
		}
	}
}

func TestSeqMergeRealGap(t *testing.T) {
	a, b := twoInstances(100, func(seq uint64) bool { return seq >= 50 && seq <= 59 })
	for name, s := range map[string]*seqState{"a": a, "b": b} {
		if s.missing() != 10 || len(s.Holes) != 1 || s.Holes[0] != (hole{From: 50, To: 59}) {
			t.Errorf("%s: holes %+v; want only 50..59", name, s.Holes)
		}
		if n := s.expire(1000, 100); n != 10 || s.Gaps != 10 {
			t.Errorf("%s: %d gaps (%+v); want 10", name, n, *s)
		}
	}
}

func TestSeqMerge(t *testing.T) {
	var s seqState
	s.observe(10, 0)
	s.merge(12, 15, 5) // ahead: hole 11
	if s.Last != 15 || s.Others != 4 || len(s.Holes) != 1 || s.Holes[0] != (hole{11, 11, 5}) {
		t.Fatalf("after 12..15: %+v", s)
	}
	s.merge(5, 11, 6) // 5..9 below First, 10 a duplicate, 11 fills the hole
	if s.First != 5 || s.Duplicates != 1 || s.Others != 4+5+1 || len(s.Holes) != 0 {
		t.Fatalf("after 5..11: %+v", s)
	}
	s.merge(1, 2, 7) // below First with a hole 3..4 between
	if s.First != 1 || len(s.Holes) != 1 || s.Holes[0] != (hole{3, 4, 7}) || s.Others != 12 {
		t.Fatalf("after 1..2: %+v", s)
	}
	s.observe(20, 8) // hole 16..19
	s.merge(14, 30, 9)
	// 14, 15 duplicates; 16..19 fill; 20 duplicate; 21..30 new.
	if s.Duplicates != 4 || s.Last != 30 || len(s.Holes) != 1 || s.Others != 12+4+10 {
		t.Fatalf("after 14..30: %+v", s)
	}
	s.merge(4, 3, 9) // an empty range does nothing
	s.merge(2_000_000, 2_000_000, 10)
	s.merge(1, 3, 11) // more than resetBehind below: the agent began anew
	if s.Resets != 1 || s.Last != 3 || s.First != 1 || len(s.Holes) != 0 {
		t.Fatalf("after a reset: %+v", s)
	}
	s.merge(5, 5, 12)
	s.merge(3, 5, 12) // 3 and 5 duplicates, 4 fills
	if s.Duplicates != 6 || len(s.Holes) != 0 {
		t.Fatalf("after 3..5: %+v", s)
	}
}

// TestSeqFirstBelow: a batch below the first one seen is late, not a
// duplicate, and leaves a hole if numbers lie between.
func TestSeqFirstBelow(t *testing.T) {
	var s seqState
	s.observe(2, 0)
	if got := s.observe(1, 0); got != seqLate || s.Duplicates != 0 || s.First != 1 {
		t.Fatalf("1 after 2: outcome %d, %+v", got, s)
	}
	var u seqState
	u.observe(10, 0)
	u.observe(7, 0)
	if u.missing() != 2 || u.First != 7 {
		t.Fatalf("7 after 10: %+v; want 8..9 missing", u)
	}
	// A record saved before First existed: below its Last is a duplicate as before.
	old := seqState{Started: true, Last: 42}
	if got := old.observe(41, 0); got != seqDuplicate {
		t.Errorf("41 on an old record: outcome %d, want duplicate", got)
	}
}

// FuzzSeqMerge: any mix of local numbers and other instances' ranges
// (outside input: another gateway's message) keeps the holes sorted,
// apart and between First and Last, and never panics.
func FuzzSeqMerge(f *testing.F) {
	f.Add([]byte{1, 0, 5, 2, 3, 9, 0, 7, 1, 1, 2})
	f.Add([]byte{0, 200, 1, 1, 250, 0, 3})
	f.Fuzz(func(t *testing.T, ops []byte) {
		var s seqState
		for i := 0; i+2 < len(ops); i += 3 {
			a, b := uint64(ops[i+1]), uint64(ops[i+2])
			if ops[i]%4 == 3 { // far numbers, for resets and big holes
				a, b = a<<20, b<<20
			}
			if ops[i]%2 == 0 {
				if a > 0 {
					s.observe(a, int64(i))
				}
			} else if a > 0 {
				s.merge(a, a+b, int64(i))
			}
			var prev uint64
			for j, h := range s.Holes {
				if h.From > h.To || (j > 0 && h.From <= prev) || h.From < s.First || h.To >= s.Last {
					t.Fatalf("after op %d: holes %+v, first %d, last %d", i/3, s.Holes, s.First, s.Last)
				}
				prev = h.To
			}
		}
	})
}

package registry

// Range is a run of batch sequence numbers, From..To inclusive.
type Range struct{ From, To uint64 }

// Seen merges the batches another gateway instance stored for one agent
// into its sequence bookkeeping: holes they fill are no longer missing,
// numbers this instance had stored too are duplicates. It does not touch
// the agent's received counts or latest values (the other instance has
// those).
func (r *Registry) Seen(site, agent string, ranges []Range) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.get(site, agent)
	ms := r.now().UnixMilli()
	for _, rg := range ranges {
		a.SeqState.merge(rg.From, rg.To, ms)
	}
	a.syncSeq()
}

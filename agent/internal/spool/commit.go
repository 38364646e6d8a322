package spool

import (
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// run is the committer: the one goroutine that writes to the file. It
// gathers the ready appends and the pending acks into one transaction per
// round (group commit), enforces the bounds inside it, and compacts or
// replaces the file when needed.
func (s *Spool) run() {
	defer close(s.done)
	var tick <-chan time.Time
	if s.opts.MaxAge > 0 {
		t := time.NewTicker(s.opts.ExpireInterval)
		defer t.Stop()
		tick = t.C
	}
	stop := s.stop
	stopping := false
	for {
		expire := false
		select {
		case <-s.kick:
		case <-tick:
			expire = true
		case <-stop:
			stopping = true
			stop = nil // a closed channel would spin the select
		}
		if s.opts.CommitDelay > 0 && !stopping {
			time.Sleep(s.opts.CommitDelay)
		}
		for {
			g := s.take()
			if g.empty() {
				break
			}
			s.commitGroup(g)
		}
		if expire && s.headExpired() {
			s.commitGroup(group{})
		}
		s.maybeCompact()
		if stopping {
			s.mu.Lock()
			left := len(s.queue) + len(s.acks)
			s.mu.Unlock()
			if left == 0 {
				return
			}
		}
	}
}

type group struct {
	appends []*appendReq
	acks    []*ackReq
	resets  []*ackReq // Peek found the file damaged
}

func (g group) empty() bool { return len(g.appends) == 0 && len(g.acks) == 0 && len(g.resets) == 0 }

// take removes the ready prefix of the append queue (up to MaxGroupBytes)
// and all pending acks.
func (s *Spool) take() group {
	s.mu.Lock()
	defer s.mu.Unlock()
	var g group
	n, size := 0, 0
	for n < len(s.queue) && s.queue[n].ready {
		if n > 0 && size+len(s.queue[n].rec) > s.opts.MaxGroupBytes {
			break
		}
		size += len(s.queue[n].rec)
		n++
	}
	g.appends = s.queue[:n:n]
	s.queue = s.queue[n:]
	for _, a := range s.acks {
		if a.reset != nil {
			g.resets = append(g.resets, a)
		} else {
			g.acks = append(g.acks, a)
		}
	}
	s.acks = nil
	return g
}

func (s *Spool) headExpired() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Batches > 0 && s.expired(s.st.OldestAppended, s.opts.Now())
}

func (s *Spool) expired(appended, now time.Time) bool {
	return expiredAt(s.opts.MaxAge, appended, now)
}

// expiredAt reports whether a batch appended at appended is older than
// maxAge at now. One stamped by a clock not yet set never is.
func expiredAt(maxAge time.Duration, appended, now time.Time) bool {
	return maxAge > 0 && appended.Unix() >= clockFloorUnix && now.Sub(appended) > maxAge
}

// delta is what one transaction changed, applied to s.st after it commits.
type delta struct {
	batches, bytes, samples int64
	oldest                  time.Time
	appended, acked         uint64
	evictions               []evictedRec // from the head, in order
	ackMissing              []uint64     // acked sequence numbers not in the file
	droppedNewest           uint64
	droppedCorrupt          uint64
	corruptEntries          uint64
	results                 []error // per append of the group
}

func (d *delta) remove(h recordHeader) {
	d.batches--
	d.bytes -= int64(h.size)
	d.samples -= int64(h.samples)
}

// commitGroup writes g in one transaction and answers its callers. A full
// disk with drop_oldest evicts from the head and tries once more; a file
// found damaged is set aside and the group is written to the fresh one.
func (s *Spool) commitGroup(g group) {
	if len(g.resets) > 0 {
		s.dbMu.RLock()
		gen := s.gen
		s.dbMu.RUnlock()
		for _, r := range g.resets {
			if r.gen == gen { // not yet replaced since the damage was seen
				s.resetWhileRunning(r.reset)
				break
			}
		}
		for _, r := range g.resets {
			r.done <- nil
		}
		if len(g.appends) == 0 && len(g.acks) == 0 {
			return
		}
	}
	if max := maxSeq(g); max > s.floor.value {
		// The floor must cover every stored sequence number before the
		// commit that stores it.
		if err := s.floor.write(max + seqBlock); err != nil {
			if !s.floorFailing {
				s.log.Warn("could not write the sequence floor file; retrying with every commit, logging once", "err", err)
			}
			s.floorFailing = true
		} else {
			s.floorFailing = false
		}
	}
	d, err := s.tryCommit(g, 0)
	if err != nil && isDiskFull(err) && s.opts.Overflow == DropOldest {
		s.mu.Lock()
		s.st.WriteErrors++
		s.st.DiskFull = true
		s.st.LastError = fmt.Sprintf("spool %s: commit: %v: %v (evicting the oldest to make room)", s.path, ErrDiskFull, err)
		s.mu.Unlock()
		if ferr := s.freeSpace(g); ferr == nil {
			d, err = s.tryCommit(g, 0)
		}
	}
	if err != nil && isCorrupt(err) {
		s.resetWhileRunning(err)
		d, err = s.tryCommit(g, 0)
	}
	s.finish(g, d, err)
}

func maxSeq(g group) uint64 {
	if len(g.appends) == 0 {
		return 0
	}
	return g.appends[len(g.appends)-1].seq
}

// tryCommit runs the transaction for g; evict > 0 first drops that many
// bytes from the head (used to make room on a full disk).
func (s *Spool) tryCommit(g group, evict int64) (*delta, error) {
	s.mu.Lock()
	cur := s.st
	s.mu.Unlock()
	now := s.opts.Now()
	if s.db == nil {
		s.dbMu.Lock()
		err := s.reopen()
		s.dbMu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	var d *delta
	err := guard(func() error {
		return s.db.Update(func(tx *bolt.Tx) error {
			d = &delta{results: make([]error, len(g.appends))}
			b := tx.Bucket([]byte(bucketName))
			c := b.Cursor()
			// evictHead drops the head entry; false when the bucket is empty.
			evictHead := func(expired bool) (bool, error) {
				k, v := c.First()
				if k == nil {
					return false, nil
				}
				h, err := parseHeader(v)
				if err != nil {
					return false, &corruptError{err: fmt.Errorf("head entry: %w", err)}
				}
				seq, _ := keySeq(k)
				if err := b.Delete(k); err != nil {
					return false, err
				}
				d.remove(h)
				d.evictions = append(d.evictions, evictedRec{seq: seq, samples: h.samples, expired: expired})
				return true, nil
			}

			for _, a := range g.acks {
				for _, seq := range a.seqs {
					k := key(seq)
					v := b.Get(k)
					if v == nil {
						if !a.corrupt {
							d.ackMissing = append(d.ackMissing, seq)
						}
						continue
					}
					h, err := parseHeader(v)
					if err != nil {
						return &corruptError{err: fmt.Errorf("entry %d: %w", seq, err)}
					}
					if err := b.Delete(k); err != nil {
						return err
					}
					d.remove(h)
					if a.corrupt {
						d.droppedCorrupt += uint64(h.samples)
						d.corruptEntries++
					} else {
						d.acked++
					}
				}
			}
			for evict > 0 {
				before := d.bytes
				ok, err := evictHead(false)
				if err != nil || !ok {
					break
				}
				evict -= before - d.bytes
			}
			if s.opts.MaxAge > 0 {
				for {
					k, v := c.First()
					if k == nil {
						break
					}
					h, err := parseHeader(v)
					if err != nil {
						return &corruptError{err: fmt.Errorf("head entry: %w", err)}
					}
					if !s.expired(h.appended, now) {
						break
					}
					if _, err := evictHead(true); err != nil {
						return err
					}
				}
			}
			var last uint64
			for i, r := range g.appends {
				last = r.seq
				if r.err != nil {
					d.results[i] = r.err
					continue
				}
				size := int64(r.size)
				if limit := s.opts.MaxBytes; limit > 0 {
					if size > limit {
						d.results[i] = fmt.Errorf("spool append seq %d: %w: %d bytes, max_bytes %d", r.seq, ErrTooLarge, size, limit)
						d.droppedNewest += uint64(r.samples)
						continue
					}
					if cur.Bytes+d.bytes+size > limit {
						if s.opts.Overflow == DropNewest {
							d.results[i] = fmt.Errorf("spool append seq %d: %w: %d bytes stored, max_bytes %d", r.seq, ErrFull, cur.Bytes+d.bytes, limit)
							d.droppedNewest += uint64(r.samples)
							continue
						}
						for cur.Bytes+d.bytes+size > limit {
							if ok, err := evictHead(false); err != nil {
								return err
							} else if !ok {
								break
							}
						}
					}
				}
				if err := b.Put(key(r.seq), r.rec); err != nil {
					return err
				}
				d.batches++
				d.bytes += size
				d.samples += int64(r.samples)
				d.appended++
			}
			if last > b.Sequence() {
				if err := b.SetSequence(last); err != nil {
					return err
				}
			}
			if k, v := c.First(); k != nil {
				if h, err := parseHeader(v); err == nil {
					d.oldest = h.appended
				}
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// freeSpace makes room after a commit of g failed on a full disk: it evicts
// from the head the group's size or a tenth of the backlog, whichever is
// more, in a transaction of its own. Freed pages are reused by the retry.
func (s *Spool) freeSpace(g group) error {
	s.mu.Lock()
	backlog := s.st.Bytes
	s.mu.Unlock()
	if backlog == 0 {
		return errors.New("nothing to evict")
	}
	var need int64
	for _, r := range g.appends {
		need += int64(r.size)
	}
	need = max(need, backlog/10, 1)
	d, err := s.tryCommit(group{}, need)
	if err != nil {
		s.log.Warn("disk full: could not evict to make room", "err", err)
		return err
	}
	s.apply(d)
	var samples int
	for _, e := range d.evictions {
		samples += e.samples
	}
	s.log.Warn("disk full: evicted the oldest batches to make room", "samples", samples)
	return nil
}

// finish applies a committed delta and answers the group's callers.
func (s *Spool) finish(g group, d *delta, err error) {
	if err != nil {
		if isDiskFull(err) {
			err = fmt.Errorf("%w: %w", ErrDiskFull, err)
			if s.opts.Overflow == DropNewest {
				err = fmt.Errorf("%w: %w", ErrFull, err)
			}
		}
		err = fmt.Errorf("spool %s: commit: %w", s.path, err)
		s.mu.Lock()
		s.st.WriteErrors++
		s.st.LastError = err.Error()
		s.st.DiskFull = errors.Is(err, ErrDiskFull)
		for _, r := range g.appends {
			if r.err == nil {
				s.st.DroppedNewest += uint64(r.samples)
			}
		}
		s.mu.Unlock()
		s.log.Error("spool commit failed", "err", err, "appends", len(g.appends), "acks", len(g.acks))
		for _, r := range g.appends {
			if r.err == nil {
				r.done <- err
			}
		}
		for _, a := range g.acks {
			a.done <- err
		}
		return
	}
	s.apply(d)
	s.mu.Lock()
	s.st.DiskFull = false
	s.mu.Unlock()
	for i, r := range g.appends {
		if r.err == nil {
			r.done <- d.results[i]
		}
	}
	for _, a := range g.acks {
		a.done <- nil
	}
	if d.appended > 0 {
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
}

func (s *Spool) apply(d *delta) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.st
	st.Commits++
	st.Batches += d.batches
	st.Bytes += d.bytes
	st.Samples += d.samples
	st.OldestAppended = d.oldest
	st.Appended += d.appended
	st.Acked += d.acked
	for _, e := range d.evictions {
		s.fl.evict(e, &s.st)
	}
	for _, seq := range d.ackMissing {
		s.fl.ackGone(seq, &s.st)
	}
	st.DroppedNewest += d.droppedNewest
	st.DroppedCorrupt += d.droppedCorrupt
	st.CorruptEntries += d.corruptEntries
	if st.Batches == 0 {
		st.OldestAppended = time.Time{}
	}
}

// resetWhileRunning sets a file found damaged during a commit aside, opens
// a fresh one that continues the sequence and salvages what it can. What
// is lost is counted in DroppedCorrupt.
func (s *Spool) resetWhileRunning(cause error) {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	s.gen++
	if s.db != nil {
		s.db.Close()
		s.db = nil
	}
	if err := s.reopenFresh(cause); err != nil {
		s.log.Error("could not open a fresh spool after setting the corrupt one aside", "err", err)
	}
}

// reopenFresh moves the current file aside, opens a fresh one into s.db
// and salvages the old one's intact entries. The caller holds dbMu.
func (s *Spool) reopenFresh(cause error) error {
	aside := s.setAside(cause)
	s.mu.Lock()
	before := s.st.Samples
	s.st.CorruptResets++
	s.st.Batches, s.st.Bytes, s.st.Samples, s.st.OldestAppended = 0, 0, 0, time.Time{}
	s.mu.Unlock()
	db, err := openBolt(s.path, s.boltOptions())
	if err != nil {
		s.mu.Lock()
		s.st.DroppedCorrupt += uint64(before)
		s.mu.Unlock()
		return err
	}
	s.db = db
	if !lockLeaked(cause) {
		s.salvage(aside)
	}
	if err := s.rescan(); err != nil {
		return err
	}
	s.mu.Lock()
	s.st.DroppedCorrupt += uint64(max(before-s.st.Samples, 0))
	s.mu.Unlock()
	return nil
}

// reopen opens spool.db into s.db after it was closed for a compaction or a
// reset. A damaged file is set aside and replaced by a fresh one whose
// sequence continues above every number handed out. On failure s.db stays
// nil and the next commit tries again. The caller holds dbMu.
func (s *Spool) reopen() error {
	db, err := openBolt(s.path, s.boltOptions())
	if err != nil && isCorrupt(err) {
		if err = s.reopenFresh(err); err == nil {
			db = s.db
		}
	}
	if err == nil {
		s.mu.Lock()
		seq := s.lastSeq
		s.mu.Unlock()
		err = guard(func() error {
			return db.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte(bucketName))
				if seq > b.Sequence() {
					return b.SetSequence(seq)
				}
				return nil
			})
		})
		if err != nil {
			db.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("spool %s: reopen: %w", s.path, err)
	}
	s.db = db
	return nil
}

package spool

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Queue is what the agent needs of a spool. *Spool is the real one; *Memory
// keeps everything in memory, for tests of code above the spool that do not
// need durability. Both pass the conformance suite in spooltest.
type Queue interface {
	Append(ctx context.Context, samples int, encode func(seq uint64) ([]byte, error)) (uint64, error)
	AppendAsync(samples int, encode func(seq uint64) ([]byte, error)) (uint64, <-chan error, error)
	Peek(after uint64, max int) ([]Entry, error)
	Ack(seqs ...uint64) error
	Notify() <-chan struct{}
	Stats() Stats
	Close() error
}

var (
	_ Queue = (*Spool)(nil)
	_ Queue = (*Memory)(nil)
)

// Memory is a Queue in memory: the same ordering, bounds, overflow policy
// and counting as Spool, nothing on disk, nothing survives Close. MaxAge is
// enforced on Append, Peek and Stats rather than on a timer. For tests.
type Memory struct {
	opts    Options
	mu      sync.Mutex
	closed  bool
	lastSeq uint64
	entries []Entry // in sequence order
	st      Stats
	notify  chan struct{}
	fl      inflight // in-flight accounting as in Spool (inflight.go)
}

// NewMemory returns an empty in-memory queue bounded by opts (the file
// options are ignored).
func NewMemory(opts Options) *Memory {
	opts.setDefaults()
	return &Memory{opts: opts, notify: make(chan struct{}, 1)}
}

// Append stores a copy of the batch encode returns. See Spool.Append.
func (m *Memory) Append(ctx context.Context, samples int, encode func(seq uint64) ([]byte, error)) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	seq, done, err := m.AppendAsync(samples, encode)
	if err != nil {
		return seq, err
	}
	return seq, <-done
}

// AppendAsync is Append with the result on done. See Spool.AppendAsync.
// encode runs under the queue's lock: it must not call the queue.
func (m *Memory) AppendAsync(samples int, encode func(seq uint64) ([]byte, error)) (uint64, <-chan error, error) {
	if samples < 0 {
		return 0, nil, fmt.Errorf("spool append: negative sample count %d", samples)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, nil, ErrClosed
	}
	limit := m.opts.MaxBytes
	if m.opts.Overflow == DropNewest && limit > 0 && m.st.Bytes >= limit {
		m.st.DroppedNewest += uint64(samples)
		return 0, nil, ErrFull
	}
	m.lastSeq++
	seq := m.lastSeq
	data, err := encode(seq)
	if err == nil && len(data) == 0 {
		err = errors.New("encode returned no data")
	}
	if err != nil {
		return seq, nil, fmt.Errorf("spool append seq %d: encode: %w", seq, err)
	}
	done := make(chan error, 1)
	now := m.opts.Now()
	m.expireLocked()
	size := int64(len(data))
	switch {
	case limit > 0 && size > limit:
		m.st.DroppedNewest += uint64(samples)
		done <- fmt.Errorf("spool append seq %d: %w: %d bytes, max_bytes %d", seq, ErrTooLarge, size, limit)
		return seq, done, nil
	case limit > 0 && m.st.Bytes+size > limit && m.opts.Overflow == DropNewest:
		m.st.DroppedNewest += uint64(samples)
		done <- fmt.Errorf("spool append seq %d: %w: %d bytes stored, max_bytes %d", seq, ErrFull, m.st.Bytes, limit)
		return seq, done, nil
	}
	for limit > 0 && m.st.Bytes+size > limit && len(m.entries) > 0 {
		m.evictHeadLocked(false)
	}
	m.entries = append(m.entries, Entry{Seq: seq, Data: slices.Clone(data), Samples: samples, Appended: now})
	m.st.Batches++
	m.st.Bytes += size
	m.st.Samples += int64(samples)
	m.st.Appended++
	m.st.Commits++
	m.st.OldestAppended = m.entries[0].Appended
	done <- nil
	select {
	case m.notify <- struct{}{}:
	default:
	}
	return seq, done, nil
}

func (m *Memory) removeLocked(i int) {
	e := m.entries[i]
	m.st.Batches--
	m.st.Bytes -= int64(len(e.Data))
	m.st.Samples -= int64(e.Samples)
	m.entries = slices.Delete(m.entries, i, i+1)
	if len(m.entries) > 0 {
		m.st.OldestAppended = m.entries[0].Appended
	} else {
		m.st.OldestAppended = time.Time{}
	}
}

func (m *Memory) expireLocked() {
	now := m.opts.Now()
	for len(m.entries) > 0 && expiredAt(m.opts.MaxAge, m.entries[0].Appended, now) {
		m.evictHeadLocked(true)
	}
}

// evictHeadLocked drops the head entry: counted as dropped at once, or, if
// Peek handed it out, kept in limbo until its Ack or the next pass.
func (m *Memory) evictHeadLocked(expired bool) {
	e := evictedRec{seq: m.entries[0].Seq, samples: m.entries[0].Samples, expired: expired}
	m.removeLocked(0)
	m.fl.evict(e, &m.st)
}

// Peek returns copies of up to max entries with Seq > after, in order.
func (m *Memory) Peek(after uint64, max int) ([]Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	m.expireLocked()
	i, _ := slices.BinarySearchFunc(m.entries, after+1, func(e Entry, seq uint64) int { return cmpUint(e.Seq, seq) })
	var out []Entry
	for ; i < len(m.entries) && len(out) < max; i++ {
		e := m.entries[i]
		e.Data = slices.Clone(e.Data)
		out = append(out, e)
	}
	return m.fl.handOut(after, out, &m.st), nil
}

// Ack deletes the entries; missing sequence numbers are ignored.
func (m *Memory) Ack(seqs ...uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	for _, seq := range seqs {
		i, ok := slices.BinarySearchFunc(m.entries, seq, func(e Entry, seq uint64) int { return cmpUint(e.Seq, seq) })
		if ok {
			m.removeLocked(i)
			m.st.Acked++
		} else {
			m.fl.ackGone(seq, &m.st)
		}
	}
	if len(seqs) > 0 {
		m.st.Commits++
	}
	return nil
}

// Notify: see Spool.Notify.
func (m *Memory) Notify() <-chan struct{} { return m.notify }

// Stats: see Spool.Stats. FileBytes is 0.
func (m *Memory) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked()
	st := m.st
	st.LastSeq = m.lastSeq
	if st.Batches > 0 {
		st.OldestAge = max(m.opts.Now().Sub(st.OldestAppended), 0)
	}
	return st
}

// Close drops everything; later calls return ErrClosed.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.closed = true
	m.entries = nil
	m.fl.settle(0, &m.st)
	return nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

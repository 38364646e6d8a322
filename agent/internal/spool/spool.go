// Package spool is the agent's durable FIFO of encoded batches, kept in one
// bbolt file (data_dir/spool.db).
//
// A batch is stored under its sequence number (big-endian, so cursor order is
// FIFO order) and stays until the forwarder acknowledges it. Append returns
// only after the batch is fsync'd; concurrent Appends and Acks share one
// bbolt commit (group commit), so the number of fsyncs does not grow with the
// number of batches. The spool is bounded by MaxBytes and MaxAge with an
// explicit overflow policy, counts every sample it drops, sets a corrupt
// file aside instead of failing, and compacts the file once a backlog has
// drained. docs/spool.md explains the guarantees.
package spool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Overflow is what Append does when the spool is at MaxBytes.
type Overflow int

const (
	// DropOldest evicts batches from the head (the oldest unsent) to make
	// room. The default: the newest readings are usually the valuable ones.
	DropOldest Overflow = iota
	// DropNewest refuses the new batch with ErrFull and keeps the backlog.
	DropNewest
)

// String returns the config spelling: drop_oldest or drop_newest.
func (o Overflow) String() string {
	switch o {
	case DropOldest:
		return "drop_oldest"
	case DropNewest:
		return "drop_newest"
	}
	return fmt.Sprintf("Overflow(%d)", int(o))
}

// ParseOverflow reads the config value spool.overflow; empty means
// drop_oldest.
func ParseOverflow(s string) (Overflow, error) {
	switch s {
	case "", "drop_oldest":
		return DropOldest, nil
	case "drop_newest":
		return DropNewest, nil
	}
	return 0, fmt.Errorf("overflow %q: want drop_oldest or drop_newest", s)
}

// Options configure a spool. The zero value is a usable, unbounded spool.
type Options struct {
	// MaxBytes bounds the stored batch bytes (the sum of Entry.Data
	// lengths); 0 is unbounded. The file is larger than this by bbolt's
	// page overhead; see docs/spool.md for sizing.
	MaxBytes int64
	// MaxAge drops batches appended longer ago than this; 0 keeps them.
	MaxAge time.Duration
	// Overflow is the policy at MaxBytes (default DropOldest).
	Overflow Overflow
	// Logger receives the spool's log lines (default slog.Default()).
	Logger *slog.Logger

	// CommitDelay is how long the committer waits after the first request
	// of a group for more to join it. 0 (the default) commits at once:
	// requests that arrive while a commit is fsyncing form the next group,
	// which already coalesces concurrent callers.
	CommitDelay time.Duration
	// MaxGroupBytes bounds the batch bytes of one commit (default 16 MiB).
	MaxGroupBytes int
	// OpenTimeout bounds the wait for bbolt's file lock (default 2s).
	OpenTimeout time.Duration
	// ExpireInterval is how often MaxAge is enforced while no Append comes
	// (default MaxAge/10, between 1s and 1m).
	ExpireInterval time.Duration
	// CompactMinBytes: the file is compacted only when it is at least this
	// big (default 64 MiB; negative disables compaction) ...
	CompactMinBytes int64
	// CompactMaxLiveBytes: ... and the live batch bytes are at most this
	// (default 8 MiB) and at most a quarter of the file, so a compaction
	// copies little and holds appends back only briefly.
	CompactMaxLiveBytes int64

	// NoSync turns off fsync. For tests only: with it a power cut can lose
	// or corrupt the spool. Never set in production.
	NoSync bool
	// Now is the clock (default time.Now), for tests.
	Now func() time.Time
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxGroupBytes <= 0 {
		o.MaxGroupBytes = 16 << 20
	}
	if o.OpenTimeout <= 0 {
		o.OpenTimeout = 2 * time.Second
	}
	if o.ExpireInterval <= 0 && o.MaxAge > 0 {
		o.ExpireInterval = min(max(o.MaxAge/10, time.Second), time.Minute)
	}
	if o.CompactMinBytes == 0 {
		o.CompactMinBytes = 64 << 20
	}
	if o.CompactMaxLiveBytes <= 0 {
		o.CompactMaxLiveBytes = 8 << 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Entry is one stored batch, copied out of the file.
type Entry struct {
	Seq      uint64
	Data     []byte // the encoded message, exactly what goes on the wire
	Samples  int
	Appended time.Time
}

// Stats is a snapshot of the spool for health and metrics. Drop counts are
// samples, counted since Open (they restart at 0 with the process).
type Stats struct {
	Batches int64 // stored, not yet acknowledged
	Bytes   int64 // sum of their Data lengths, what MaxBytes bounds
	Samples int64 // sum of their sample counts
	// OldestAppended is when the head batch was appended (zero when empty);
	// OldestAge is its age at the time of the snapshot.
	OldestAppended time.Time
	OldestAge      time.Duration
	LastSeq        uint64 // highest sequence number handed out

	// DroppedOldest counts samples evicted from the head: by drop_oldest at
	// MaxBytes, by MaxAge, and to make room on a full disk. It includes
	// DroppedExpired. A batch evicted while Peek had handed it out (in
	// flight to the broker) is counted only once it is known not to have
	// been delivered: when the next pass starts without its Ack, or at
	// Close; if its Ack comes, it counts in Acked instead.
	DroppedOldest uint64
	// DroppedExpired counts the samples of DroppedOldest dropped by MaxAge.
	DroppedExpired uint64
	// DroppedNewest counts samples refused by Append: drop_newest at
	// MaxBytes, a batch larger than MaxBytes, a failed write.
	DroppedNewest uint64
	// DroppedCorrupt counts samples lost to corruption: entries whose CRC
	// failed, and the backlog of a file set aside while running.
	DroppedCorrupt uint64

	Appended uint64 // batches stored by Append
	Acked    uint64 // batches acknowledged: deleted by Ack, or acked after an in-flight eviction
	Commits  uint64 // bbolt write transactions; each costs two fdatasyncs
	// WriteErrors counts failed commits; LastError is the latest one.
	WriteErrors uint64
	LastError   string
	DiskFull    bool // the latest commit failed with ENOSPC or EDQUOT

	FileBytes      int64  // size of spool.db on disk
	CorruptResets  uint64 // files set aside since Open (at Open included)
	Compactions    uint64
	CorruptEntries uint64 // entries dropped because their CRC failed
}

// Spool is a durable FIFO of encoded batches. Its methods are safe for
// concurrent use. One Spool per file, one process per data_dir.
type Spool struct {
	path  string
	opts  Options
	log   *slog.Logger
	lock  *os.File
	floor seqFloor

	// dbMu guards the db pointer, which the committer replaces when it
	// compacts or sets a corrupt file aside. Peek holds it shared.
	dbMu sync.RWMutex
	db   *bolt.DB
	gen  uint64 // counts replacements of db, so that one damage is reset once

	mu      sync.Mutex
	closed  bool
	lastSeq uint64        // highest reserved sequence number
	queue   []*appendReq  // reserved appends, in sequence order
	acks    []*ackReq     // pending acks and corrupt-entry deletions
	st      Stats         // live counters; FileBytes, OldestAge filled by Stats
	kick    chan struct{} // wakes the committer
	notify  chan struct{}
	stop    chan struct{}
	done    chan struct{} // closed when the committer has exited

	fl inflight // in-flight accounting, guarded by mu (inflight.go)

	// Committer-only state.
	lastCompactTry time.Time
	floorFailing   bool // the floor file could not be written; warned once
}

type appendReq struct {
	seq     uint64
	samples int
	rec     []byte // the stored value: record header and the encoded batch
	size    int    // the encoded batch's length, what MaxBytes bounds
	err     error  // encode failed: the sequence number is skipped
	ready   bool
	done    chan error
}

type ackReq struct {
	seqs    []uint64
	corrupt bool   // deleting entries Peek found corrupt; counted as such
	reset   error  // not an ack: Peek found the file damaged; set it aside
	gen     uint64 // ... if it is still the file of this generation
	done    chan error
}

const (
	bucketName = "batches"
	// clockFloor: an entry appended before this was stamped by a clock not
	// yet set (edge boxes without an RTC boot in 1970); MaxAge leaves it
	// alone rather than dropping the whole backlog when NTP catches up.
	clockFloorUnix = 1577836800 // 2020-01-01T00:00:00Z
)

// Open opens or creates the spool at path (data_dir/spool.db), creating the
// directory. Another process holding the spool makes Open fail at once with
// ErrLocked. A file that bbolt cannot open or that fails its consistency
// check is renamed to path.corrupt-<UTC time>, logged at Error, and a fresh
// spool takes its place with the old file's intact entries copied in; its
// sequence numbers continue above the old ones.
func Open(path string, opts Options) (*Spool, error) {
	opts.setDefaults()
	if opts.MaxBytes < 0 || opts.MaxAge < 0 {
		return nil, fmt.Errorf("spool %s: max_bytes and max_age must not be negative", path)
	}
	if opts.Overflow != DropOldest && opts.Overflow != DropNewest {
		return nil, fmt.Errorf("spool %s: unknown overflow policy %d", path, int(opts.Overflow))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("spool %s: create directory: %w", path, err)
	}
	s := &Spool{
		path:   path,
		opts:   opts,
		log:    opts.Logger.With("path", path), // the caller names the component
		floor:  seqFloor{path: path + ".seq", noSync: opts.NoSync},
		kick:   make(chan struct{}, 1),
		notify: make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	lock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", path, err)
	}
	s.lock = lock
	if err := s.open(); err != nil {
		unlockFile(lock)
		return nil, err
	}
	go s.run()
	return s, nil
}

// Append stores one batch durably (fsync'd) before it returns. encode is
// called once with the batch's sequence number, which only ever grows,
// across restarts too, and returns the encoded message, which the spool
// copies before encode's caller returns (the caller may reuse the buffer
// then); samples is the batch's sample count, for drop accounting and
// Stats. Concurrent Appends coalesce into one bbolt commit.
//
// With drop_newest and no room, Append returns ErrFull, counts the samples
// as dropped and stores nothing. A sequence number handed to encode and then
// not stored (encode failed, the batch was refused or the write failed) is
// never used again: the gateway sees a gap where data was lost.
//
// If ctx ends while the commit is in progress, Append returns ctx.Err() and
// the batch may or may not be stored.
func (s *Spool) Append(ctx context.Context, samples int, encode func(seq uint64) ([]byte, error)) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	seq, done, err := s.AppendAsync(samples, encode)
	if err != nil {
		return seq, err
	}
	select {
	case err := <-done:
		return seq, err
	case <-ctx.Done():
		return seq, ctx.Err()
	}
}

// AppendAsync is Append for a caller that keeps several batches in flight:
// it reserves the sequence number and calls encode before it returns (so
// sequence order is call order), and reports the durable result on done
// (buffered; exactly one value, nil once the batch is fsync'd). A single
// caller that waits for each Append is bound to one batch per commit; one
// that keeps a few AppendAsync results outstanding lets them share commits.
// An err returned directly (ErrClosed, ErrFull when already full, encode's
// error) means nothing was queued and done is nil.
func (s *Spool) AppendAsync(samples int, encode func(seq uint64) ([]byte, error)) (seq uint64, done <-chan error, err error) {
	if samples < 0 {
		return 0, nil, fmt.Errorf("spool append: negative sample count %d", samples)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, nil, ErrClosed
	}
	if s.opts.Overflow == DropNewest && s.opts.MaxBytes > 0 && s.st.Bytes >= s.opts.MaxBytes {
		// Already full: refuse without spending a sequence number.
		s.st.DroppedNewest += uint64(samples)
		s.mu.Unlock()
		return 0, nil, ErrFull
	}
	s.lastSeq++
	r := &appendReq{seq: s.lastSeq, samples: samples, done: make(chan error, 1)}
	s.queue = append(s.queue, r)
	s.mu.Unlock()

	// Encode outside the lock so that callers encode in parallel; the
	// committer commits only the ready prefix of the queue, so a batch
	// never becomes visible before one with a lower sequence number.
	finished := false
	defer func() {
		if !finished { // encode panicked: unblock the committer, re-panic
			s.ready(r, nil, 0, errors.New("encode panicked"))
		}
	}()
	data, err := encode(r.seq)
	finished = true
	if err == nil && len(data) == 0 {
		err = errors.New("encode returned no data")
	}
	var rec []byte
	if err == nil {
		// The record is built here, outside the lock: the committer
		// only stores it, and the caller's buffer is free again.
		rec = encodeRecord(s.opts.Now(), samples, data)
	}
	s.ready(r, rec, len(data), err)
	if err != nil {
		return r.seq, nil, fmt.Errorf("spool append seq %d: encode: %w", r.seq, err)
	}
	return r.seq, r.done, nil
}

func (s *Spool) ready(r *appendReq, rec []byte, size int, err error) {
	s.mu.Lock()
	r.rec, r.size, r.err, r.ready = rec, size, err, true
	s.mu.Unlock()
	s.wake()
}

func (s *Spool) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Ack deletes acknowledged batches. Sequence numbers may come in any order;
// missing ones (already acked, evicted) are ignored. Ack waits for the
// commit, which it shares with concurrent Appends and Acks; passing many
// sequence numbers in one call is cheapest.
func (s *Spool) Ack(seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	return s.enqueueAck(&ackReq{seqs: seqs, done: make(chan error, 1)})
}

func (s *Spool) enqueueAck(r *ackReq) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.acks = append(s.acks, r)
	s.mu.Unlock()
	s.wake()
	return <-r.done
}

// Peek returns up to max entries with Seq > after, in sequence order,
// copied out of the transaction. An entry whose CRC fails is skipped,
// logged, counted and deleted.
func (s *Spool) Peek(after uint64, max int) ([]Entry, error) {
	if max <= 0 {
		return nil, nil
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	out, bad, gen, err := s.peek(after, max)
	if err != nil && isCorrupt(err) {
		// The open-time check missed this damage. Set the file aside,
		// salvage what is intact and read again from the fresh one.
		s.log.Error("spool file damaged while running", "err", err)
		if rerr := s.requestReset(err, gen); rerr != nil {
			return nil, fmt.Errorf("spool %s: peek after %d: %w (reset: %v)", s.path, after, err, rerr)
		}
		out, bad, _, err = s.peek(after, max)
	}
	if err != nil {
		return nil, fmt.Errorf("spool %s: peek after %d: %w", s.path, after, err)
	}
	if len(bad) > 0 {
		if err := s.enqueueAck(&ackReq{seqs: bad, corrupt: true, done: make(chan error, 1)}); err != nil {
			s.log.Warn("could not delete corrupt entries", "seqs", bad, "err", err)
		}
	}
	s.mu.Lock()
	out = s.fl.handOut(after, out, &s.st)
	s.mu.Unlock()
	return out, nil
}

// peek reads entries in a short read transaction and returns the
// sequence numbers of entries whose CRC failed.
func (s *Spool) peek(after uint64, max int) (out []Entry, bad []uint64, gen uint64, err error) {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	gen = s.gen
	err = guard(func() error {
		if s.db == nil {
			return errors.New("spool file not open (see the last error)")
		}
		return s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket([]byte(bucketName)).Cursor()
			for k, v := c.Seek(key(after + 1)); k != nil && len(out) < max; k, v = c.Next() {
				seq, ok := keySeq(k)
				if !ok {
					continue // Open deleted such keys; never written since
				}
				if seq <= after || (len(out) > 0 && seq <= out[len(out)-1].Seq) {
					// Open checked the order; only outside damage since
					// could do this. Never hand out a batch twice.
					s.log.Error("spool key out of order; skipping it", "seq", seq, "after", after)
					continue
				}
				h, data, err := checkRecord(v)
				if err != nil {
					s.log.Error("spool entry is corrupt; dropping it", "seq", seq, "err", err)
					bad = append(bad, seq)
					continue
				}
				out = append(out, Entry{Seq: seq, Data: append([]byte(nil), data...), Samples: h.samples, Appended: h.appended})
			}
			return nil
		})
	})
	return out, bad, gen, err
}

// requestReset asks the committer to set the damaged file aside, unless it
// has been replaced since generation gen, and waits until it has.
func (s *Spool) requestReset(cause error, gen uint64) error {
	return s.enqueueAck(&ackReq{reset: cause, gen: gen, done: make(chan error, 1)})
}

// Notify returns a channel that receives (never blocking the spool,
// capacity 1) after each commit that stored at least one batch.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Stats returns a snapshot of the spool's backlog and counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	st := s.st
	st.LastSeq = s.lastSeq
	s.mu.Unlock()
	if st.Batches > 0 {
		st.OldestAge = max(s.opts.Now().Sub(st.OldestAppended), 0)
	}
	if fi, err := os.Stat(s.path); err == nil {
		st.FileBytes = fi.Size()
	}
	return st
}

// Close waits for the Appends and Acks already started, commits them,
// closes the file and releases the lock. Later calls return ErrClosed.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	s.mu.Lock()
	s.fl.settle(0, &s.st)
	s.mu.Unlock()
	var err error
	s.dbMu.Lock()
	if s.db != nil {
		err = s.db.Close()
	}
	s.dbMu.Unlock()
	unlockFile(s.lock)
	if err != nil {
		return fmt.Errorf("spool %s: close: %w", s.path, err)
	}
	return nil
}

// guard runs fn with faults on the memory map turned into panics, and turns
// a panic (bbolt panics on some corrupt pages) into an error.
func guard(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &corruptError{err: fmt.Errorf("bbolt panicked: %v", p)}
		}
	}()
	return withPanicOnFault(fn)
}

// corruptError marks an error that means the file is damaged.
type corruptError struct {
	err error
	// lockLeaked: bbolt.Open panicked and its memory map, out of reach,
	// keeps the file's lock; nothing else can open that file any more.
	lockLeaked bool
}

func (e *corruptError) Error() string { return "corrupt: " + e.err.Error() }
func (e *corruptError) Unwrap() error { return e.err }

func isCorrupt(err error) bool {
	var c *corruptError
	return errors.As(err, &c)
}

func cutString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

package spool

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// lockFile takes an exclusive, non-blocking flock on path, which lives beside
// spool.db for as long as the spool is open. It is separate from bbolt's own
// lock because compaction and a corrupt-file reset replace spool.db: a lock
// on the file itself would be free for a moment in between.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid := strings.TrimSpace(string(holder))
			if pid == "" {
				pid = "unknown"
			}
			return nil, fmt.Errorf("%w (pid %s holds %s; is another weft-agent running with the same data_dir?)", ErrLocked, cutString(pid, 20), path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

func unlockFile(f *os.File) {
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	f.Close()
}

// withPanicOnFault makes a fault on the memory-mapped file (a truncated or
// damaged file can make bbolt read past its end) a recoverable panic in this
// goroutine instead of a crash of the process.
func withPanicOnFault(fn func() error) error {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	return fn()
}

func (s *Spool) boltOptions() *bolt.Options {
	return &bolt.Options{
		Timeout:    s.opts.OpenTimeout,
		NoSync:     s.opts.NoSync,
		NoGrowSync: s.opts.NoSync,
		// The freelist is written in every commit (bbolt's default). With
		// NoFreelistSync bbolt rebuilds it at Open by walking the tree in a
		// goroutine of its own, where a damaged page panics out of reach
		// of guard and takes the agent down: a crash loop. The hashmap
		// freelist stays fast when a drained backlog leaves many free pages.
		FreelistType: bolt.FreelistMapType,
	}
}

// open opens s.path, checks it, and on corruption sets it aside and starts
// a fresh file. It fills s.db, s.lastSeq and s.st.
func (s *Spool) open() error {
	// A compaction interrupted by a crash leaves its half-written copy.
	os.Remove(s.path + ".compact")
	floor, err := s.floor.read()
	if err != nil {
		s.log.Warn("sequence floor file unreadable; ignoring it", "err", err)
	}
	err = s.openFile()
	if err == nil {
		return s.raiseFloor(floor)
	}
	if !isCorrupt(err) {
		return err
	}
	aside := s.setAside(err)
	s.st.CorruptResets++
	if err := s.openFile(); err != nil {
		return err
	}
	var oldSeq uint64
	if !lockLeaked(err) {
		_, oldSeq = s.salvage(aside)
	}
	if err := s.rescan(); err != nil {
		return err
	}
	if err := s.restartSeq(max(floor, oldSeq)); err != nil {
		return err
	}
	return s.raiseFloor(max(floor, oldSeq))
}

// rescan recomputes the backlog figures from the file.
func (s *Spool) rescan() error {
	st, _, lastSeq, err := scan(s.db)
	if err != nil {
		return fmt.Errorf("spool %s: scan: %w", s.path, err)
	}
	s.mu.Lock()
	s.lastSeq = max(s.lastSeq, lastSeq)
	s.st.Batches, s.st.Bytes, s.st.Samples, s.st.OldestAppended = st.Batches, st.Bytes, st.Samples, st.OldestAppended
	s.mu.Unlock()
	return nil
}

// openFile opens and checks the file; a damaged file is a *corruptError.
func (s *Spool) openFile() error {
	db, err := openBolt(s.path, s.boltOptions())
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return fmt.Errorf("spool %s: %w (bbolt file lock not free after %s)", s.path, ErrLocked, s.opts.OpenTimeout)
		}
		if !isCorrupt(err) {
			return fmt.Errorf("spool %s: open: %w", s.path, err)
		}
		return fmt.Errorf("spool %s: open: %w", s.path, err)
	}
	st, bad, lastSeq, err := scan(db)
	if err == nil && len(bad) > 0 {
		err = guard(func() error {
			return db.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte(bucketName))
				for _, k := range bad {
					if err := b.Delete(k); err != nil {
						return err
					}
				}
				return nil
			})
		})
		if err == nil {
			s.log.Error("spool held corrupt entries; dropped them", "entries", len(bad))
			s.st.CorruptEntries += uint64(len(bad))
		}
	}
	if err != nil {
		db.Close()
		return fmt.Errorf("spool %s: check: %w", s.path, err)
	}
	s.db = db
	s.lastSeq = lastSeq
	s.st.Batches, s.st.Bytes, s.st.Samples, s.st.OldestAppended = st.Batches, st.Bytes, st.Samples, st.OldestAppended
	return nil
}

// openBolt opens path and makes sure the bucket exists. Errors that mean the
// file is damaged come back as *corruptError; a lock timeout, a permission
// problem or a full disk do not.
func openBolt(path string, o *bolt.Options) (*bolt.DB, error) {
	if err := precheck(path); err != nil {
		return nil, err
	}
	var db *bolt.DB
	var file *os.File
	oo := *o
	oo.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		file = f
		return f, err
	}
	err := guard(func() error {
		var err error
		db, err = bolt.Open(path, 0o600, &oo)
		return err
	})
	if err != nil && db == nil && file != nil && isCorrupt(err) {
		// bbolt panicked inside Open and never closed its file. Close
		// it; its memory map (unreachable now) keeps the file's lock
		// until the process exits, which only affects the file being
		// set aside.
		file.Close()
		var c *corruptError
		if errors.As(err, &c) {
			c.lockLeaked = true
		}
	}
	if err != nil {
		if isCorrupt(err) || !isEnvironmental(err) {
			return nil, asCorrupt(err)
		}
		return nil, err
	}
	// Only write when the bucket is missing: opening an existing spool on
	// a full disk must work, so that the agent runs and reports it.
	exists := false
	err = guard(func() error {
		return db.View(func(tx *bolt.Tx) error {
			exists = tx.Bucket([]byte(bucketName)) != nil
			return nil
		})
	})
	if err == nil && !exists {
		err = guard(func() error {
			return db.Update(func(tx *bolt.Tx) error {
				if tx.Bucket([]byte(bucketName)) == nil {
					// A bbolt file without our bucket is either new (no
					// other keys) or someone else's: then it is not a spool.
					if k, _ := tx.Cursor().First(); k != nil {
						return &corruptError{err: fmt.Errorf("no %q bucket: not a spool file", bucketName)}
					}
					_, err := tx.CreateBucket([]byte(bucketName))
					return err
				}
				return nil
			})
		})
	}
	if err != nil {
		db.Close()
		if isCorrupt(err) || !isEnvironmental(err) {
			return nil, asCorrupt(err)
		}
		return nil, err
	}
	return db, nil
}

// lockLeaked reports a corruptError whose file bbolt left locked.
func lockLeaked(err error) bool {
	var c *corruptError
	return errors.As(err, &c) && c.lockLeaked
}

func asCorrupt(err error) error {
	if isCorrupt(err) {
		return err
	}
	return &corruptError{err: err}
}

// isEnvironmental reports errors that say nothing about the file's
// contents: setting the file aside would not help and would lose data.
func isEnvironmental(err error) bool {
	return errors.Is(err, bolt.ErrTimeout) || errors.Is(err, fs.ErrPermission) ||
		errors.Is(err, syscall.EROFS) || isDiskFull(err) || errors.Is(err, syscall.EMFILE) ||
		errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOMEM)
}

func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// scanStats is what a scan of the bucket finds.
type scanStats struct {
	Batches, Bytes, Samples int64
	OldestAppended          time.Time
}

// scan walks every entry, which reads every branch and leaf page of the
// bucket, and totals the backlog. Entries whose key or header is malformed
// are returned in bad for deletion. (bbolt's own tx.Check runs in a
// goroutine of its own, where a panic on a damaged page cannot be
// recovered; the walk here runs under guard.)
func scan(db *bolt.DB) (st scanStats, bad [][]byte, lastSeq uint64, err error) {
	err = guard(func() error {
		return db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte(bucketName))
			lastSeq = b.Sequence()
			c := b.Cursor()
			find := b.Cursor()
			var prev uint64
			for k, v := c.First(); k != nil; k, v = c.Next() {
				seq, ok := keySeq(k)
				if ok && seq <= prev {
					// bbolt finds keys by binary search: out of order,
					// entries can be neither found nor deleted.
					return &corruptError{err: fmt.Errorf("key %d after key %d: pages out of order", seq, prev)}
				}
				// Walking leaf to leaf never reads the branch pages' keys;
				// Peek, Ack and eviction search through them.
				if fk, _ := find.Seek(k); !bytes.Equal(fk, k) {
					return &corruptError{err: fmt.Errorf("key %x cannot be found by search: branch pages damaged", k)}
				}
				prev = max(prev, seq)
				h, herr := parseHeader(v)
				if !ok || herr != nil || v == nil {
					bad = append(bad, append([]byte(nil), k...))
					continue
				}
				lastSeq = max(lastSeq, seq)
				if st.Batches == 0 {
					st.OldestAppended = h.appended
				}
				st.Batches++
				st.Bytes += int64(h.size)
				st.Samples += int64(h.samples)
			}
			return nil
		})
	})
	return st, bad, lastSeq, err
}

// setAside renames the damaged file to path.corrupt-<UTC time>, logs it
// loudly and returns the new name ("" if it had to be removed).
func (s *Spool) setAside(cause error) string {
	stamp := s.opts.Now().UTC().Format("20060102T150405Z")
	dst := s.path + ".corrupt-" + stamp
	for i := 1; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
			break
		}
		dst = fmt.Sprintf("%s.corrupt-%s-%d", s.path, stamp, i)
	}
	if err := os.Rename(s.path, dst); err != nil {
		s.log.Error("spool file is corrupt and could not be moved aside; removing it", "err", cause, "rename_err", err)
		os.Remove(s.path)
		return ""
	}
	if !s.opts.NoSync {
		syncDir(filepath.Dir(s.path))
	}
	s.log.Error("SPOOL FILE CORRUPT: moved aside, starting a fresh spool with the entries that can be saved",
		"moved_to", dst, "err", cause)
	return dst
}

// salvage copies the intact entries of the set-aside file (strictly
// increasing keys, good CRC) into the fresh s.db, until the first damage
// bbolt trips over. It returns how many it kept and the highest sequence
// number the old file shows (its bucket sequence or its last good key).
func (s *Spool) salvage(from string) (kept int, lastSeq uint64) {
	if from == "" || precheck(from) != nil {
		return 0, 0
	}
	var file *os.File
	var old *bolt.DB
	err := guard(func() error {
		var err error
		old, err = bolt.Open(from, 0o600, &bolt.Options{ReadOnly: true, Timeout: 100 * time.Millisecond,
			OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
				f, err := os.OpenFile(name, flag, perm)
				file = f
				return f, err
			}})
		return err
	})
	if err != nil {
		if old == nil && file != nil {
			file.Close()
		}
		return 0, 0
	}
	defer old.Close()
	type kv struct{ k, v []byte }
	var chunk []kv
	size := 0
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		err := s.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte(bucketName))
			for _, e := range chunk {
				if err := b.Put(e.k, e.v); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			kept += len(chunk)
		}
		chunk, size = chunk[:0], 0
		return err
	}
	err = guard(func() error {
		return old.View(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte(bucketName))
			if b == nil {
				return nil
			}
			lastSeq = b.Sequence()
			c := b.Cursor()
			var prev uint64
			for k, v := c.First(); k != nil; k, v = c.Next() {
				seq, ok := keySeq(k)
				if !ok || seq <= prev {
					continue
				}
				if _, _, err := checkRecord(v); err != nil {
					continue
				}
				prev = seq
				lastSeq = max(lastSeq, seq)
				chunk = append(chunk, kv{append([]byte(nil), k...), append([]byte(nil), v...)})
				if size += len(v); size >= 4<<20 {
					if err := flush(); err != nil {
						return err
					}
				}
			}
			return nil
		})
	})
	if ferr := flush(); err == nil {
		err = ferr
	}
	s.log.Error("salvaged entries from the corrupt spool file", "file", from, "kept", kept, "stopped_by", err)
	return kept, lastSeq
}

// restartSeq makes a fresh file continue the sequence above from.
func (s *Spool) restartSeq(from uint64) error {
	if from > 0 {
		err := guard(func() error {
			return s.db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket([]byte(bucketName)).SetSequence(from)
			})
		})
		if err != nil {
			s.db.Close()
			return fmt.Errorf("spool %s: set sequence of the fresh file: %w", s.path, err)
		}
		s.lastSeq = from
	}
	return nil
}

// raiseFloor runs at Open with the floor read from the side file: a file
// that starts over (deleted by hand, or new) continues above the floor, and
// the floor is moved above the current sequence.
func (s *Spool) raiseFloor(floor uint64) error {
	if s.lastSeq == 0 && floor > 0 && s.st.Batches == 0 {
		if err := s.restartSeq(floor); err != nil {
			return err
		}
		s.log.Info("spool file was new; sequence numbers continue from the floor file", "seq", floor)
	}
	s.floor.value = floor
	if s.lastSeq >= floor {
		if err := s.floor.write(s.lastSeq + seqBlock); err != nil {
			s.log.Warn("could not write sequence floor file", "err", err)
		}
	}
	return nil
}

// seqBlock is how far the floor file runs ahead of the sequence: it is
// rewritten once per seqBlock batches.
var seqBlock uint64 = 1 << 16

// seqFloor is a tiny side file (spool.db.seq) holding a number that no
// stored sequence number exceeds. It is rewritten (atomically) before a
// commit would store a sequence number above it. When spool.db is set
// aside or lost, the fresh file continues above the floor, so sequence
// numbers never go back, at the price of a gap of at most seqBlock.
type seqFloor struct {
	path   string
	value  uint64
	noSync bool // Options.NoSync, for tests
}

func (f *seqFloor) read() (uint64, error) {
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var v uint64
	var sum uint32
	line := strings.TrimSpace(string(b))
	if n, err := fmt.Sscanf(line, "weft-spool-seq 1 %d %08x", &v, &sum); n != 2 || err != nil {
		return 0, fmt.Errorf("%s: %q is not a floor line", f.path, cutString(line, 60))
	}
	if crc32.ChecksumIEEE([]byte(strconv.FormatUint(v, 10))) != sum {
		return 0, fmt.Errorf("%s: checksum mismatch", f.path)
	}
	return v, nil
}

func (f *seqFloor) write(v uint64) error {
	n := strconv.FormatUint(v, 10)
	line := fmt.Sprintf("weft-spool-seq 1 %s %08x\n", n, crc32.ChecksumIEEE([]byte(n)))
	if err := writeFileAtomic(f.path, []byte(line), !f.noSync); err != nil {
		return err
	}
	f.value = v
	return nil
}

// writeFileAtomic writes path through a synced temporary file and a rename.
func writeFileAtomic(path string, b []byte, sync bool) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if !sync {
		return nil
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

package spool

import (
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
		Timeout: s.opts.OpenTimeout,
		NoSync:  s.opts.NoSync,
		// The freelist is rebuilt from the tree at open instead of being
		// written in every commit (one page less per fsync); the hashmap
		// freelist stays fast when a drained backlog leaves many free pages.
		// Both as etcd runs bbolt.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
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
	oldSeq := s.setAside(err)
	s.st.CorruptResets++
	if err := s.openFile(); err != nil {
		return err
	}
	if err := s.restartSeq(max(floor, oldSeq)); err != nil {
		return err
	}
	return s.raiseFloor(max(floor, oldSeq))
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
	var db *bolt.DB
	err := guard(func() error {
		var err error
		db, err = bolt.Open(path, 0o600, o)
		return err
	})
	if err != nil {
		if isCorrupt(err) || !isEnvironmental(err) {
			return nil, asCorrupt(err)
		}
		return nil, err
	}
	err = guard(func() error {
		return db.Update(func(tx *bolt.Tx) error {
			if tx.Bucket([]byte(bucketName)) == nil {
				// A bbolt file without our bucket is either new (no
				// other keys) or someone else's: then it is not a spool.
				if k, _ := tx.Cursor().First(); k != nil {
					return &corruptError{fmt.Errorf("no %q bucket: not a spool file", bucketName)}
				}
				_, err := tx.CreateBucket([]byte(bucketName))
				return err
			}
			return nil
		})
	})
	if err != nil {
		db.Close()
		if isCorrupt(err) || !isEnvironmental(err) {
			return nil, asCorrupt(err)
		}
		return nil, err
	}
	return db, nil
}

func asCorrupt(err error) error {
	if isCorrupt(err) {
		return err
	}
	return &corruptError{err}
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

// scan runs bbolt's consistency check and totals the backlog. Entries whose
// key or header is malformed are returned in bad for deletion.
func scan(db *bolt.DB) (st scanStats, bad [][]byte, lastSeq uint64, err error) {
	err = guard(func() error {
		return db.View(func(tx *bolt.Tx) error {
			var errs []string
			for e := range tx.Check() {
				if len(errs) < 5 {
					errs = append(errs, e.Error())
				}
			}
			if len(errs) > 0 {
				return &corruptError{fmt.Errorf("bbolt check: %s", strings.Join(errs, "; "))}
			}
			b := tx.Bucket([]byte(bucketName))
			lastSeq = b.Sequence()
			c := b.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				seq, ok := keySeq(k)
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
// loudly and returns the highest sequence number it can still read from it
// (0 if none).
func (s *Spool) setAside(cause error) uint64 {
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
		return 0
	}
	syncDir(filepath.Dir(s.path))
	s.log.Error("SPOOL FILE CORRUPT: moved aside, starting a fresh spool; its unsent batches are not forwarded",
		"moved_to", dst, "err", cause)
	return readSeq(dst)
}

// readSeq reads the bucket sequence of a set-aside file, if bbolt can.
func readSeq(path string) uint64 {
	var seq uint64
	guard(func() error {
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
		if err != nil {
			return err
		}
		defer db.Close()
		return db.View(func(tx *bolt.Tx) error {
			if b := tx.Bucket([]byte(bucketName)); b != nil {
				seq = b.Sequence()
			}
			return nil
		})
	})
	return seq
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
	path  string
	value uint64
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
	if err := writeFileAtomic(f.path, []byte(line)); err != nil {
		return err
	}
	f.value = v
	return nil
}

// writeFileAtomic writes path through a synced temporary file and a rename.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
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

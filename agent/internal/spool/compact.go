package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// compactRetry is how long the committer waits after a failed compaction
// before it tries again.
const compactRetry = time.Minute

// maybeCompact copies the live data into a new file and renames it over
// spool.db when the file is at least CompactMinBytes, the live data is at
// most CompactMaxLiveBytes and at most a quarter of the file. bbolt reuses
// freed pages but never shrinks its file: after a long outage has grown it
// and the backlog has drained, this gives the space back. It runs in the
// committer, so appends wait for it; the live-data bound keeps that short.
func (s *Spool) maybeCompact() {
	if s.db == nil || s.opts.CompactMinBytes < 0 || time.Since(s.lastCompactTry) < compactRetry {
		return
	}
	fi, err := os.Stat(s.path)
	if err != nil || fi.Size() < s.opts.CompactMinBytes {
		return
	}
	s.mu.Lock()
	live := s.st.Bytes
	s.mu.Unlock()
	if live > s.opts.CompactMaxLiveBytes || live*4 > fi.Size() {
		return
	}
	s.lastCompactTry = time.Now()
	start := time.Now()
	if err := s.compact(); err != nil {
		s.log.Warn("compaction failed; keeping the current file", "err", err)
		return
	}
	s.lastCompactTry = time.Time{}
	after := int64(0)
	if fi, err := os.Stat(s.path); err == nil {
		after = fi.Size()
	}
	s.mu.Lock()
	s.st.Compactions++
	s.mu.Unlock()
	s.log.Info("spool compacted", "bytes_before", fi.Size(), "bytes_after", after, "live_bytes", live, "took", time.Since(start))
}

func (s *Spool) compact() error {
	tmp := s.path + ".compact"
	os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, s.boltOptions())
	if err != nil {
		return fmt.Errorf("open %s: %w", tmp, err)
	}
	err = guard(func() error { return bolt.Compact(dst, s.db, 4<<20) })
	if err == nil && !s.opts.NoSync {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("copy into %s: %w", tmp, err)
	}

	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	s.gen++
	if err := s.db.Close(); err != nil {
		s.log.Warn("close before compaction rename", "err", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		os.Remove(tmp)
		s.db = nil
		if rerr := s.reopen(); rerr != nil {
			s.log.Error("reopen after a failed compaction", "err", rerr)
		}
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	if !s.opts.NoSync {
		syncDir(filepath.Dir(s.path))
	}
	s.db = nil
	if err := s.reopen(); err != nil {
		return fmt.Errorf("reopen the compacted file: %w", err)
	}
	return nil
}

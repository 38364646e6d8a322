package spool

import "errors"

// Errors returned by the spool. Callers test them with errors.Is.
var (
	// ErrFull is returned by Append when the overflow policy is drop_newest
	// and the batch does not fit under MaxBytes, or when the disk is full
	// and nothing could be evicted. The batch is not stored and its samples
	// are counted in Stats.DroppedNewest.
	ErrFull = errors.New("spool full")

	// ErrTooLarge is returned by Append for one batch bigger than MaxBytes:
	// no eviction could ever make room for it. Its samples are counted in
	// Stats.DroppedNewest.
	ErrTooLarge = errors.New("batch larger than the spool's max_bytes")

	// ErrLocked is returned by Open when another process holds the spool:
	// two agents must never share one data_dir.
	ErrLocked = errors.New("spool is in use by another process")

	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("spool closed")

	// ErrDiskFull wraps the write error when the file system reported
	// ENOSPC (or EDQUOT). It is counted in Stats.WriteErrors.
	ErrDiskFull = errors.New("disk full")
)

package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// precheck reads bbolt's two meta pages the way bbolt chooses between them
// and checks that the pages they point at lie inside the file. bbolt trusts
// a valid meta page and follows its pointers through the memory map: on a
// truncated file that faults inside bbolt.Open, and the map bbolt leaves
// behind would hold its file lock until the process exits. Catching the
// common case here keeps that path for the rare damage this cannot see.
//
// The layout is bbolt's (internal/common.Meta), in the machine's byte order;
// every Weft target (amd64, arm64, arm, 386) is little-endian.
func precheck(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return nil // bbolt reports it, creating the file if it is missing
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return nil // a new file
	}
	size := fi.Size()
	var best *boltMeta
	m0, err0 := readMeta(f, 0)
	if err0 == nil {
		best = &m0
	}
	pageSize := int64(4096)
	if err0 == nil {
		pageSize = int64(m0.pageSize)
	}
	if m1, err1 := readMeta(f, pageSize); err1 == nil && (best == nil || m1.txid > best.txid) {
		best = &m1
	}
	if best == nil {
		return nil // bbolt rejects it with ErrInvalid or ErrChecksum
	}
	ps := int64(best.pageSize)
	if best.pgid < 4 || int64(best.pgid) > size/ps {
		return &corruptError{err: fmt.Errorf("file is %d bytes, but its meta page (txid %d) says %d pages of %d bytes: truncated", size, best.txid, best.pgid, ps)}
	}
	if best.root < 2 || best.root >= best.pgid {
		return &corruptError{err: fmt.Errorf("meta page (txid %d): root page %d outside the %d pages", best.txid, best.root, best.pgid)}
	}
	if best.freelist != ^uint64(0) && (best.freelist < 2 || best.freelist >= best.pgid) {
		return &corruptError{err: fmt.Errorf("meta page (txid %d): freelist page %d outside the %d pages", best.txid, best.freelist, best.pgid)}
	}
	return nil
}

type boltMeta struct {
	pageSize       uint32
	root, freelist uint64
	pgid, txid     uint64
}

const (
	boltMagic       = 0xED0CDAED
	boltVersion     = 2
	pageHeaderSize  = 16
	metaChecksumEnd = 56
)

// readMeta reads and validates the meta page at off.
func readMeta(f *os.File, off int64) (boltMeta, error) {
	var b [pageHeaderSize + 64]byte
	if _, err := f.ReadAt(b[:], off); err != nil && !errors.Is(err, io.EOF) {
		return boltMeta{}, err
	}
	m := b[pageHeaderSize:]
	le := binary.LittleEndian
	if le.Uint32(m[0:]) != boltMagic || le.Uint32(m[4:]) != boltVersion {
		return boltMeta{}, errors.New("not a meta page")
	}
	h := fnv.New64a()
	h.Write(m[:metaChecksumEnd])
	if h.Sum64() != le.Uint64(m[metaChecksumEnd:]) {
		return boltMeta{}, errors.New("meta checksum")
	}
	meta := boltMeta{
		pageSize: le.Uint32(m[8:]),
		root:     le.Uint64(m[16:]),
		freelist: le.Uint64(m[32:]),
		pgid:     le.Uint64(m[40:]),
		txid:     le.Uint64(m[48:]),
	}
	if meta.pageSize < 512 || meta.pageSize > 1<<20 || meta.pageSize&(meta.pageSize-1) != 0 {
		return boltMeta{}, fmt.Errorf("page size %d", meta.pageSize)
	}
	return meta, nil
}

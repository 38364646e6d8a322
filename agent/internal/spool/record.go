package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// A stored value is a fixed header followed by the encoded batch:
//
//	[0]      format version (1)
//	[1:9]    appended time, Unix nanoseconds, big-endian
//	[9:13]   sample count, big-endian
//	[13:17]  CRC-32C of bytes [0:13] and the data
//	[17:]    data, exactly what goes on the wire
//
// bbolt checksums its meta pages only; the CRC catches a scribbled data
// page, which bbolt would hand back without complaint.
const (
	recordVersion = 1
	headerSize    = 17
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errBadRecord = errors.New("bad record")

// key is the bucket key of seq: big-endian, so cursor order is FIFO order.
func key(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// keySeq is the inverse of key; ok is false for a key of the wrong length.
func keySeq(k []byte) (uint64, bool) {
	if len(k) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(k), true
}

// encodeRecord builds the stored value for data.
func encodeRecord(appended time.Time, samples int, data []byte) []byte {
	v := make([]byte, headerSize+len(data))
	v[0] = recordVersion
	binary.BigEndian.PutUint64(v[1:9], uint64(appended.UnixNano()))
	binary.BigEndian.PutUint32(v[9:13], uint32(samples))
	copy(v[headerSize:], data)
	crc := crc32.Update(crc32.Checksum(v[:13], castagnoli), castagnoli, v[headerSize:])
	binary.BigEndian.PutUint32(v[13:17], crc)
	return v
}

// recordHeader is a stored value's header, read without touching the data.
type recordHeader struct {
	appended time.Time
	samples  int
	size     int // length of the data
}

// parseHeader reads v's header. It does not check the CRC: the accounting
// paths (Ack, eviction, the scan at Open) only need the sizes, and a header
// that does not even parse is counted as a corrupt entry.
func parseHeader(v []byte) (recordHeader, error) {
	if len(v) < headerSize {
		return recordHeader{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", errBadRecord, len(v), headerSize)
	}
	if v[0] != recordVersion {
		return recordHeader{}, fmt.Errorf("%w: format version %d, want %d", errBadRecord, v[0], recordVersion)
	}
	return recordHeader{
		appended: time.Unix(0, int64(binary.BigEndian.Uint64(v[1:9]))),
		samples:  int(binary.BigEndian.Uint32(v[9:13])),
		size:     len(v) - headerSize,
	}, nil
}

// checkRecord verifies v's CRC and returns its header and data (a slice of
// v: copy it before the transaction ends).
func checkRecord(v []byte) (recordHeader, []byte, error) {
	h, err := parseHeader(v)
	if err != nil {
		return h, nil, err
	}
	want := binary.BigEndian.Uint32(v[13:17])
	got := crc32.Update(crc32.Checksum(v[:13], castagnoli), castagnoli, v[headerSize:])
	if got != want {
		return h, nil, fmt.Errorf("%w: CRC %08x, stored %08x", errBadRecord, got, want)
	}
	return h, v[headerSize:], nil
}

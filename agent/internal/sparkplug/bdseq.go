package sparkplug

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// BdSeqFile is the file in the data directory that keeps the next bdSeq.
const BdSeqFile = "sparkplug-bdseq"

// nextBdSeq returns the bdSeq for a new MQTT connection and stores the one
// after it (modulo 256), synced, before the connection is made: a bdSeq is
// never used twice in a row, across restarts too, so a host can tell this
// session's NDEATH from an older one's. A missing or unreadable file starts
// at 0.
func nextBdSeq(dir string) (uint64, error) {
	path := filepath.Join(dir, BdSeqFile)
	var bd uint64
	if b, err := os.ReadFile(path); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && n < 256 {
			bd = n
		}
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("sparkplug: store bdSeq in %s: %w", path, err)
	}
	_, err = fmt.Fprintf(f, "%d\n", (bd+1)%256)
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
		return 0, fmt.Errorf("sparkplug: store bdSeq in %s: %w", path, err)
	}
	return bd, nil
}

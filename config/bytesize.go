package config

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// byteUnits are the suffixes ParseByteSize knows: KiB, MiB, GiB, TiB are
// powers of 1024; kB (or KB), MB, GB, TB powers of 1000; B is one byte.
var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseByteSize reads a size such as 1GiB, 512MiB, 64KiB, 10MB, 1.5GiB or a
// plain number of bytes. Units are case-sensitive (MB is 10^6, MiB 2^20).
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range byteUnits {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	if t == "" || t[0] == '-' || t[0] == '+' {
		return 0, errors.New("not a size")
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		if n > math.MaxInt64/mult {
			return 0, errors.New("size too large")
		}
		return ByteSize(n * mult), nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errors.New("not a size")
	}
	b := f * float64(mult)
	if b >= math.MaxInt64 {
		return 0, errors.New("size too large")
	}
	return ByteSize(b), nil
}

// String writes the size the way a config file would, in the largest binary
// unit that divides it exactly.
func (b ByteSize) String() string {
	for _, u := range []struct {
		suffix string
		mult   ByteSize
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && b%u.mult == 0 {
			return strconv.FormatInt(int64(b/u.mult), 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// Package window is the gateway's own store of recent samples, used when no
// InfluxDB is configured: per point, the samples of the last Age (default one
// hour), at most Max of them (default 3600), in the gateway's bbolt file.
// It is enough for the dashboard's small charts; it is not long-term storage.
package window

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/weftiot/weft/gateway/internal/registry"
	"github.com/weftiot/weft/gateway/internal/series"
	"github.com/weftiot/weft/wire"
)

var bucketWindow = []byte("window")

// Store keeps recent samples per point.
type Store struct {
	db     *bolt.DB
	age    time.Duration
	max    int
	now    func() time.Time
	counts map[string]int // samples per series; filled on first touch
}

// Open makes the store's bucket in db.
func Open(db *bolt.DB, age time.Duration, max int) (*Store, error) {
	if age <= 0 {
		age = time.Hour
	}
	if max <= 0 {
		max = 3600
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketWindow)
		return err
	}); err != nil {
		return nil, fmt.Errorf("window store %s: %w", db.Path(), err)
	}
	return &Store{db: db, age: age, max: max, now: time.Now, counts: map[string]int{}}, nil
}

func seriesKey(site, agent, device, point string) []byte {
	k := make([]byte, 0, len(site)+len(agent)+len(device)+len(point)+3)
	k = append(k, site...)
	k = append(k, 0)
	k = append(k, agent...)
	k = append(k, 0)
	k = append(k, device...)
	k = append(k, 0)
	return append(k, point...)
}

// Write stores the samples in one transaction and trims the touched series.
// A sample with the time of one already stored replaces it, as in InfluxDB.
// It is called by one goroutine (the ingest writer).
func (s *Store) Write(ctx context.Context, batches []*wire.Batch) (stored, rejected, skipped int, err error) {
	cutoff := s.now().Add(-s.age).UnixMilli()
	err = s.db.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketWindow)
		touched := map[string]*bolt.Bucket{}
		for _, b := range batches {
			for i := range b.Samples {
				sm := &b.Samples[i]
				if sm.TS < cutoff {
					skipped++
					continue
				}
				k := seriesKey(b.Site, b.Agent, sm.Device, sm.Point)
				bk := touched[string(k)]
				if bk == nil {
					var err error
					if bk, err = root.CreateBucketIfNotExists(k); err != nil {
						return err
					}
					touched[string(k)] = bk
					if _, ok := s.counts[string(k)]; !ok {
						s.counts[string(k)] = bk.Stats().KeyN
					}
				}
				var ts [8]byte
				binary.BigEndian.PutUint64(ts[:], uint64(sm.TS))
				if bk.Get(ts[:]) == nil {
					s.counts[string(k)]++
				}
				if err := bk.Put(ts[:], encode(sm)); err != nil {
					return err
				}
				stored++
			}
		}
		for k, bk := range touched {
			c := bk.Cursor()
			for key, _ := c.First(); key != nil; key, _ = c.First() {
				if int64(binary.BigEndian.Uint64(key)) >= cutoff && s.counts[k] <= s.max {
					break
				}
				if err := c.Delete(); err != nil {
					return err
				}
				s.counts[k]--
			}
		}
		return nil
	})
	if err != nil {
		clear(s.counts) // recount after a failed transaction
		return 0, 0, 0, fmt.Errorf("window store %s: write: %w", s.db.Path(), err)
	}
	return stored, 0, skipped, nil
}

// Series reads one point's samples since a time, oldest first, the newest
// limit of them.
func (s *Store) Series(_ context.Context, site, agent, device, point string, since time.Time, limit int) ([]series.Point, error) {
	var out []series.Point
	err := s.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketWindow).Bucket(seriesKey(site, agent, device, point))
		if bk == nil {
			return nil
		}
		c := bk.Cursor()
		from := since.UnixMilli()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			ts := int64(binary.BigEndian.Uint64(k))
			if ts < from {
				break
			}
			sm, ok := decode(v)
			if !ok {
				continue
			}
			out = append(out, series.Point{TS: ts, Value: registry.ValueOf(sm.Value), Quality: sm.Quality.String()})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("window store %s: read: %w", s.db.Path(), err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// encode packs a sample's value: kind, quality, code (4 bytes), then 8 value
// bytes or the string.
func encode(s *wire.Sample) []byte {
	v := s.Value
	b := make([]byte, 6, 14+len(v.Str()))
	b[0], b[1] = byte(v.Kind()), byte(s.Quality)
	binary.BigEndian.PutUint32(b[2:], s.Code)
	switch v.Kind() {
	case wire.Float:
		f, _ := v.Float()
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(f))
	case wire.Int:
		b = binary.BigEndian.AppendUint64(b, uint64(v.Int()))
	case wire.Uint:
		b = binary.BigEndian.AppendUint64(b, v.Uint())
	case wire.Bool:
		if v.Bool() {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	case wire.String:
		b = append(b, v.Str()...)
	}
	return b
}

func decode(b []byte) (wire.Sample, bool) {
	if len(b) < 6 {
		return wire.Sample{}, false
	}
	s := wire.Sample{Quality: wire.Quality(b[1]), Code: binary.BigEndian.Uint32(b[2:])}
	p := b[6:]
	switch wire.Kind(b[0]) {
	case wire.Null:
	case wire.Float, wire.Int, wire.Uint:
		if len(p) != 8 {
			return s, false
		}
		u := binary.BigEndian.Uint64(p)
		switch wire.Kind(b[0]) {
		case wire.Float:
			s.Value = wire.FloatValue(math.Float64frombits(u))
		case wire.Int:
			s.Value = wire.IntValue(int64(u))
		default:
			s.Value = wire.UintValue(u)
		}
	case wire.Bool:
		if len(p) != 1 {
			return s, false
		}
		s.Value = wire.BoolValue(p[0] == 1)
	case wire.String:
		s.Value = wire.StringValue(string(p))
	default:
		return s, false
	}
	return s, true
}

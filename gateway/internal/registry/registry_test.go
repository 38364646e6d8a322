package registry

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/weftiot/weft/wire"
)

func TestSeqObserve(t *testing.T) {
	var s seqState
	steps := []struct {
		seq  uint64
		want seqOutcome
	}{
		{5, seqNext}, {6, seqNext}, {9, seqAhead}, // hole 7..8
		{7, seqLate}, {7, seqDuplicate}, {6, seqDuplicate}, {10, seqNext},
		{20, seqAhead}, // hole 11..19
		{15, seqLate},  // splits it: 11..14, 16..19
		{11, seqLate}, {19, seqLate}, {16, seqLate},
		{2_000_000, seqAhead}, {1, seqReset},
	}
	for i, st := range steps {
		if got := s.observe(st.seq, 1000); got != st.want {
			t.Fatalf("step %d seq %d: outcome %d, want %d (state %+v)", i, st.seq, got, st.want, s)
		}
	}
	if s.Duplicates != 2 || s.Late != 5 || s.Resets != 1 || s.Last != 1 {
		t.Errorf("state %+v", s)
	}

	var h seqState
	h.observe(1, 0)
	h.observe(5, 0)  // hole 2..4
	h.observe(9, 50) // hole 6..8
	h.observe(3, 60) // 2, 4 and 6..8 remain
	if m := h.missing(); m != 5 {
		t.Fatalf("missing %d, want 5", m)
	}
	if n := h.expire(100, 100); n != 2 || h.Gaps != 2 || h.missing() != 3 {
		t.Errorf("expire at 100: %d gaps (%+v); want the 2 of the first hole", n, h)
	}
	if n := h.expire(150, 100); n != 3 || h.Gaps != 5 || len(h.Holes) != 0 {
		t.Errorf("expire at 150: %d (%+v)", n, h)
	}
}

func openTest(t *testing.T, path string) (*Registry, *bolt.DB, *time.Time) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(db, Rules{OfflineAfter: 2 * time.Minute, BacklogAgeAfter: 10 * time.Minute}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)
	r.SetClock(func() time.Time { return now })
	return r, db, &now
}

func kinds(as []Alert) map[string]bool {
	m := map[string]bool{}
	for _, a := range as {
		if a.Active() {
			m[a.Kind+":"+a.Device] = true
		}
	}
	return m
}

func TestAlertRules(t *testing.T) {
	r, db, now := openTest(t, filepath.Join(t.TempDir(), "g.db"))
	defer db.Close()
	health := func(samples, oldestMs int64, dropped uint64, devState string) {
		r.Health(&wire.Health{V: 1, Site: "s", Agent: "a", TS: now.UnixMilli(),
			Spool:   wire.SpoolHealth{Samples: samples, OldestAgeMs: oldestMs, DroppedOldest: dropped},
			Devices: []wire.DeviceHealth{{ID: "d1", State: devState, Reads: 10, ErrorsByKind: map[string]uint64{wire.ErrorTimeout: uint64(dropped)}}}})
	}
	r.Status(&wire.Status{V: 1, Site: "s", Agent: "a", State: wire.Online})
	health(0, 0, 0, wire.DeviceOK)
	if a := r.Alerts(false, 0); len(a) != 0 {
		t.Fatalf("alerts on a healthy agent: %v", a)
	}
	// Device down, drops, backlog growing then old.
	*now = now.Add(10 * time.Second)
	health(100, 1000, 5, wire.DeviceDown)
	got := kinds(r.Alerts(false, 0))
	if !got["device_down:d1"] || !got["samples_dropped:"] || got["backlog_growing:"] {
		t.Errorf("after device down and drops: %v", got)
	}
	for i := 0; i < 70; i++ { // 11+ minutes of growth, 10s apart
		*now = now.Add(10 * time.Second)
		health(200+int64(i), int64(i)*10_000, 5, wire.DeviceOK)
	}
	got = kinds(r.Alerts(false, 0))
	if !got["backlog_growing:"] || !got["backlog_old:"] || got["device_down:d1"] || got["samples_dropped:"] {
		t.Errorf("after growth: %v; want backlog_growing and backlog_old, device and drops cleared", got)
	}
	// Offline: alert only after offline_after.
	r.Status(&wire.Status{V: 1, Site: "s", Agent: "a", State: wire.Offline})
	*now = now.Add(time.Minute)
	r.Tick()
	if kinds(r.Alerts(false, 0))["agent_offline:"] {
		t.Error("offline alert before offline_after")
	}
	*now = now.Add(90 * time.Second)
	r.Tick()
	got = kinds(r.Alerts(false, 0))
	if !got["agent_offline:"] || got["backlog_old:"] {
		t.Errorf("after 2.5 min offline: %v; want agent_offline only", got)
	}
	// Back online: cleared, with an end time in history.
	r.Status(&wire.Status{V: 1, Site: "s", Agent: "a", State: wire.Online})
	health(0, 0, 5, wire.DeviceOK)
	if a := r.Alerts(false, 0); len(a) != 0 {
		t.Errorf("alerts after recovery: %v", a)
	}
	hist := r.Alerts(true, 100)
	if len(hist) < 5 || hist[0].Ended == 0 || hist[0].Started == 0 {
		t.Errorf("history %+v", hist)
	}
	// A sequence gap: a hole older than offline_after.
	r.Batch(&wire.Batch{Site: "s", Agent: "a", Seq: 1})
	r.Batch(&wire.Batch{Site: "s", Agent: "a", Seq: 4})
	*now = now.Add(3 * time.Minute)
	r.Tick()
	if !kinds(r.Alerts(false, 0))["sequence_gap:"] {
		t.Error("no sequence_gap alert")
	}
	a, _, _ := r.Get("s", "a")
	if len(a.Devices) != 1 || a.Devices[0].ErrorsByKind[wire.ErrorTimeout] != 5 {
		t.Errorf("devices %+v: want the last health's errors by kind (timeout 5)", a.Devices)
	}
	if a.Seq.Gaps != 2 {
		t.Errorf("gaps %d, want 2", a.Seq.Gaps)
	}
}

// TestPersistence reopens the file: agents, sequence state and alerts survive.
func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.db")
	r, db, now := openTest(t, path)
	r.Status(&wire.Status{V: 1, Site: "s", Agent: "a", State: wire.Offline, Version: "v1"})
	r.Batch(&wire.Batch{Site: "s", Agent: "a", Seq: 41})
	r.Batch(&wire.Batch{Site: "s", Agent: "a", Seq: 42})
	*now = now.Add(5 * time.Minute)
	r.Tick()
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	db.Close()

	r2, db2, _ := openTest(t, path)
	defer db2.Close()
	a, _, ok := r2.Get("s", "a")
	if !ok || a.State != StateOffline || a.Version != "v1" || a.Seq.Last != 42 {
		t.Fatalf("after reopen: %+v", a)
	}
	if out := r2.Batch(&wire.Batch{Site: "s", Agent: "a", Seq: 43}); out.Ahead || out.Duplicate {
		t.Errorf("seq 43 after reopen: %+v; want next", out)
	}
	if out := r2.Batch(&wire.Batch{Site: "s", Agent: "a", Seq: 42}); !out.Duplicate {
		t.Errorf("seq 42 after reopen not a duplicate")
	}
	if !kinds(r2.Alerts(false, 0))["agent_offline:"] {
		t.Error("active offline alert lost across reopen")
	}
}

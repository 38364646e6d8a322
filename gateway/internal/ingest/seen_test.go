package ingest

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestSeenBookAndEncoding(t *testing.T) {
	var s seenBook
	for _, seq := range []uint64{1, 2, 3, 5, 6, 6, 7, 0} { // 6 stored twice; 0 is no number
		s.add("s", "a1", seq)
	}
	s.add("s", "a2", 9)
	a := s.take()
	want := map[seenKey][][2]uint64{
		{"s", "a1"}: {{1, 3}, {5, 6}, {6, 7}},
		{"s", "a2"}: {{9, 9}},
	}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("collected %v, want %v", a, want)
	}
	if s.take() != nil {
		t.Fatal("take did not start afresh")
	}
	msgs := encodeSeen("gw-1", a)
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	m, err := decodeSeen(msgs[0], "gw-1")
	if err != nil {
		t.Fatal(err)
	}
	got := map[seenKey][][2]uint64{}
	for _, x := range m.Agents {
		got[seenKey{x.Site, x.Agent}] = x.Seqs
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded %v, want %v", got, want)
	}
	s.putBack(map[seenKey][][2]uint64{{"s", "a2"}: {{9, 9}}})
	s.add("s", "a2", 10)
	if b := s.take(); !reflect.DeepEqual(b[seenKey{"s", "a2"}], [][2]uint64{{9, 10}}) {
		t.Errorf("after putBack and add: %v", b)
	}
}

func TestSeenSplit(t *testing.T) {
	a := map[seenKey][][2]uint64{}
	for i := range 20_000 { // every other number: no range joins
		k := seenKey{"s", "a" + string(rune('a'+i%3))}
		a[k] = append(a[k], [2]uint64{uint64(2*i + 1), uint64(2*i + 1)})
	}
	msgs := encodeSeen("gw-1", a)
	if len(msgs) < 2 {
		t.Fatalf("%d messages; want the ranges split", len(msgs))
	}
	n := 0
	for _, p := range msgs {
		if len(p) > 2*seenSplit {
			t.Errorf("a message of %d bytes", len(p))
		}
		m, err := decodeSeen(p, "gw-1")
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range m.Agents {
			n += len(x.Seqs)
		}
	}
	if n != 20_000 {
		t.Errorf("%d ranges in all, want 20000", n)
	}
}

func TestDecodeSeenRefuses(t *testing.T) {
	for _, c := range []struct{ payload, why string }{
		{`{"v":2,"gateway":"gw-2","agents":[]}`, "version 2"},
		{`{"v":1,"gateway":"gw-3","agents":[]}`, `gateway "gw-3" on the topic of "gw-2"`},
		{`{"v":1,"gateway":"gw-2","agents":[{"site":"s","agent":"","seqs":[]}]}`, "site and agent are required"},
		{`{"v":1,"gateway":"gw-2","agents":[{"site":"s","agent":"a","seqs":[[5,4]]}]}`, "[5,4] is not a range"},
		{`{"v":1,"gateway":"gw-2","agents":[{"site":"s","agent":"a","seqs":[[0,4]]}]}`, "[0,4] is not a range"},
		{`{"v":1,"gateway":"gw-2","agents":[{"site":"s","agent":"a","seqs":[[1,-4]]}]}`, "cannot unmarshal"},
		{`{"v":1,`, "unexpected end"},
		{strings.Repeat(" ", maxSeenBytes+1), "the limit is"},
	} {
		_, err := decodeSeen([]byte(c.payload), "gw-2")
		if err == nil || !errors.Is(err, errSeen) || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%.60s: error %v; want one saying %q", c.payload, err, c.why)
		}
	}
}

// FuzzDecodeSeen: another gateway's message never panics the decoder, and
// what it accepts encodes back to the same ranges.
func FuzzDecodeSeen(f *testing.F) {
	f.Add([]byte(`{"v":1,"gateway":"gw-2","agents":[{"site":"s","agent":"a1","seqs":[[1,5],[7,7]]}]}`))
	f.Add([]byte(`{"v":1,"gateway":"gw-2","agents":[]}`))
	f.Add([]byte(`{"v":1,"gateway":"gw-2","agents":[{"site":"s","agent":"a","seqs":[[18446744073709551615,18446744073709551615]]}]}`))
	f.Add([]byte(`{"v":1,"gateway":"gw-2","agents":[{"site":"s","agent":"a","seqs":[[3,2]]}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeSeen(data, "gw-2")
		if err != nil {
			if !errors.Is(err, errSeen) {
				t.Fatalf("error outside errSeen: %v", err)
			}
			return
		}
		a := map[seenKey][][2]uint64{}
		for _, x := range m.Agents {
			k := seenKey{x.Site, x.Agent}
			a[k] = append(a[k], x.Seqs...)
		}
		for _, p := range encodeSeen("gw-2", a) {
			if _, err := decodeSeen(p, "gw-2"); err != nil {
				t.Fatalf("re-encoded %q: %v", p, err)
			}
		}
	})
}

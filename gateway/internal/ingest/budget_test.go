package ingest

import (
	"testing"
	"time"
)

func TestBudget(t *testing.T) {
	b := newBudget(100)
	stop := make(chan struct{})
	if !b.take(60, stop) || !b.take(40, stop) {
		t.Fatal("take within the budget waited")
	}
	got := make(chan bool, 1)
	go func() { got <- b.take(30, stop) }()
	select {
	case <-got:
		t.Fatal("take past the budget did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	b.release(20) // 80 held: 30 more still does not fit
	select {
	case <-got:
		t.Fatal("take went through with 80+30 > 100")
	case <-time.After(50 * time.Millisecond):
	}
	b.release(40)
	select {
	case ok := <-got:
		if !ok || b.inUse() != 70 {
			t.Fatalf("take after release = %v, in use %d; want true, 70", ok, b.inUse())
		}
	case <-time.After(time.Second):
		t.Fatal("take did not wake after release")
	}

	// Stopping ends a wait without taking anything.
	go func() { got <- b.take(50, stop) }()
	time.Sleep(20 * time.Millisecond)
	close(stop)
	if ok := <-got; ok || b.inUse() != 70 {
		t.Fatalf("take after stop = %v, in use %d; want false, 70", ok, b.inUse())
	}

	// A message larger than the budget passes alone, never beside others.
	b.release(70)
	if !b.take(500, nil) {
		t.Fatal("an oversized message waited on an empty budget")
	}
	if b.inUse() != 500 {
		t.Fatalf("in use %d, want 500", b.inUse())
	}
}

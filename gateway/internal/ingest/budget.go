package ingest

import "sync"

// budget bounds the payload bytes of data messages received and not yet
// acknowledged. MQTT 3.1.1 has no receive maximum, and a broker's in-flight
// limit is its own setting (Mosquitto 2.0.11 sent this gateway 1,900
// unacknowledged 40 KB messages with max_inflight_messages 100), so the
// gateway bounds itself: when the budget is spent, onMessage waits, paho
// stops reading the connection, and TCP holds the rest back in the broker.
type budget struct {
	max int

	mu    sync.Mutex
	used  int
	freed chan struct{} // closed and replaced on every release
}

func newBudget(max int) *budget { return &budget{max: max, freed: make(chan struct{})} }

// take reserves n bytes, waiting while the budget is spent; false if stop
// closed first. A message larger than the whole budget still goes through
// when nothing else is held, so it cannot wait forever.
func (b *budget) take(n int, stop <-chan struct{}) bool {
	for {
		b.mu.Lock()
		if b.used == 0 || b.used+n <= b.max {
			b.used += n
			b.mu.Unlock()
			return true
		}
		freed := b.freed
		b.mu.Unlock()
		select {
		case <-freed:
		case <-stop:
			return false
		}
	}
}

// release returns n bytes and wakes the waiters.
func (b *budget) release(n int) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}

// inUse is the bytes held now.
func (b *budget) inUse() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

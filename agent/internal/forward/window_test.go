package forward

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/weftiot/weft/internal/faultproxy"
	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
)

// ackHolder watches one MQTT connection through the fault proxy: it counts
// the PUBLISH packets the agent sends on one topic, and while holding it
// keeps every packet of the broker (the PUBACKs among them) back until the
// hold ends.
type ackHolder struct {
	topic string

	mu        sync.Mutex
	until     time.Time
	up        []byte // agent → broker bytes not yet parsed into packets
	published int
}

func (h *ackHolder) Hold(up bool, b []byte) time.Time {
	if up {
		return time.Time{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.until
}

func (h *ackHolder) Upstream(b []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.up = append(h.up, b...)
	for {
		// MQTT fixed header: type in the high nibble of the first byte,
		// then the remaining length as a base-128 varint.
		if len(h.up) < 2 {
			return
		}
		n, shift, i := 0, 0, 1
		for ; i < len(h.up) && i <= 4; i++ {
			n |= int(h.up[i]&0x7f) << shift
			shift += 7
			if h.up[i]&0x80 == 0 {
				break
			}
		}
		if i >= len(h.up) || len(h.up) < i+1+n {
			return // the rest of the packet is still to come
		}
		body := h.up[i+1 : i+1+n]
		if h.up[0]>>4 == 3 && len(body) >= 2 { // PUBLISH: topic length, topic, ...
			if l := int(binary.BigEndian.Uint16(body)); len(body) >= 2+l && string(body[2:2+l]) == h.topic {
				h.published++
			}
		}
		h.up = h.up[i+1+n:]
	}
}

func (h *ackHolder) Downstream([]byte) {}

func (h *ackHolder) hold(d time.Duration) {
	h.mu.Lock()
	h.until = time.Now().Add(d)
	h.mu.Unlock()
}

func (h *ackHolder) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.published
}

// Issue 6: many batches in flight at once, in a bounded window, and each
// deleted from the spool only when acknowledged. While the broker's
// PUBACKs are held back, the forwarder sends exactly MaxInflight batches
// of a larger backlog and deletes none of them; once the PUBACKs pass,
// the whole backlog is delivered (each batch once: the connection never
// broke) and the spool ends empty.
func TestForwarderWindowIsBoundedAndAcksOnlyOnPUBACK(t *testing.T) {
	broker := testservers.Mosquitto(t)
	topics := wire.Topics{Prefix: "weft/v1"}
	data := topics.Data("s1", "a1")
	holder := &ackHolder{topic: data}
	link, err := faultproxy.New(broker.Addr, func() faultproxy.Observer { return holder })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { link.Close() })
	rcv := subscribe(t, broker.URL, data, topics.Status("s1", "a1"))
	sp := openSpool(t)
	const window, backlog = 5, 30
	fwd := New(sp, Options{
		Broker: "tcp://" + link.Addr(), ClientID: "a1", MaxInflight: window,
		// Longer than the hold: neither paho's ping nor the forwarder's
		// missing-PUBACK watchdog may end the connection meanwhile.
		KeepAlive: 20 * time.Second, ConnectTimeout: 5 * time.Second,
		DataTopic: data, StatusTopic: topics.Status("s1", "a1"), Online: online,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fwd.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitUntil(t, "connected", fwd.Connected)

	const hold = 2 * time.Second
	holder.hold(hold)
	held := time.Now()
	var n int64
	appendBatches(t, sp, "d", backlog, 10, &n)
	waitUntil(t, "the window's publishes", func() bool { return holder.count() >= window })
	// Give a forwarder that ignored its window time to send more.
	time.Sleep(hold / 2)
	if time.Since(held) >= hold {
		t.Skip("the machine was too slow to look inside the hold; nothing measured")
	}
	if got := holder.count(); got != window {
		t.Errorf("%d batches published with no PUBACK back, want exactly the window of %d", got, window)
	}
	if st := sp.Stats(); st.Batches != backlog {
		t.Errorf("%d batches in the spool with every PUBACK held back, want all %d: a batch was deleted before its acknowledgement", st.Batches, backlog)
	}

	waitUntil(t, "the backlog delivered once the PUBACKs pass", func() bool { return rcv.distinct() == backlog })
	waitUntil(t, "the spool emptied", func() bool { return sp.Stats().Batches == 0 })
	if got := holder.count(); got != backlog {
		t.Errorf("%d publishes for %d batches on one unbroken connection, want each once", got, backlog)
	}
	if h := fwd.Health(); h.Reconnects != 0 || h.PublishedBatch != backlog {
		t.Errorf("health %+v: want no reconnect and %d batches published", h, backlog)
	}
}

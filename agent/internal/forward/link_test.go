package forward

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/weftiot/weft/internal/faultproxy"
	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
)

// A link that freezes under a backlog larger than the TCP buffers blocks
// paho's writes, its PINGREQ included, so paho's ping never notices; the
// forwarder does within the keepalive: by the missing PUBACKs, or by the
// write timeout on a publish, whichever comes first. Once the
// link passes again it reconnects and delivers everything.
func TestForwarderNoticesAFrozenLink(t *testing.T) {
	broker := testservers.Mosquitto(t)
	// The frozen link: its connections stop reading both ways and close
	// nothing, as a link whose packets all vanish. The sender's TCP
	// buffers fill and its writes block, paho's PINGREQ too, which is what
	// a real blackhole does to a client with data to send and what no
	// running broker can be made to do.
	link := faultproxy.Start(t, broker.Addr)
	topics := wire.Topics{Prefix: "weft/v1"}
	sp := openSpool(t)
	const k = 2 * time.Second
	fwd := New(sp, Options{
		Broker: "tcp://" + link.Addr(), ClientID: "a1", MaxInflight: 8, KeepAlive: k,
		BackoffMin: 100 * time.Millisecond, BackoffMax: 500 * time.Millisecond, ConnectTimeout: 2 * time.Second,
		DataTopic: topics.Data("s1", "a1"), StatusTopic: topics.Status("s1", "a1"), Online: online,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- fwd.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitUntil(t, "connected", fwd.Connected)

	link.Freeze()
	// 8 batches of 4 MiB: more than loopback's socket buffers hold.
	var start time.Time // no later than the first publish
	for i := range 8 {
		payload := make([]byte, 4<<20)
		rand.Read(payload)
		if _, err := sp.Append(context.Background(), 1, func(uint64) ([]byte, error) { return payload, nil }); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			start = time.Now()
		}
	}
	waitUntil(t, "the frozen link noticed", func() bool { return !fwd.Connected() })
	noticed := time.Since(start)
	t.Logf("frozen link noticed %v after the first publish (keepalive %v): %s", noticed.Round(10*time.Millisecond), k, fwd.Health().LastError)
	// The appends and the test's polling take some milliseconds, and a
	// loaded CI box under -race more: a second and a half of slack still
	// fails a forwarder that waits for paho's ping (never, through a full
	// send buffer).
	if limit := k + 1500*time.Millisecond; noticed > limit {
		t.Errorf("frozen link noticed after %v, want within the keepalive %v", noticed, k)
	}
	if err := fwd.Health().LastError; !strings.Contains(err, "no acknowledgement") && !strings.Contains(err, "timeout") {
		t.Errorf("last error %q: want the forwarder's 'no acknowledgement' or a write timeout (paho's ping cannot get through a full buffer)", err)
	}
	link.Pass()
	waitUntil(t, "the backlog delivered after the link passes again", func() bool { return sp.Stats().Batches == 0 })
}

// With a long backoff, a forwarder whose broker was down still connects
// within about a second of the broker's return (WaitForBroker's probe).
func TestForwarderReconnectsSoonAfterTheBroker(t *testing.T) {
	broker := testservers.Mosquitto(t)
	topics := wire.Topics{Prefix: "weft/v1"}
	sp := openSpool(t)
	fwd := New(sp, Options{
		Broker: broker.URL, ClientID: "a1", KeepAlive: 2 * time.Second,
		BackoffMin: 30 * time.Second, BackoffMax: 30 * time.Second, ConnectTimeout: 2 * time.Second,
		DataTopic: topics.Data("s1", "a1"), StatusTopic: topics.Status("s1", "a1"), Online: online,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- fwd.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitUntil(t, "connected", fwd.Connected)
	broker.Stop()
	waitUntil(t, "the loss noticed", func() bool { return !fwd.Connected() })
	time.Sleep(3 * time.Second) // a failed attempt or two into the 30 s backoff
	broker.Start()
	back := time.Now()
	waitUntil(t, "reconnected", fwd.Connected)
	took := time.Since(back)
	t.Logf("reconnected %v after the broker was back (backoff 30 s)", took.Round(10*time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("reconnected %v after the broker was back; the probe should end the 30 s backoff within about a second", took)
	}
}

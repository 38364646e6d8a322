package forward

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/weftiot/weft/agent/internal/spool"
	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
)

// receiver is a paho subscriber with a persistent session that records
// every data message it gets, in arrival order.
type receiver struct {
	mu     sync.Mutex
	seqs   []uint64
	first  []wire.Batch // batches in order of first arrival
	seen   map[uint64]bool
	status []wire.Status
	c      mqtt.Client
}

func subscribe(t *testing.T, broker, topic, statusTopic string) *receiver {
	t.Helper()
	r := &receiver{seen: map[uint64]bool{}}
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID("test-receiver").
		SetCleanSession(false).SetAutoReconnect(true).SetMaxReconnectInterval(200 * time.Millisecond).
		SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond).
		SetOnConnectHandler(func(c mqtt.Client) {
			c.Subscribe(topic, 1, nil)
			c.Subscribe(statusTopic, 1, nil)
		}).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if m.Topic() == statusTopic {
				var s wire.Status
				if err := json.Unmarshal(m.Payload(), &s); err != nil {
					t.Errorf("status: %v", err)
				}
				r.status = append(r.status, s)
				return
			}
			var b wire.Batch
			if err := wire.DecodeBatch(m.Payload(), &b); err != nil {
				t.Errorf("data message does not decode: %v", err)
				return
			}
			r.seqs = append(r.seqs, b.Seq)
			if !r.seen[b.Seq] {
				r.seen[b.Seq] = true
				r.first = append(r.first, b)
			}
		})
	r.c = mqtt.NewClient(o)
	if tok := r.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("receiver connect: %v", tok.Error())
	}
	t.Cleanup(func() { r.c.Disconnect(100) })
	return r
}

func (r *receiver) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.first)
}

// appendBatches appends n batches of per samples each, for device dev, with
// sample values counting up from *next.
func appendBatches(t *testing.T, sp *spool.Spool, dev string, n, per int, next *int64) {
	t.Helper()
	for i := 0; i < n; i++ {
		b := wire.Batch{Agent: "a1", Site: "s1"}
		for j := 0; j < per; j++ {
			b.Samples = append(b.Samples, wire.Sample{Device: dev, Point: "count", Value: wire.IntValue(*next), TS: time.Now().UnixMilli()})
			*next++
		}
		_, err := sp.Append(context.Background(), per, func(seq uint64) ([]byte, error) {
			b.Seq = seq
			return wire.AppendBatch(nil, &b), nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func openSpool(t *testing.T) *spool.Spool {
	t.Helper()
	sp, err := spool.Open(filepath.Join(t.TempDir(), "spool.db"), spool.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

func online() wire.Status {
	return wire.Status{V: wire.Version, Agent: "a1", Site: "s1", State: wire.Online, ConfigHash: "abc", Devices: []string{"d1"}}
}

// A broker stopped mid-stream and started again: every batch arrives, the
// first arrivals are in sequence order, each device's samples in order, and
// the spool ends empty.
func TestForwarderBrokerRestartLosesNothing(t *testing.T) {
	broker := testservers.Mosquitto(t)
	topics := wire.Topics{Prefix: "weft/v1"}
	data, status := topics.Data("s1", "a1"), topics.Status("s1", "a1")
	rcv := subscribe(t, broker.URL, data, status)
	sp := openSpool(t)
	fwd := New(sp, Options{
		Broker: broker.URL, ClientID: "a1", MaxInflight: 8, KeepAlive: 2 * time.Second,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond, ConnectTimeout: 2 * time.Second,
		DataTopic: data, StatusTopic: status, Online: online,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- fwd.Run(ctx) }()

	var next [2]int64
	dev := []string{"dye-01", "loom-07"}
	total := 0
	produce := func(rounds int) {
		for i := 0; i < rounds; i++ {
			for d := range dev {
				appendBatches(t, sp, dev[d], 1, 50, &next[d])
				total++
			}
		}
	}
	produce(50)
	waitUntil(t, "first batches delivered", func() bool { return rcv.distinct() >= 20 })
	broker.Stop()
	produce(100) // collected while the broker is down
	time.Sleep(300 * time.Millisecond)
	if fwd.Connected() {
		t.Error("forwarder reports connected while the broker is down")
	}
	broker.Start()
	produce(50)
	waitUntil(t, "every batch delivered", func() bool { return rcv.distinct() == total })
	waitUntil(t, "spool emptied", func() bool { return sp.Stats().Batches == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "offline status at the end", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return len(rcv.status) > 0 && rcv.status[len(rcv.status)-1].State == wire.Offline
	})

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	var prev uint64
	want := map[string]int64{}
	for _, b := range rcv.first {
		if b.Seq <= prev {
			t.Fatalf("first delivery of seq %d after %d: order lost", b.Seq, prev)
		}
		prev = b.Seq
		for _, s := range b.Samples {
			if s.Value.Int() != want[s.Device] {
				t.Fatalf("%s: sample %d arrived where %d was next", s.Device, s.Value.Int(), want[s.Device])
			}
			want[s.Device]++
		}
	}
	for d := range dev {
		if want[dev[d]] != next[d] {
			t.Errorf("%s: %d samples arrived, %d were produced", dev[d], want[dev[d]], next[d])
		}
	}
	h := fwd.Health()
	if h.Reconnects < 1 || h.PublishedBatch < uint64(total) || h.PublishedSamp < uint64(total*50) {
		t.Errorf("health %+v: want a reconnect and %d batches published", h, total)
	}
	t.Logf("%d batches, %d deliveries (%d repeated after the outage), %d reconnects",
		total, len(rcv.seqs), len(rcv.seqs)-total, h.Reconnects)
	// Online after the reconnect, offline at the end of Run.
	var states []string
	for _, s := range rcv.status {
		states = append(states, s.State)
	}
	if n := len(states); n < 3 || states[n-1] != wire.Offline || states[n-2] != wire.Online {
		t.Errorf("status states %v: want ..., online, offline", states)
	}
}

// At the end of Run the backlog is flushed within FlushTimeout and the
// retained status says offline.
func TestForwarderFlushesAndGoesOffline(t *testing.T) {
	broker := testservers.Mosquitto(t)
	topics := wire.Topics{Prefix: "weft/v1"}
	data, status := topics.Data("s1", "a1"), topics.Status("s1", "a1")
	rcv := subscribe(t, broker.URL, data, status)
	sp := openSpool(t)
	var n int64
	appendBatches(t, sp, "d", 200, 100, &n)
	fwd := New(sp, Options{Broker: broker.URL, ClientID: "a1", DataTopic: data, StatusTopic: status, Online: online, FlushTimeout: 10 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // stop at once: Run must still connect? No: it returns without connecting.
	if err := fwd.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if sp.Stats().Batches != 200 {
		t.Fatalf("nothing may be acked without a connection")
	}

	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- fwd.Run(ctx) }()
	waitUntil(t, "connected", fwd.Connected)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := sp.Stats(); st.Batches != 0 {
		t.Errorf("%d batches left in the spool after the flush", st.Batches)
	}
	waitUntil(t, "offline status", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return len(rcv.status) > 0 && rcv.status[len(rcv.status)-1].State == wire.Offline
	})
	if got := rcv.distinct(); got != 200 {
		t.Errorf("%d batches arrived, want 200", got)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

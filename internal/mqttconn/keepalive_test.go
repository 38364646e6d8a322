package mqttconn

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/weftiot/weft/internal/faultproxy"
	"github.com/weftiot/weft/internal/testservers"
)

// The split of a keepalive between paho's ping interval and ping timeout
// keeps every promise: detection within k (paho's 1s minimum aside), the
// broker's 1.5 × keepalive never reached by a healthy idle client, and a
// ping timeout with room for a slow answer.
func TestKeepAliveSplit(t *testing.T) {
	for k := time.Second; k <= 10*time.Minute; k += 250 * time.Millisecond {
		ka, pt := pahoKeepAlive(k)
		ci := checkInterval(ka)
		if ka < time.Second || ka%time.Second != 0 {
			t.Fatalf("k=%v: paho keepalive %v is not whole seconds ≥ 1s", k, ka)
		}
		if k >= 2*time.Second && ka > k/2 {
			t.Errorf("k=%v: paho keepalive %v is above k/2", k, ka)
		}
		if pt <= 0 || pt%ci == 0 {
			t.Errorf("k=%v: ping timeout %v is not positive and between two checks (every %v)", k, pt, ci)
		}
		// Idle, paho pings within ka+ci of the last packet; the broker
		// drops a client after 1.5 × the keepalive it was asked for.
		if ka+ci > ka*3/2 {
			t.Errorf("k=%v: pings up to %v apart, the broker allows %v", k, ka+ci, ka*3/2)
		}
		want := max(k, 3*time.Second/2)
		if d := Detection(k); d > want {
			t.Errorf("k=%v: a dead link is noticed after up to %v, want ≤ %v", k, d, want)
		}
		if k >= 4*time.Second && pt < ka/2 {
			t.Errorf("k=%v: ping timeout %v is under half the paho keepalive %v", k, pt, ka)
		}
	}
	ka, pt := pahoKeepAlive(30 * time.Second)
	if ka != 15*time.Second || pt != 7500*time.Millisecond {
		t.Errorf("default 30s: paho keepalive %v, ping timeout %v; want 15s and 7.5s (docs/agent.md says so)", ka, pt)
	}
	if o, _ := (Conn{Broker: "tcp://127.0.0.1:1883", KeepAlive: 30 * time.Second}).Options(); o.KeepAlive != 15 || o.PingTimeout != 7500*time.Millisecond {
		t.Errorf("Conn.Options gives paho keepalive %ds and ping timeout %v; want SetKeepAlive's 15s and 7.5s", o.KeepAlive, o.PingTimeout)
	}
}

// A link that goes silent (no RST) under traffic is noticed within the
// keepalive, measured against a real Mosquitto over several runs.
func TestBlackholeNoticedWithinKeepAlive(t *testing.T) {
	b := testservers.Mosquitto(t)
	type run struct {
		k    time.Duration
		runs int
	}
	plan := []run{{2 * time.Second, 3}}
	if !testing.Short() {
		plan = []run{{2 * time.Second, 5}, {5 * time.Second, 3}}
	}
	for _, r := range plan {
		var worst time.Duration
		for i := range r.runs {
			d := blackholeDetection(t, b.URL, r.k, i)
			t.Logf("keepalive %v, run %d: link declared dead %v after the blackhole began", r.k, i+1, d.Round(time.Millisecond))
			worst = max(worst, d)
		}
		// Paho's checks run on a ticker, and a loaded CI box under -race
		// can run them late: the bound has a second of slack, which still
		// fails the old behaviour (a ping timeout of a whole keepalive
		// after a keepalive of silence, ~2 × k). The figures themselves
		// are measured and recorded in docs/benchmarks.md, scenario 5.
		if limit := Detection(r.k) + time.Second; worst > limit {
			t.Errorf("keepalive %v: a blackhole went unnoticed for %v, want ≤ %v (+ 1 s scheduling slack)", r.k, worst, Detection(r.k))
		}
	}
}

// blackholeDetection connects through a fresh proxy, publishes QoS 1
// messages every 20 ms so that the last packet received is recent, turns
// the proxy into a blackhole and returns how long the loss took to report.
func blackholeDetection(t *testing.T, broker string, k time.Duration, i int) time.Duration {
	t.Helper()
	// The blackhole: a fault no real broker can be made to show.
	p := faultproxy.Start(t, broker[len("tcp://"):])
	o, lost := Conn{Broker: "tcp://" + p.Addr(), ClientID: "hole", CleanSession: true,
		KeepAlive: k, ConnectTimeout: 5 * time.Second}.Options()
	c, err := Connect(context.Background(), o)
	if err != nil {
		t.Fatalf("run %d: connect: %v", i, err)
	}
	defer c.Disconnect(0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			c.Publish("weft/test/hole", 1, false, []byte("x"))
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	// Let the traffic run a little, and wait for an acknowledgement, so
	// that the last packet received is just before the blackhole.
	time.Sleep(300 * time.Millisecond)
	if err := Publish(c, "weft/test/hole", 1, false, []byte("x"), 5*time.Second); err != nil {
		t.Fatalf("run %d: publish before the blackhole: %v", i, err)
	}
	t0 := time.Now()
	p.Blackhole()
	select {
	case <-lost:
		return time.Since(t0)
	case <-time.After(3 * k):
		t.Fatalf("run %d: keepalive %v: the blackhole was not noticed within %v", i, k, 3*k)
	}
	return 0
}

// An idle healthy connection with a short keepalive stays up: paho's pings
// come often enough for the broker, and their answers in time for paho.
func TestIdleConnectionStaysUp(t *testing.T) {
	if testing.Short() {
		t.Skip("idles for 9 s")
	}
	b := testservers.Mosquitto(t)
	// 4 s, not 2: at 2 s the ping timeout is 0.6 s, which a loaded CI box
	// under -race can miss for a local broker's PINGRESP. 9 s idle still
	// spans four pings, and the broker drops a client silent for 3 s.
	const k = 4 * time.Second
	o, lost := Conn{Broker: b.URL, ClientID: "idle", CleanSession: true, KeepAlive: k, ConnectTimeout: 5 * time.Second}.Options()
	c, err := Connect(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(0)
	select {
	case err := <-lost:
		t.Fatalf("an idle connection with keepalive %v was declared lost: %v", k, err)
	case <-time.After(9 * time.Second):
	}
	if !c.IsConnectionOpen() {
		t.Fatal("the idle connection is closed")
	}
	if err := Publish(c, "weft/test/idle", 1, false, []byte("x"), 5*time.Second); err != nil {
		t.Fatalf("publish after idling: %v (the broker dropped a client whose pings were too rare?)", err)
	}
}

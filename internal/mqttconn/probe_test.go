package mqttconn

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/weftiot/weft/internal/faultproxy"
	"github.com/weftiot/weft/internal/testservers"
)

// A client waiting out its backoff while the broker is down connects within
// about a second of the broker's return, not at the end of the backoff.
func TestWaitForBrokerEndsWhenTheBrokerReturns(t *testing.T) {
	b := testservers.Mosquitto(t)
	b.Stop()
	done := make(chan time.Time, 1)
	go func() {
		WaitForBroker(context.Background(), b.URL, 30*time.Second)
		done <- time.Now()
	}()
	time.Sleep(1500 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("the wait ended while the broker was down")
	default:
	}
	b.Start()
	back := time.Now()
	select {
	case end := <-done:
		t.Logf("wait ended %v after the broker was back", end.Sub(back).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("the wait went on 10 s after the broker was back (backoff 30 s)")
	}
}

// A broker reachable all along (the attempt failed past TCP, say on its
// password) gets the whole backoff.
func TestWaitForBrokerWaitsWhenReachable(t *testing.T) {
	b := testservers.Mosquitto(t)
	start := time.Now()
	if !WaitForBroker(context.Background(), b.URL, 1500*time.Millisecond) {
		t.Fatal("reported a cancelled wait")
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Errorf("the wait ended after %v of 1.5s with the broker reachable all along", d)
	}
}

// The wait ends with its context.
func TestWaitForBrokerCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if WaitForBroker(ctx, "tcp://127.0.0.1:1", time.Hour) {
		t.Error("a wait whose context ended reported it ran its course")
	}
}

// A listener that accepts and at once closes — a proxy or load balancer
// with no broker behind it, a fault no running broker shows — is down; one
// that accepts and waits is up.
func TestProbe(t *testing.T) {
	closing := faultproxy.Listen(t, func(c net.Conn) { c.Close() })
	holding := faultproxy.Listen(t, func(c net.Conn) { time.Sleep(time.Second); c.Close() })
	if probe(context.Background(), closing) {
		t.Error("a listener that closes every connection counted as a broker")
	}
	if !probe(context.Background(), holding) {
		t.Error("a listener that holds the connection counted as down")
	}
	if probe(context.Background(), "127.0.0.1:1") {
		t.Error("a refused connection counted as up")
	}
}

func TestBrokerAddr(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://127.0.0.1:1884":     "127.0.0.1:1884",
		"tcp://broker.plant":       "broker.plant:1883",
		"ssl://broker.plant":       "broker.plant:8883",
		"mqtts://[::1]":            "[::1]:8883",
		"wss://broker.plant/mqtt":  "broker.plant:443",
		"ws://broker.plant:8080/m": "broker.plant:8080",
	} {
		if got, err := brokerAddr(in); err != nil || got != want {
			t.Errorf("brokerAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"gopher://x", "tcp://", "::"} {
		if got, err := brokerAddr(bad); err == nil {
			t.Errorf("brokerAddr(%q) = %q, want an error", bad, got)
		}
	}
}

package mqttconn

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/weftiot/weft/internal/faultproxy"
	"github.com/weftiot/weft/internal/testservers"
)

// A connection to a real broker publishes, and reports its loss when the
// broker goes away.
func TestConnectPublishLost(t *testing.T) {
	b := testservers.Mosquitto(t, testservers.WithPasswords(map[string]string{"agent": "secret"}))
	o, lost := Conn{Broker: b.URL, ClientID: "mqttconn-test", Username: "agent", Password: "secret",
		CleanSession: true, KeepAlive: 5 * time.Second, ConnectTimeout: 5 * time.Second}.Options()
	c, err := Connect(context.Background(), o)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c.Disconnect(0)
	if err := Publish(c, "weft/test", 1, false, []byte("x"), 5*time.Second); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if o.AutoReconnect || o.ConnectRetry {
		t.Error("paho's reconnect is on; the caller's loop owns reconnecting")
	}
	b.Kill()
	select {
	case err := <-lost:
		if err == nil {
			t.Error("lost connection reported with a nil error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the loss of the broker was not reported")
	}
}

// A refused connection names the broker and the client id.
func TestConnectErrorNamesBrokerAndClient(t *testing.T) {
	b := testservers.Mosquitto(t, testservers.WithPasswords(map[string]string{"agent": "secret"}))
	o, _ := Conn{Broker: b.URL, ClientID: "who-am-i", Username: "agent", Password: "wrong",
		KeepAlive: 5 * time.Second, ConnectTimeout: 5 * time.Second}.Options()
	_, err := Connect(context.Background(), o)
	if err == nil {
		t.Fatal("connect with a wrong password succeeded")
	}
	for _, want := range []string{b.URL, `"who-am-i"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// Connect gives up when its context ends, even while the attempt hangs.
func TestConnectCancelled(t *testing.T) {
	// A listener that accepts and never answers CONNECT: no real broker
	// can be made to hang like this on purpose.
	addr := faultproxy.Listen(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	o, _ := Conn{Broker: "tcp://" + addr, ClientID: "hang",
		KeepAlive: 5 * time.Second, ConnectTimeout: time.Minute}.Options()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := Connect(ctx, o); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline (ConnectTimeout is a minute)", err)
	}
}

package forward

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/weftiot/weft/internal/faultproxy"
	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
)

// TestStatusPointsOnlineOnly: the online status carries the point
// descriptions of a 10,000-tag box through a real Mosquitto (retained, about
// 0.6 MB) and decodes with wire.DecodeStatus; the will, published by the
// broker when the link is cut, and the goodbye at the end of Run leave them
// out (a will is at most 64 KiB).
func TestStatusPointsOnlineOnly(t *testing.T) {
	broker := testservers.Mosquitto(t)
	// The link to the broker, to be cut without an MQTT DISCONNECT, as a
	// dying 4G link does, so that the broker publishes the will.
	link := faultproxy.Start(t, broker.Addr)
	topics := wire.Topics{Prefix: "weft/v1"}
	data, status := topics.Data("s1", "a1"), topics.Status("s1", "a1")
	rcv := subscribe(t, broker.URL, data, status)

	var pts []wire.DevicePoints
	for d := range 100 {
		dp := wire.DevicePoints{Device: fmt.Sprintf("dyeing-machine-%03d", d), Protocol: "modbus"}
		for p := range 100 {
			dp.Points = append(dp.Points, wire.PointInfo{Name: fmt.Sprintf("zone_%02d_bath_temperature", p), Unit: "°C", Type: "float32"})
		}
		pts = append(pts, dp)
	}
	withPoints := func() wire.Status {
		st := online()
		st.Points = pts
		st.TS = time.Now().UnixMilli()
		return st
	}
	fwd := New(openSpool(t), Options{
		Broker: "tcp://" + link.Addr(), ClientID: "a1", KeepAlive: 2 * time.Second,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond, ConnectTimeout: 5 * time.Second,
		DataTopic: data, StatusTopic: status, Online: withPoints,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- fwd.Run(ctx) }()
	running := true
	defer func() {
		if running {
			cancel()
			<-done
		}
	}()

	last := func(n int) (wire.Status, bool) {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		if len(rcv.status) < n {
			return wire.Status{}, false
		}
		return rcv.status[n-1], true
	}
	waitUntil(t, "the online status", func() bool { _, ok := last(1); return ok })
	st, _ := last(1)
	if st.State != wire.Online || len(st.Points) != 100 || len(st.Points[99].Points) != 100 || st.Points[99].Points[99].Unit != "°C" {
		t.Fatalf("online status: state %q, %d devices of points", st.State, len(st.Points))
	}
	// What the gateway decodes: the receiver's raw copy is gone, so encode
	// the same status again the way the forwarder does.
	raw, err := json.Marshal(withPoints())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("online status with 10,000 points: %d bytes", len(raw))
	var dec wire.Status
	if err := wire.DecodeStatus(raw, &dec); err != nil {
		t.Fatalf("the gateway would refuse the status: %v", err)
	}

	link.Drop()
	waitUntil(t, "the will", func() bool { _, ok := last(2); return ok })
	if st, _ := last(2); st.State != wire.Offline || st.Points != nil || len(st.Devices) != 1 {
		t.Fatalf("will: state %q, points %d, devices %v; want offline, no points, the devices", st.State, len(st.Points), st.Devices)
	}
	waitUntil(t, "online again", func() bool { st, ok := last(3); return ok && st.State == wire.Online && len(st.Points) == 100 })
	cancel()
	running = false
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the goodbye", func() bool { _, ok := last(4); return ok })
	if st, _ := last(4); st.State != wire.Offline || st.Points != nil {
		t.Fatalf("goodbye: state %q, points %d; want offline without points", st.State, len(st.Points))
	}
}

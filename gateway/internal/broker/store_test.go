package broker

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"
)

const prefix = "weft/v1"

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func start(t *testing.T, dir string) *Broker {
	t.Helper()
	b, err := Start(Options{Listen: "127.0.0.1:0", Prefix: prefix, DataDir: dir, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// received collects what a client was sent.
type received struct {
	mu   sync.Mutex
	msgs []paho.Message
}

func (r *received) add(_ paho.Client, m paho.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}
func (r *received) all() []paho.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]paho.Message(nil), r.msgs...)
}

// connectGateway connects as the gateway does: persistent session.
func connectGateway(t *testing.T, b *Broker, r *received, lost chan<- error) paho.Client {
	t.Helper()
	user, pass := b.Credentials()
	o := paho.NewClientOptions().AddBroker(b.URL()).SetClientID("gw").SetUsername(user).SetPassword(pass).
		SetCleanSession(false).SetAutoReconnect(false).SetDefaultPublishHandler(r.add).
		SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("gateway connection: %v", tok.Error())
	}
	return c
}

func publishAs(t *testing.T, b *Broker, agent string) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID(agent).SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("agent %s: connect: %v", agent, tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Publish(statusTopic(agent), 1, false, []byte(agent+" offline")); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("agent %s: publish: %v", agent, tok.Error())
	}
}

func statusTopic(agent string) string { return prefix + "/s/" + agent + "/status" }

// inflight lists the keys of the in-flight messages broker.db keeps.
func inflight(t *testing.T, dir string) []string {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(dir, "broker.db"), 0o600, &bbolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var keys []string
	_ = db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("mochi")).ForEach(func(k, _ []byte) error {
			if strings.HasPrefix(string(k), storage.InflightKey+"_") {
				keys = append(keys, string(k))
			}
			return nil
		})
	})
	sort.Strings(keys)
	return keys
}

// boltHook opens broker.db as mochi's bolt hook does, to write what an
// older broker.db may hold.
func boltHook(t *testing.T, dir string) *bolt.Hook {
	t.Helper()
	h := new(bolt.Hook)
	h.SetOpts(testLog(t), nil)
	if err := h.Init(&bolt.Options{Path: filepath.Join(dir, "broker.db")}); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestInflightSurvivesRestart queues three messages for the gateway's
// session while it is away, restarts the broker on the same broker.db, adds
// a message saved under packet id 0 (what a broker.db written before the
// repair holds after a failed resend), and reconnects the gateway: it gets
// all four, each with its own non-zero packet id, stays connected, and
// nothing is left in flight once it acknowledged them. Without the repair
// the broker loads them all under id 0, keeps one, fails to resend it and
// drops the connection.
func TestInflightSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	b := start(t, dir)
	lost := make(chan error, 10)
	var r received
	gw := connectGateway(t, b, &r, lost)
	if tok := gw.Subscribe(prefix+"/+/+/status", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	gw.Disconnect(100)
	agents := []string{"a1", "a2", "a3"}
	for _, a := range agents {
		publishAs(t, b, a)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if k := inflight(t, dir); len(k) != len(agents) {
		t.Fatalf("broker.db in flight: %v, want %d messages for gw", k, len(agents))
	}

	h := boltHook(t, dir)
	h.OnQosPublish(&mqtt.Client{ID: "gw"}, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   statusTopic("a4"), Payload: []byte("a4 offline"), Origin: "a4", Created: time.Now().Unix(),
	}, time.Now().Unix(), 0)
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}

	b = start(t, dir)
	defer b.Close()
	gw = connectGateway(t, b, &r, lost)
	deadline := time.Now().Add(10 * time.Second)
	for len(r.all()) < 4 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a fifth, or a reset, would come now
	select {
	case err := <-lost:
		t.Fatalf("the broker dropped the gateway's connection: %v", err)
	default:
	}
	var got []string
	ids := map[uint16]bool{}
	for _, m := range r.all() {
		got = append(got, m.Topic())
		if m.MessageID() == 0 || ids[m.MessageID()] {
			t.Errorf("message on %s has packet id %d (ids so far %v)", m.Topic(), m.MessageID(), ids)
		}
		ids[m.MessageID()] = true
	}
	sort.Strings(got)
	want := fmt.Sprint([]string{statusTopic("a1"), statusTopic("a2"), statusTopic("a3"), statusTopic("a4")})
	if fmt.Sprint(got) != want {
		t.Errorf("gateway got %v, want %v", got, want)
	}
	gw.Disconnect(100)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if k := inflight(t, dir); len(k) != 0 {
		t.Errorf("broker.db still holds %v in flight after the gateway acknowledged everything", k)
	}
}

// TestRepairDropsTwin: a message saved both under its packet id and under 0
// (mochi saved it again when it failed to resend it) is loaded once, and the
// copy under 0 is deleted from broker.db.
func TestRepairDropsTwin(t *testing.T) {
	dir := t.TempDir()
	h := boltHook(t, dir)
	cl := &mqtt.Client{ID: "gw"}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName: statusTopic("a1"), Payload: []byte("a1 offline"), Origin: "a1", Created: 1700000000, PacketID: 7}
	h.OnQosPublish(cl, pk, 1700000000, 0)
	pk.PacketID = 0
	h.OnQosPublish(cl, pk, 1700000001, 0)
	s := &store{Hook: h, log: testLog(t)}
	v, err := s.StoredInflightMessages()
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 1 || v[0].PacketID != 7 || v[0].TopicName != statusTopic("a1") {
		t.Errorf("loaded %+v, want the message once with packet id 7", v)
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	if k := inflight(t, dir); fmt.Sprint(k) != "[IFM_gw:7]" {
		t.Errorf("broker.db in flight: %v, want [IFM_gw:7]", k)
	}
}

func TestPacketIDFromKey(t *testing.T) {
	for _, c := range []struct {
		key, client string
		want        uint16
	}{
		{"IFM_gw:12", "gw", 12},
		{"IFM_a:b:65535", "a:b", 65535},
		{"IFM_gw:0", "gw", 0},
		{"IFM_gw:65536", "gw", 0},
		{"IFM_gw:x", "gw", 0},
		{"IFM_other:3", "gw", 0},
		{"RET_gw:3", "gw", 0},
	} {
		if got := packetIDFromKey(c.key, c.client); got != c.want {
			t.Errorf("packetIDFromKey(%q, %q) = %d, want %d", c.key, c.client, got, c.want)
		}
	}
}

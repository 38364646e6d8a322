// Package broker runs the embedded MQTT broker (mochi-mqtt) for
// `mqtt.broker: embedded`: one process for a small plant or the demo, with
// the same topic rules as the production broker's ACL.
//
// The rule (docs/gateway.md, "Embedded broker"): a client's MQTT client id is
// its agent id. An agent may publish only on
// {prefix}/{any site}/{its client id}/data|status|health|reply/{id}, its will
// must be its own status topic, and it may subscribe only to
// {prefix}/{site or +}/{its client id}/cmd/{name or +}. The gateway's own
// connection authenticates with a secret made at start-up and may do
// anything. Agents are not authenticated by password in the embedded broker;
// use Mosquitto with passwords and its ACL where that matters.
package broker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"

	"github.com/weftiot/weft/wire"
)

// GatewayUser is the user name of the gateway's own connection.
const GatewayUser = "weft-gateway-internal"

// MaxInflight bounds the QoS 1 messages the broker sends a client before
// the client acknowledges them; the gateway holds its acks until the data is
// stored, so this is how much data is in its memory at most.
const MaxInflight = 1000

// Options configure the embedded broker.
type Options struct {
	Listen string // host:port; port 0 picks a free one
	Prefix string // topic prefix
	// DataDir holds broker.db: sessions, retained messages and messages not
	// yet acknowledged survive a restart. "" keeps them in memory only.
	DataDir string
	Log     *slog.Logger
}

// Broker is a running embedded broker.
type Broker struct {
	srv    *mqtt.Server
	addr   string
	secret string
	acl    *aclHook

	closeOnce sync.Once
	closeErr  error
}

// Start starts the broker and returns when it listens.
func Start(o Options) (*Broker, error) {
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("embedded broker: make the gateway's secret: %w", err)
	}
	log := o.Log.With("component", "broker")
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumInflight = MaxInflight
	caps.ReceiveMaximum = MaxInflight
	// mochi logs every refused packet in full at warn level; the ACL hook
	// logs refusals itself, so mochi's own log keeps errors only.
	mlog := slog.New(quietHandler{log.Handler()})
	srv := mqtt.New(&mqtt.Options{InlineClient: false, Logger: mlog, Capabilities: caps})
	b := &Broker{srv: srv, secret: hex.EncodeToString(secret)}
	b.acl = &aclHook{prefix: o.Prefix, secret: b.secret, log: log}
	if err := srv.AddHook(b.acl, nil); err != nil {
		return nil, fmt.Errorf("embedded broker: add the ACL hook: %w", err)
	}
	if o.DataDir != "" {
		path := filepath.Join(o.DataDir, "broker.db")
		// store, not bolt.Hook itself: see store.go for what it repairs.
		if err := srv.AddHook(&store{Hook: new(bolt.Hook), log: log}, &bolt.Options{Path: path,
			Options: &bbolt.Options{Timeout: 2e9}}); err != nil {
			return nil, fmt.Errorf("embedded broker: open %s: %w", path, err)
		}
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: o.Listen})
	if err := srv.AddListener(tcp); err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("embedded broker: listen on %s: %w", o.Listen, err)
	}
	b.addr = tcp.Address()
	if err := srv.Serve(); err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("embedded broker: serve on %s: %w", b.addr, err)
	}
	log.Info("embedded MQTT broker listening", "address", b.addr)
	return b, nil
}

// URL is the broker's address for an MQTT client: tcp://host:port.
func (b *Broker) URL() string { return "tcp://" + b.addr }

// Credentials are the user name and password of the gateway's connection.
func (b *Broker) Credentials() (user, password string) { return GatewayUser, b.secret }

// Denied counts publications and subscriptions the ACL refused.
func (b *Broker) Denied() uint64 { return b.acl.denied.Load() }

// Close stops the broker; a second Close does nothing (mochi's panics).
func (b *Broker) Close() error {
	b.closeOnce.Do(func() { b.closeErr = b.srv.Close() })
	return b.closeErr
}

// quietHandler passes mochi's errors only, without the one its bolt hook
// logs on every first start (no stored $SYS info yet).
type quietHandler struct{ slog.Handler }

func (h quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError && h.Handler.Enabled(ctx, l)
}

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "failed to get data" {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(a)}
}
func (h quietHandler) WithGroup(n string) slog.Handler { return quietHandler{h.Handler.WithGroup(n)} }

// aclHook is the topic rule.
type aclHook struct {
	mqtt.HookBase
	prefix string
	secret string
	log    *slog.Logger
	denied atomic.Uint64
}

func (h *aclHook) ID() string { return "weft-acl" }

func (h *aclHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnWill}, []byte{b})
}

func (h *aclHook) isGateway(cl *mqtt.Client) bool {
	return string(cl.Properties.Username) == GatewayUser
}

// OnConnectAuthenticate lets the gateway in with its secret, and an agent in
// when its client id can stand as a topic level.
func (h *aclHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if string(pk.Connect.Username) == GatewayUser {
		ok := string(pk.Connect.Password) == h.secret
		if !ok {
			h.denied.Add(1)
			h.log.Warn("refused a connection using the gateway's user name with a wrong password", "client_id", cl.ID, "remote", cl.Net.Remote)
		}
		return ok
	}
	if err := wire.CheckLevel(cl.ID); err != nil {
		h.denied.Add(1)
		h.log.Warn("refused a connection: the client id must be the agent id", "client_id", cl.ID, "error", err)
		return false
	}
	return true
}

// OnACLCheck applies the rule to a publication (write) or a subscription
// filter or delivered topic (read).
func (h *aclHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if h.isGateway(cl) {
		return true
	}
	ok := false
	if write {
		ok = h.mayPublish(cl.ID, topic)
	} else {
		ok = h.mayRead(cl.ID, topic)
	}
	if !ok {
		h.denied.Add(1)
		h.log.Warn("ACL refused", "client_id", cl.ID, "topic", topic, "publish", write)
	}
	return ok
}

func (h *aclHook) mayPublish(id, topic string) bool {
	_, agent, kind, _, err := wire.ParseTopic(h.prefix, topic)
	if err != nil || agent != id {
		return false
	}
	switch kind {
	case wire.KindData, wire.KindStatus, wire.KindHealth, wire.KindReply:
		return true
	}
	return false
}

func (h *aclHook) mayRead(id, filter string) bool {
	tail := filter
	if h.prefix != "" {
		var ok bool
		if tail, ok = strings.CutPrefix(filter, h.prefix+"/"); !ok {
			return false
		}
	}
	l := strings.Split(tail, "/")
	return len(l) == 4 && l[0] != "#" && l[1] == id && l[2] == wire.KindCmd && l[3] != ""
}

// OnWill defuses a will that is not the client's own status topic: mochi
// sends a will whatever a hook answers, so the will is redirected to a $
// topic no wildcard subscription matches, and not retained.
func (h *aclHook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if h.isGateway(cl) || h.mayPublish(cl.ID, will.TopicName) {
		return will, nil
	}
	h.denied.Add(1)
	h.log.Warn("ACL refused a will", "client_id", cl.ID, "topic", will.TopicName)
	will.TopicName = "$weft/denied-will/" + cl.ID
	will.Retain = false
	return will, nil
}

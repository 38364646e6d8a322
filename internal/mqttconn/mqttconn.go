// Package mqttconn makes the paho client of one MQTT connection the way
// Weft's long-lived clients need it (the agent's native forwarder and its
// Sparkplug edge node, the gateway's Sparkplug host). Each of them owns its
// reconnect loop and builds a fresh client per connection, so paho's own
// reconnect and connect retry are off, and a lost connection is reported on
// a channel for the loop to act on.
package mqttconn

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Conn describes one connection.
type Conn struct {
	Broker   string // tcp://, ssl://, tls://, mqtts://, ws://, wss://
	ClientID string
	Username string // "": no credentials
	Password string
	TLS      *tls.Config // nil: no TLS unless the scheme asks for it
	// CleanSession: the broker forgets the session when the client goes.
	CleanSession bool
	// KeepAlive is the longest a dead link may go unnoticed (see
	// SetKeepAlive for how it is split between paho's ping interval and
	// ping timeout).
	KeepAlive time.Duration
	// ConnectTimeout bounds the connection attempt.
	ConnectTimeout time.Duration
}

// Options returns the paho options of one connection attempt, and the
// channel that receives the error when the connection is lost (once). The
// caller adds what is its own (will, handlers, write timeout, ordering).
func (c Conn) Options() (*mqtt.ClientOptions, <-chan error) {
	lost := make(chan error, 1)
	o := mqtt.NewClientOptions().
		AddBroker(c.Broker).
		SetClientID(c.ClientID).
		SetCleanSession(c.CleanSession).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(c.ConnectTimeout).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	SetKeepAlive(o, c.KeepAlive)
	if c.Username != "" {
		o.SetUsername(c.Username)
		o.SetPassword(c.Password)
	}
	if c.TLS != nil {
		o.SetTLSConfig(c.TLS)
	}
	return o, lost
}

// Connect makes a client of o and connects it once. When ctx ends first it
// returns ctx's error, and the client is disconnected once its attempt
// finishes. The error of a failed attempt names the broker and client id.
func Connect(ctx context.Context, o *mqtt.ClientOptions) (mqtt.Client, error) {
	c := mqtt.NewClient(o)
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		go func() { <-tok.Done(); c.Disconnect(0) }()
		return nil, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		broker := ""
		if len(o.Servers) > 0 {
			broker = o.Servers[0].String()
		}
		return nil, fmt.Errorf("connect %s as %q: %w", broker, o.ClientID, err)
	}
	return c, nil
}

// Wait waits up to d for t to complete and returns its error, or an error
// saying it was not acknowledged in time.
func Wait(t mqtt.Token, d time.Duration) error {
	if !t.WaitTimeout(d) {
		return fmt.Errorf("no acknowledgement within %v", d)
	}
	return t.Error()
}

// Publish publishes on c and waits up to wait for the broker's
// acknowledgement (QoS 1) or the write (QoS 0).
func Publish(c mqtt.Client, topic string, qos byte, retained bool, payload []byte, wait time.Duration) error {
	if err := Wait(c.Publish(topic, qos, retained, payload), wait); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

package mqttconn

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/weftiot/weft/internal/backoff"
)

// How WaitForBroker probes a broker.
const (
	probeEvery   = time.Second            // mean period, jittered ±50%
	probeTimeout = 2 * time.Second        // one TCP connect
	probeHold    = 250 * time.Millisecond // a listener with nothing behind it closes within this
)

// WaitForBroker waits d before the next connection attempt to broker, and
// returns early when the broker comes back: it probes the broker's TCP port
// at once and, if that fails, about every second, and the first probe that
// succeeds ends the wait. So after an outage a client
// connects within about a second of the broker's return, while a client
// whose broker is reachable but refuses it (credentials, a full broker)
// still waits its whole backoff. It reports whether the wait ended by time
// or probe (false: ctx ended).
//
// A probe is a TCP connect that the other side must hold open for 250 ms,
// as a broker waiting for CONNECT does; a proxy or load balancer with no
// broker behind it that accepts and then resets or closes counts as down.
// Probes cost the broker one accepted and closed connection per return.
func WaitForBroker(ctx context.Context, broker string, d time.Duration) bool {
	addr, err := brokerAddr(broker)
	if err != nil || d <= 0 {
		return backoff.Sleep(ctx, d) // the connection attempt reports a bad URL
	}
	deadline := time.Now().Add(d)
	// The first probe right away: a broker reachable now failed the
	// attempt past TCP (or came back within a millisecond), so the
	// backoff is what this wait is for.
	if probe(ctx, addr) {
		return backoff.Sleep(ctx, time.Until(deadline))
	}
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return ctx.Err() == nil
		}
		next := probeEvery/2 + rand.N(probeEvery)
		if next >= left {
			return backoff.Sleep(ctx, left)
		}
		if !backoff.Sleep(ctx, next) {
			return false
		}
		if probe(ctx, addr) {
			return true // down at the start, up now
		}
	}
}

// probe reports whether addr accepts a TCP connection and holds it for
// probeHold.
func probe(ctx context.Context, addr string) bool {
	dctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var dialer net.Dialer
	c, err := dialer.DialContext(dctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	if err := c.SetReadDeadline(time.Now().Add(probeHold)); err != nil {
		return false
	}
	var b [1]byte
	_, err = c.Read(b[:])
	// Held open and silent until the deadline: a server waiting for its
	// client. Closed, reset, or (not a broker) talking first: down.
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// brokerAddr is the host:port of a broker URL, with the scheme's default
// port when it names none.
func brokerAddr(broker string) (string, error) {
	u, err := url.Parse(broker)
	if err != nil {
		return "", err
	}
	if u.Port() != "" {
		return u.Host, nil
	}
	if u.Hostname() == "" {
		return "", errors.New("no host")
	}
	port := map[string]string{"tcp": "1883", "mqtt": "1883", "ssl": "8883", "tls": "8883", "mqtts": "8883",
		"tcps": "8883", "ws": "80", "wss": "443"}[strings.ToLower(u.Scheme)]
	if port == "" {
		return "", errors.New("unknown scheme " + u.Scheme)
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

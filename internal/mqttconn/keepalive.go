package mqttconn

import (
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// How paho v1.5.1 keeps a connection alive (ping.go): every check interval
// — a quarter of its keepalive, or 5s when the keepalive is above 10s — it
// sends a PINGREQ if nothing was sent or nothing received for a keepalive,
// and at a later check it drops the connection if the PINGRESP has not come
// within the ping timeout. The keepalive is whole seconds, and it is also
// what the CONNECT packet asks of the broker, which drops a client silent
// for 1.5 keepalives.
//
// Given as is, a keepalive k is noticed dead only after k of silence, up to
// one check more before the ping goes out, and the ping timeout rounded up
// to a check: about 2k with a ping timeout of k. SetKeepAlive splits k
// instead so that the worst case is within k.

// pahoKeepAlive returns the keepalive (whole seconds, at least 1) and ping
// timeout to give paho so that a link silent since some moment is declared
// dead at most k after it (Detection(k) after it: k, or 1.5s for a k under
// that, paho's keepalive being at least 1s).
// It takes the longest keepalive of at most k/2 (the fewest pings) that
// leaves a ping timeout of at least half the keepalive (tolerance for a slow
// answer); k = 30s gives a ping after 15s of silence and 7.5s for its answer.
func pahoKeepAlive(k time.Duration) (keepAlive, pingTimeout time.Duration) {
	for s := int64(k/time.Second) / 2; s > 1; s-- {
		ka := time.Duration(s) * time.Second
		if pt := pingTimeoutFor(k, ka); pt >= ka/2 {
			return ka, pt
		}
	}
	return time.Second, pingTimeoutFor(k, time.Second)
}

// pingTimeoutFor is the ping timeout that, with paho keepalive ka, declares
// a link silent since some moment dead at most k after it (or, when k is too
// short for that, one check after the ping).
func pingTimeoutFor(k, ka time.Duration) time.Duration {
	// The ping goes out at the first check at least ka after the last
	// packet received: within ka+ci. The loss is declared at the m-th check
	// after the ping; the ping timeout sits half a check before that check,
	// so that a tick a little late or early still decides on that check.
	ci := checkInterval(ka)
	m := max((k-ka-ci)/ci, 1)
	return time.Duration(m)*ci - ci/2
}

// checkInterval is how often paho's keepalive routine looks at the link.
func checkInterval(keepAlive time.Duration) time.Duration {
	if keepAlive > 10*time.Second {
		return 5 * time.Second
	}
	return keepAlive / 4
}

// Detection is the longest a dead link goes unnoticed with keepalive k:
// max(k, 1.5s) (paho's keepalive is at least 1s).
func Detection(k time.Duration) time.Duration {
	ka, pt := pahoKeepAlive(k)
	ci := checkInterval(ka)
	return ka + ci + pt + ci/2
}

// SetKeepAlive sets o's keepalive and ping timeout so that a dead link is
// noticed within k (Detection(k)): paho pings after at most k/2 of silence,
// and the broker is asked for that shorter keepalive too, so it also drops
// a dead client sooner (after 1.5 × the keepalive paho sends).
func SetKeepAlive(o *mqtt.ClientOptions, k time.Duration) *mqtt.ClientOptions {
	ka, pt := pahoKeepAlive(k)
	return o.SetKeepAlive(ka).SetPingTimeout(pt)
}

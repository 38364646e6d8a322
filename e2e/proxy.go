package e2e

import "github.com/weftiot/weft/internal/faultproxy"

// The fault proxy lives in internal/faultproxy, shared with the unit
// tests; these names keep the harness and the scenarios reading as before.

// Proxy is a TCP proxy on 127.0.0.1 that can cut, slow down, blackhole and
// freeze the link to one target.
type Proxy = faultproxy.Proxy

// Mode is what a Proxy does to the traffic it carries.
type Mode = faultproxy.Mode

// Observer sees the bytes of one proxied connection in order.
type Observer = faultproxy.Observer

// Holder is an Observer that may hold a chunk back.
type Holder = faultproxy.Holder

// Ender is an Observer told how each direction of its connection ended.
type Ender = faultproxy.Ender

// The modes of a Proxy.
const (
	Pass      = faultproxy.Pass
	Cut       = faultproxy.Cut
	Slow      = faultproxy.Slow
	Blackhole = faultproxy.Blackhole
	Freeze    = faultproxy.Freeze
)

// NewProxy listens on a free 127.0.0.1 port and forwards to target
// (host:port) in Pass mode. observe may be nil.
var NewProxy = faultproxy.New

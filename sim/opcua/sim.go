// Package opcua is the OPC UA side of weft-sim: a dyeing machine, a loom and a
// winder served through gopcua's server package, with values that change over
// time, a Types folder holding one variable per supported data type, and an
// optional security-enabled endpoint with username login.
//
// Tests use Start, Stop and Restart (same port, same certificate) to prove that
// a client recovers from a server restart, and StallPublishing to prove that
// it notices a server that stops publishing; weft-sim uses Serve.
//
// gopcua's server listens on a private loopback port behind the simulator's
// own socket (see front), which closes client connections on Stop as a
// rebooting PLC does. Monitored items are notified by this package (see
// notify), not by gopcua's ChangeNotification, which can block the server
// for good when busy subscriptions end.
//
// What gopcua's server (v0.8.0) cannot do, and this simulator therefore does
// not pretend to: secure channels (Sign, SignAndEncrypt: the server never
// decrypts the client's OpenSecureChannel request, gopcua issue 815, fixed
// after v0.8.0; the endpoints are advertised and a client times out on
// them); monitored-item filters (deadband, data-change trigger) and
// queue sizes are accepted and ignored (every change is published);
// TranslateBrowsePathsToNodeIDs, BrowseNext, TransferSubscriptions and
// Republish answer BadServiceUnsupported; sessions never time out; every
// answer goes out as one chunk, so one above the client's receive buffer
// (64 KiB for gopcua's client: a Read of about 2,500 nodes) drops the
// connection; subscription ids are reused (len+1). Username
// and certificate logins are checked by this package (gopcua accepts any
// identity), but the client's session signature is not verified.
package opcua

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/ua"
)

// Options configure the simulated server.
type Options struct {
	Addr    string // host:port to listen on; port 0 picks a free port
	Profile string // dyeing, loom, winder, or "" / "all" for every machine
	Logger  *slog.Logger

	// Secure adds Basic256Sha256, Aes128_Sha256_RsaOaep and
	// Aes256_Sha256_RsaPss endpoints (Sign and SignAndEncrypt) beside None.
	// They are advertised, but gopcua v0.8.0's server cannot open a secure
	// channel on them (see offerEncryptedPasswordOnNone).
	Secure bool
	// Users are the accepted username logins (name → password). When set,
	// username login is offered on the secure endpoints and, with the
	// password encrypted by Basic256Sha256, on the None endpoint.
	Users map[string]string
	// UserCerts are the accepted X.509 user certificates (DER). When set,
	// certificate login is offered on the secure endpoints.
	UserCerts [][]byte
	// NoAnonymous refuses anonymous logins.
	NoAnonymous bool

	// Certificate (DER) and Key are the server's own; generated when nil.
	Certificate []byte
	Key         *rsa.PrivateKey

	// UpdateInterval is how often values change (default 500ms).
	UpdateInterval time.Duration
	// Bulk adds a Bulk folder with this many Double variables that all change
	// on every update (for load tests and benchmarks).
	Bulk int
	// MaxNodesPerRead is advertised in ServerCapabilities and enforced: a
	// longer Read gets BadTooManyOperations. 0 means no limit.
	MaxNodesPerRead uint32
}

// Serve runs the server until ctx ends.
func Serve(ctx context.Context, opts Options) error {
	s, err := Start(opts)
	if err != nil {
		return err
	}
	if opts.Logger != nil {
		opts.Logger.Info("opcua simulator listening", "endpoint", s.Endpoint(), "profile", opts.Profile, "secure", opts.Secure)
	}
	<-ctx.Done()
	s.Stop()
	return nil
}

// Server is a running simulator. Its methods are safe for concurrent use.
type Server struct {
	opts   Options
	log    *slog.Logger
	host   string
	port   int
	cert   []byte
	key    *rsa.PrivateKey
	model  *model
	start  time.Time
	mu     sync.Mutex
	srv    *server.Server
	cancel context.CancelFunc
	done   chan struct{}
	front  *front
	// stalled makes the server swallow Publish requests (StallPublishing).
	stalled atomic.Bool
	// cut makes the front drop every byte (CutNetwork).
	cut atomic.Bool
}

// Start builds the address space and starts listening.
func Start(opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:4840"
	}
	if opts.UpdateInterval <= 0 {
		opts.UpdateInterval = 500 * time.Millisecond
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host, portStr, err := net.SplitHostPort(opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("opcua simulator: address %q: %w", opts.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("opcua simulator: address %q: port %q is not a number", opts.Addr, portStr)
	}
	if port == 0 {
		// Ask the kernel for a free port; Restart keeps it.
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("opcua simulator: pick a free port on %s: %w", host, err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	m, err := newModel(opts.Profile, opts.Bulk)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, log: log, host: host, port: port, cert: opts.Certificate, key: opts.Key, model: m, start: time.Now()}
	if s.cert == nil || s.key == nil {
		s.cert, s.key, err = selfSigned(host)
		if err != nil {
			return nil, fmt.Errorf("opcua simulator: certificate: %w", err)
		}
	}
	if err := s.listen(); err != nil {
		return nil, err
	}
	return s, nil
}

// Endpoint is the server's URL, opc.tcp://host:port.
func (s *Server) Endpoint() string {
	return fmt.Sprintf("opc.tcp://%s", net.JoinHostPort(s.host, strconv.Itoa(s.port)))
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.host, strconv.Itoa(s.port)) }

// Certificate is the server's certificate (DER): a client trusts this.
func (s *Server) Certificate() []byte { return s.cert }

// Stop closes every connection and stops listening. Stop on a stopped server
// does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

// Restart stops the server and starts it again on the same port with the same
// certificate and a fresh address space state (sessions and subscriptions are
// gone, as after a PLC reboot).
func (s *Server) Restart() error {
	s.mu.Lock()
	s.stopLocked()
	s.mu.Unlock()
	return s.listen()
}

// Set changes a variable's value (tests use it to drive a change), by its
// NodeId string such as "ns=1;s=Loom1.Speed".
func (s *Server) Set(node string, v any) error {
	nid, err := ua.ParseNodeID(node)
	if err != nil {
		return err
	}
	if !s.model.set(nid.String(), v, time.Now()) {
		return fmt.Errorf("opcua simulator: no variable %s", node)
	}
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv != nil {
		s.model.dropped.Add(uint64(notify(srv, []*ua.NodeID{nid})))
	}
	return nil
}

// Dropped counts the data changes not handed to a subscription because it
// did not take them within 200 ms (it had ended, or was too busy): a
// client then misses those values until they change again.
func (s *Server) Dropped() uint64 { return s.model.dropped.Load() }

// StallPublishing makes the server stop answering Publish requests (true)
// or answer them again (false), while connections, sessions, reads and
// subscriptions stay up: no data changes and no keep-alives reach a client,
// as from a server whose publishing engine hangs. Requests swallowed while
// stalled are never answered.
func (s *Server) StallPublishing(stall bool) { s.stalled.Store(stall) }

// CutNetwork drops every byte between clients and the server (true) while
// the TCP connections stay open, new ones included, or forwards them again
// (false): a network cut neither side is told of, as when a switch or a 4G
// link dies. Bytes dropped during the cut are gone, so a connection that
// lived through it is usually broken afterwards; new ones work.
func (s *Server) CutNetwork(cut bool) { s.cut.Store(cut) }

func (s *Server) stopLocked() {
	if s.srv == nil {
		return
	}
	// Close first: gopcua's connection goroutines hand their last messages
	// to the dispatcher that ctx keeps running.
	s.front.close()
	s.srv.Close()
	s.cancel()
	<-s.done
	// gopcua leaves a subscription's goroutine running until its lifetime
	// runs out; end them now, as a rebooted PLC would.
	if subs := s.srv.SubscriptionService; subs != nil {
		subs.Mu.Lock()
		ids := make([]uint32, 0, len(subs.Subs))
		for id := range subs.Subs {
			ids = append(ids, id)
		}
		subs.Mu.Unlock()
		for _, id := range ids {
			subs.DeleteSubscription(id)
		}
	}
	s.srv, s.front = nil, nil
}

func (s *Server) listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("opcua simulator: already running")
	}
	// gopcua listens on a private loopback port behind the front (see
	// front); it needs that port before it listens.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("opcua simulator: pick a private port: %w", err)
	}
	private := l.Addr().(*net.TCPAddr).Port
	l.Close()
	opts := []server.Option{
		server.EndPoint("127.0.0.1", private),
		server.Certificate(s.cert),
		server.PrivateKey(s.key),
		server.ServerName("Weft OPC UA simulator"),
		server.ManufacturerName("Weft"),
		server.ProductName("weft-sim"),
		server.SetLogger(gopcuaLogger{s.log}),
		server.EnableSecurity("None", ua.MessageSecurityModeNone),
		server.EnableAuthMode(ua.UserTokenTypeAnonymous),
	}
	if s.opts.Secure {
		for _, p := range []string{"Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"} {
			opts = append(opts,
				server.EnableSecurity(p, ua.MessageSecurityModeSign),
				server.EnableSecurity(p, ua.MessageSecurityModeSignAndEncrypt))
		}
	}
	if len(s.opts.Users) > 0 {
		opts = append(opts, server.EnableAuthMode(ua.UserTokenTypeUserName))
	}
	if len(s.opts.UserCerts) > 0 {
		opts = append(opts, server.EnableAuthMode(ua.UserTokenTypeCertificate))
	}
	srv := server.New(opts...)
	// Handlers registered before Start take the place of gopcua's own.
	a := &auth{srv: srv, key: s.key, opts: s.opts, log: s.log}
	srv.RegisterHandler(id.ActivateSessionRequest_Encoding_DefaultBinary, a.activateSession)
	srv.RegisterHandler(id.ReadRequest_Encoding_DefaultBinary, a.read)
	p := &publisher{srv: srv, stalled: &s.stalled}
	srv.RegisterHandler(id.PublishRequest_Encoding_DefaultBinary, p.publish)

	if err := s.model.install(srv, s.opts.MaxNodesPerRead); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Start(ctx); err != nil {
		cancel()
		return fmt.Errorf("opcua simulator: listen on %s: %w", s.Addr(), err)
	}
	// Clients are told the front's address, not gopcua's own.
	for _, ep := range srv.Endpoints() {
		ep.EndpointURL = s.Endpoint()
	}
	if len(s.opts.Users) > 0 {
		offerEncryptedPasswordOnNone(srv)
	}
	f, err := listenFront(s.Addr(), net.JoinHostPort("127.0.0.1", strconv.Itoa(private)), &s.cut, s.log)
	if err != nil {
		srv.Close()
		cancel()
		return fmt.Errorf("opcua simulator: listen on %s: %w", s.Addr(), err)
	}
	s.front = f
	s.srv, s.cancel, s.done = srv, cancel, make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		s.model.run(ctx, srv, s.opts.UpdateInterval, s.start)
	}(s.done)
	return nil
}

// offerEncryptedPasswordOnNone adds a username login to the None endpoint
// whose password is encrypted with the server's key (token security policy
// Basic256Sha256), as many PLCs offer. gopcua offers username logins only on
// secure endpoints, and its secure endpoints do not work in v0.8.0 (the
// server never decrypts the client's OpenSecureChannel request: gopcua issue
// 815, fixed on its main branch after v0.8.0), so this is the one way to
// test username login against it. Endpoints returns the server's own
// descriptions, so the change is seen by GetEndpoints.
func offerEncryptedPasswordOnNone(srv *server.Server) {
	for _, ep := range srv.Endpoints() {
		if ep.SecurityMode == ua.MessageSecurityModeNone {
			ep.UserIdentityTokens = append(ep.UserIdentityTokens, &ua.UserTokenPolicy{
				PolicyID:          "username_basic256sha256",
				TokenType:         ua.UserTokenTypeUserName,
				SecurityPolicyURI: ua.SecurityPolicyURIBasic256Sha256,
			})
		}
	}
}

// gopcuaLogger adapts slog to gopcua's printf-style server logger.
type gopcuaLogger struct{ l *slog.Logger }

func (g gopcuaLogger) Debug(msg string, args ...any) { g.l.Debug(fmt.Sprintf(msg, args...)) }
func (g gopcuaLogger) Info(msg string, args ...any)  { g.l.Debug(fmt.Sprintf(msg, args...)) }
func (g gopcuaLogger) Warn(msg string, args ...any)  { g.l.Info(fmt.Sprintf(msg, args...)) }
func (g gopcuaLogger) Error(msg string, args ...any) { g.l.Warn(fmt.Sprintf(msg, args...)) }

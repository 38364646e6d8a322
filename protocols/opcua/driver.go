// Package opcua is Weft's OPC UA driver: points by NodeId or browse path,
// read by batched polling (mode: poll) or pushed by monitored items
// (mode: subscribe), over any of the security policies None,
// Basic256Sha256, Aes128_Sha256_RsaOaep and Aes256_Sha256_RsaPss, with
// anonymous, username or certificate login.
//
// The driver never reconnects by itself: when the server goes away, Poll or
// Subscribe return an error wrapping protocols.ErrNotConnected, the agent
// calls Connect again with backoff, and Connect builds everything anew
// (secure channel, session, browse paths), then Subscribe recreates the
// subscription. Stats reports the reconnects and the last gap.
package opcua

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"github.com/weftiot/weft/protocols"
	"github.com/weftiot/weft/wire"
)

// Defaults for keys left empty.
const (
	defaultTimeout  = 5 * time.Second
	defaultInterval = time.Second
	defaultQueue    = 10
	// monitoredPerCall bounds one CreateMonitoredItems request.
	monitoredPerCall = 1000
)

// Point is one configured point of an OPC UA device.
type Point struct {
	Name string
	PointConfig
	// Deadband and DeadbandPercent (the point's common keys), when set, are
	// asked of the server as the monitored item's DataChangeFilter:
	// absolute, or percent of the variable's EURange.
	Deadband        *float64
	DeadbandPercent *float64
}

// Stats are the driver's health figures.
type Stats struct {
	Connected bool
	// Connects counts successful Connect calls; Reconnects those that ended
	// a loss (the first connect is not a reconnect).
	Connects   uint64
	Reconnects uint64
	// LastLost is when the last loss was seen (Poll or Subscribe failed, or
	// Connect was called on a live connection); LastGap is how long it took
	// until Connect succeeded again.
	LastLost time.Time
	LastGap  time.Duration
	// LastError is the last error Connect, Poll or Subscribe returned.
	LastError string
	// Reads counts Read requests; Notifications data changes received;
	// Samples every sample emitted.
	Reads         uint64
	Notifications uint64
	Samples       uint64
	// Unresolved is how many points had no node at the last Connect (a
	// browse path not found); they are emitted as Bad.
	Unresolved int
}

// Driver is one OPC UA server. It implements protocols.Driver,
// protocols.Subscriber and protocols.Counter. Poll and Subscribe may run at
// the same time; Connect and Close are not called concurrently with them.
type Driver struct {
	device  string
	cfg     DeviceConfig
	points  []Point
	dataDir string
	log     *slog.Logger

	timeout   time.Duration
	policy    string // full URI
	mode      ua.MessageSecurityMode
	tokenType ua.UserTokenType
	parsed    []*ua.NodeID    // per point; nil for a browse path
	paths     [][]PathElement // per point; nil for a NodeId
	triggers  []ua.DataChangeTrigger
	polled    []int // indexes of mode: poll points
	subbed    []int // indexes of mode: subscribe points

	requests atomic.Uint64

	mu      sync.Mutex
	client  *opcua.Client
	nodes   []*ua.NodeID // resolved, per point
	nodeErr []error      // why a point has no node
	maxRead int          // 0: no limit known
	stats   Stats
	lostAt  time.Time
	kinds   errorKinds // failures by kind (kinds.go)
}

var policies = map[string]string{
	"None":                  ua.SecurityPolicyURINone,
	"Basic256Sha256":        ua.SecurityPolicyURIBasic256Sha256,
	"Aes128_Sha256_RsaOaep": ua.SecurityPolicyURIAes128Sha256RsaOaep,
	"Aes256_Sha256_RsaPss":  ua.SecurityPolicyURIAes256Sha256RsaPss,
}

var modes = map[string]ua.MessageSecurityMode{
	"None":           ua.MessageSecurityModeNone,
	"Sign":           ua.MessageSecurityModeSign,
	"SignAndEncrypt": ua.MessageSecurityModeSignAndEncrypt,
}

var triggers = map[string]ua.DataChangeTrigger{
	"status":                 ua.DataChangeTriggerStatus,
	"status_value":           ua.DataChangeTriggerStatusValue,
	"status_value_timestamp": ua.DataChangeTriggerStatusValueTimestamp,
}

// New makes the driver of one device. It checks the section and the points
// (it does not dial). dataDir holds the agent's certificate (pki/own) and
// trust list (pki/trusted, pki/rejected).
func New(device string, cfg DeviceConfig, points []Point, dataDir string, logger *slog.Logger) (*Driver, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &Driver{device: device, cfg: cfg, points: points, dataDir: dataDir,
		log: logger.With("device", device, "protocol", "opcua")}
	fail := func(format string, args ...any) (*Driver, error) {
		return nil, fmt.Errorf("device %q: opcua: "+format, append([]any{device}, args...)...)
	}
	if !strings.HasPrefix(cfg.Endpoint, "opc.tcp://") {
		return fail("endpoint %q is not opc.tcp://host:port", cfg.Endpoint)
	}
	d.timeout = cfg.Timeout
	if d.timeout <= 0 {
		d.timeout = defaultTimeout
	}
	var ok bool
	if d.policy, ok = policies[or(cfg.SecurityPolicy, "None")]; !ok {
		return fail("security_policy %q is not one of None, Basic256Sha256, Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss", cfg.SecurityPolicy)
	}
	if d.mode, ok = modes[or(cfg.SecurityMode, "None")]; !ok {
		return fail("security_mode %q is not one of None, Sign, SignAndEncrypt", cfg.SecurityMode)
	}
	if (d.policy == ua.SecurityPolicyURINone) != (d.mode == ua.MessageSecurityModeNone) {
		return fail("security_policy %s with security_mode %s: both are None, or neither is", or(cfg.SecurityPolicy, "None"), or(cfg.SecurityMode, "None"))
	}
	switch or(cfg.Auth, "anonymous") {
	case "anonymous":
		d.tokenType = ua.UserTokenTypeAnonymous
	case "username":
		d.tokenType = ua.UserTokenTypeUserName
		if cfg.Username == "" {
			return fail("auth username needs username")
		}
	case "certificate":
		d.tokenType = ua.UserTokenTypeCertificate
	default:
		return fail("auth %q is not one of anonymous, username, certificate", cfg.Auth)
	}
	d.parsed = make([]*ua.NodeID, len(points))
	d.paths = make([][]PathElement, len(points))
	d.triggers = make([]ua.DataChangeTrigger, len(points))
	for i, p := range points {
		var err error
		switch {
		case p.Node != "" && p.BrowsePath != "":
			return fail("point %q: give node or browse_path, not both", p.Name)
		case p.Node != "":
			d.parsed[i], err = ParseNodeID(p.Node)
		case p.BrowsePath != "":
			d.paths[i], err = ParseBrowsePath(p.BrowsePath)
		default:
			err = errors.New("has neither node nor browse_path")
		}
		if err != nil {
			return fail("point %q: %v", p.Name, err)
		}
		if d.triggers[i], ok = triggers[or(p.Trigger, "status_value")]; !ok {
			return fail("point %q: trigger %q is not one of status, status_value, status_value_timestamp", p.Name, p.Trigger)
		}
		switch or(p.Mode, "subscribe") {
		case "subscribe":
			d.subbed = append(d.subbed, i)
		case "poll":
			d.polled = append(d.polled, i)
		default:
			return fail("point %q: mode %q is not subscribe or poll", p.Name, p.Mode)
		}
	}
	return d, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Requests counts the OPC UA service requests issued for data: Read,
// CreateSubscription and CreateMonitoredItems.
func (d *Driver) Requests() uint64 { return d.requests.Load() }

// Stats returns a copy of the driver's health figures.
func (d *Driver) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// SubscribedPoints is how many points are mode: subscribe. Subscribe returns
// nil at once when there are none.
func (d *Driver) SubscribedPoints() int { return len(d.subbed) }

func (d *Driver) where() string { return fmt.Sprintf("device %q: %s", d.device, d.cfg.Endpoint) }

// Connect dials the server and builds everything anew: it closes a previous
// connection, picks the endpoint, checks the server's certificate against the
// trust list, opens a session, resolves browse paths and reads the server's
// MaxNodesPerRead.
func (d *Driver) Connect(ctx context.Context) error {
	d.mu.Lock()
	old := d.client
	d.client = nil
	if old != nil && d.lostAt.IsZero() {
		d.lostAt = time.Now()
		d.stats.LastLost = d.lostAt
	}
	d.stats.Connected = false
	d.mu.Unlock()
	if old != nil {
		closeClient(old, d.timeout)
	}
	c, err := d.dial(ctx)
	if err != nil {
		d.noteErr(err)
		return err
	}
	nodes, nodeErr := d.resolve(ctx, c)
	maxRead := d.readLimit(ctx, c)
	unresolved := 0
	for i, e := range nodeErr {
		if e != nil {
			unresolved++
			d.log.Warn("point has no node", "point", d.points[i].Name, "err", e)
		}
	}
	d.mu.Lock()
	d.client, d.nodes, d.nodeErr, d.maxRead = c, nodes, nodeErr, maxRead
	d.stats.Connected = true
	d.stats.Connects++
	d.stats.Unresolved = unresolved
	if !d.lostAt.IsZero() {
		d.stats.Reconnects++
		d.stats.LastGap = time.Since(d.lostAt)
		d.lostAt = time.Time{}
	}
	d.mu.Unlock()
	d.log.Info("connected", "endpoint", d.cfg.Endpoint, "policy", or(d.cfg.SecurityPolicy, "None"), "mode", or(d.cfg.SecurityMode, "None"), "max_nodes_per_read", maxRead)
	return nil
}

func closeClient(c *opcua.Client, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c.Close(ctx)
}

// Close ends the session and the secure channel.
func (d *Driver) Close() error {
	d.mu.Lock()
	c := d.client
	d.client = nil
	d.stats.Connected = false
	d.mu.Unlock()
	if c != nil {
		closeClient(c, d.timeout)
	}
	return nil
}

func (d *Driver) noteErr(err error) {
	d.mu.Lock()
	d.kinds.count(err)
	d.stats.LastError = err.Error()
	d.mu.Unlock()
}

// lost records a lost connection and returns err wrapped so that the agent
// reconnects.
func (d *Driver) lost(err error) error {
	if !errors.Is(err, protocols.ErrNotConnected) {
		err = fmt.Errorf("%w (%w)", err, protocols.ErrNotConnected)
	}
	d.mu.Lock()
	d.kinds.count(err)
	d.stats.LastError = err.Error()
	d.stats.Connected = false
	if d.lostAt.IsZero() {
		d.lostAt = time.Now()
		d.stats.LastLost = d.lostAt
	}
	d.mu.Unlock()
	return err
}

func (d *Driver) current() (*opcua.Client, []*ua.NodeID, []error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.client, d.nodes, d.nodeErr
}

// dial selects the endpoint, checks trust and opens the session.
func (d *Driver) dial(ctx context.Context) (*opcua.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*d.timeout)
	defer cancel()
	eps, err := opcua.GetEndpoints(ctx, d.cfg.Endpoint, opcua.DialTimeout(d.timeout), opcua.RequestTimeout(d.timeout))
	if err != nil {
		return nil, fmt.Errorf("%s: get endpoints: %w", d.where(), describe(err))
	}
	var ep *ua.EndpointDescription
	var offered []string
	for _, e := range eps {
		name := strings.TrimPrefix(e.SecurityPolicyURI, "http://opcfoundation.org/UA/SecurityPolicy#") + "/" + strings.TrimPrefix(e.SecurityMode.String(), "MessageSecurityMode")
		offered = append(offered, name)
		if e.SecurityPolicyURI == d.policy && e.SecurityMode == d.mode && ep == nil {
			ep = e
		}
	}
	if ep == nil {
		return nil, fmt.Errorf("%s: the server offers no endpoint with security_policy %s and security_mode %s; it offers %s: %w",
			d.where(), or(d.cfg.SecurityPolicy, "None"), or(d.cfg.SecurityMode, "None"), strings.Join(offered, ", "), ErrNoEndpoint)
	}
	var logins []string
	hasLogin := false
	for _, t := range ep.UserIdentityTokens {
		logins = append(logins, loginName(t.TokenType))
		hasLogin = hasLogin || t.TokenType == d.tokenType
	}
	if !hasLogin {
		return nil, fmt.Errorf("%s: the server's %s/%s endpoint offers no %s login; it offers %s: %w",
			d.where(), or(d.cfg.SecurityPolicy, "None"), or(d.cfg.SecurityMode, "None"), loginName(d.tokenType), strings.Join(logins, ", "), ErrNoEndpoint)
	}

	opts := []opcua.Option{
		opcua.AutoReconnect(false),
		opcua.DialTimeout(d.timeout),
		// Every request but Publish carries its own deadline of
		// d.timeout; a Publish is held by the server until data or a
		// keep-alive is due.
		opcua.RequestTimeout(max(d.timeout, d.publishTimeout())),
		opcua.ApplicationName("weft-agent"),
		opcua.ApplicationURI(ApplicationURI()),
		opcua.SessionName("weft-agent " + d.device),
	}
	needCert := d.policy != ua.SecurityPolicyURINone || d.tokenType == ua.UserTokenTypeCertificate
	if d.policy != ua.SecurityPolicyURINone {
		ok, err := trusted(ep.ServerCertificate, d.dataDir, d.cfg.TrustedServerCerts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.where(), err)
		}
		if !ok {
			file, who, err := reject(ep.ServerCertificate, d.dataDir)
			if err != nil {
				return nil, fmt.Errorf("%s: server certificate %s is not trusted, and saving it failed: %v: %w", d.where(), who, err, ErrUntrustedServer)
			}
			return nil, fmt.Errorf("%s: server certificate %s is not trusted; it was saved as %s: check it, then move it into %s to trust this server: %w",
				d.where(), who, file, trustedDir(d.dataDir), ErrUntrustedServer)
		}
	}
	if needCert {
		cert, key, err := loadOwn(d.cfg, d.dataDir)
		if err != nil {
			return nil, fmt.Errorf("%s: the agent's own certificate: %w", d.where(), err)
		}
		opts = append(opts, opcua.Certificate(cert), opcua.PrivateKey(key))
		if d.tokenType == ua.UserTokenTypeCertificate {
			opts = append(opts, opcua.AuthCertificate(cert), opcua.AuthPrivateKey(key))
		}
	}
	switch d.tokenType {
	case ua.UserTokenTypeAnonymous:
		opts = append(opts, opcua.AuthAnonymous())
	case ua.UserTokenTypeUserName:
		opts = append(opts, opcua.AuthUsername(d.cfg.Username, d.cfg.Password))
	}
	opts = append(opts, opcua.SecurityFromEndpoint(ep, d.tokenType))
	c, err := opcua.NewClient(d.cfg.Endpoint, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.where(), err)
	}
	if err := c.Connect(ctx); err != nil {
		c.Close(ctx)
		// A server that does not trust the agent's certificate refuses the
		// secure channel: BadSecurityChecksFailed (node-opcua, most PLCs)
		// or BadCertificateUntrusted. With a user certificate, the latter
		// is about the user certificate: a refused login.
		if d.policy != ua.SecurityPolicyURINone && (errors.Is(err, ua.StatusBadSecurityChecksFailed) ||
			d.tokenType != ua.UserTokenTypeCertificate && errors.Is(err, ua.StatusBadCertificateUntrusted)) {
			return nil, fmt.Errorf("%s: the server refused the secure channel (%v): it most likely does not trust the agent's certificate %s: add that file to the server's trusted certificates; the next reconnect then succeeds: %w",
				d.where(), err, d.ownCertFile(), ErrClientUntrusted)
		}
		if isLoginRefused(err) {
			who := loginName(d.tokenType)
			if d.tokenType == ua.UserTokenTypeUserName {
				who = fmt.Sprintf("user %q", d.cfg.Username)
			}
			return nil, fmt.Errorf("%s: the server refused the login of %s (%v): check username and password (or the user certificate): %w", d.where(), who, err, ErrLogin)
		}
		return nil, fmt.Errorf("%s: connect: %w", d.where(), describe(err))
	}
	return c, nil
}

// ownCertFile is where the agent's certificate is: the certificate key, or
// data_dir/pki/own/cert.der.
func (d *Driver) ownCertFile() string {
	if d.cfg.Certificate != "" {
		return d.cfg.Certificate
	}
	return filepath.Join(d.dataDir, pkiOwn, "cert.der")
}

func trustedDir(dataDir string) string {
	return strings.TrimSuffix(dataDir, "/") + "/" + pkiTrusted + "/"
}

func loginName(t ua.UserTokenType) string {
	switch t {
	case ua.UserTokenTypeAnonymous:
		return "anonymous"
	case ua.UserTokenTypeUserName:
		return "username"
	case ua.UserTokenTypeCertificate:
		return "certificate"
	}
	return strings.ToLower(strings.TrimPrefix(t.String(), "UserTokenType"))
}

func isLoginRefused(err error) bool {
	for _, c := range []ua.StatusCode{ua.StatusBadUserAccessDenied, ua.StatusBadIdentityTokenRejected,
		ua.StatusBadIdentityTokenInvalid, ua.StatusBadUserSignatureInvalid, ua.StatusBadCertificateUntrusted} {
		if errors.Is(err, c) {
			return true
		}
	}
	return false
}

// describe adds a hint to the errors a field engineer meets most.
func describe(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w (nothing listens there: is the server running, the port right?)", err)
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w (no answer in time: check the address, firewall and the timeout key)", err)
	}
	return err
}

// isConnErr reports whether a request's error means the session or channel
// is gone (rather than one request being refused).
func isConnErr(err error) bool {
	if err == nil {
		return false
	}
	for _, c := range []ua.StatusCode{ua.StatusBadSessionIDInvalid, ua.StatusBadSessionClosed, ua.StatusBadSessionNotActivated,
		ua.StatusBadSecureChannelIDInvalid, ua.StatusBadSecureChannelClosed, ua.StatusBadServerNotConnected,
		ua.StatusBadNotConnected, ua.StatusBadConnectionClosed, ua.StatusBadTimeout, ua.StatusBadServerHalted,
		ua.StatusBadShutdown, ua.StatusBadCommunicationError, ua.StatusBadTCPInternalError} {
		if errors.Is(err, c) {
			return true
		}
	}
	var ne net.Error
	var sc ua.StatusCode
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne):
		return true
	case errors.As(err, &sc):
		return false // the server answered: one request refused
	}
	return true // unknown transport trouble: reconnecting is the safe way out
}

// readLimit reads the server's MaxNodesPerRead; 0 when it gives none.
func (d *Driver) readLimit(ctx context.Context, c *opcua.Client) int {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	res, err := c.Read(ctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{{
		NodeID: ua.NewNumericNodeID(0, id.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead), AttributeID: ua.AttributeIDValue}}})
	if err != nil || len(res.Results) != 1 || res.Results[0].Status != ua.StatusOK || res.Results[0].Value == nil {
		return 0
	}
	switch v := res.Results[0].Value.Value().(type) {
	case uint32:
		return int(v)
	case int32:
		return max(0, int(v))
	}
	return 0
}

// Poll reads every mode: poll point in as few Read requests as the server's
// MaxNodesPerRead allows (halving the chunk when the server answers
// BadTooManyOperations) and emits one sample per point, or per array element.
func (d *Driver) Poll(ctx context.Context, emit protocols.Emit) error {
	if len(d.polled) == 0 {
		return nil
	}
	c, nodes, nodeErr := d.current()
	if c == nil {
		return fmt.Errorf("%s: %w", d.where(), protocols.ErrNotConnected)
	}
	now := time.Now()
	readable := make([]int, 0, len(d.polled))
	var emitted uint64
	for _, i := range d.polled {
		if nodes[i] == nil {
			emit(wire.Sample{Device: d.device, Point: d.points[i].Name, Quality: wire.Bad, Code: uint32(codeOf(nodeErr[i])), TS: now.UnixMilli()})
			emitted++
			continue
		}
		readable = append(readable, i)
	}
	d.mu.Lock()
	chunk := d.maxRead
	d.mu.Unlock()
	if chunk <= 0 {
		chunk = len(readable)
	}
	var (
		buf         []wire.Sample
		reads       uint64
		needResolve bool
	)
	for start := 0; start < len(readable); {
		n := min(chunk, len(readable)-start)
		req := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnBoth, NodesToRead: make([]*ua.ReadValueID, n)}
		for j := range n {
			req.NodesToRead[j] = &ua.ReadValueID{NodeID: nodes[readable[start+j]], AttributeID: ua.AttributeIDValue}
		}
		rctx, cancel := context.WithTimeout(ctx, d.timeout)
		d.requests.Add(1)
		reads++
		res, err := c.Read(rctx, req)
		cancel()
		if errors.Is(err, ua.StatusBadTooManyOperations) && n > 1 {
			chunk = n / 2
			d.mu.Lock()
			d.maxRead = chunk
			d.mu.Unlock()
			d.log.Info("server refused the read size; reading in smaller chunks", "nodes", n, "now", chunk)
			continue
		}
		if err != nil {
			err = fmt.Errorf("%s: read %d nodes: %w", d.where(), n, err)
			d.addStats(reads, 0, emitted)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if isConnErr(err) {
				return d.lost(err)
			}
			d.noteErr(err)
			return err
		}
		if len(res.Results) != n {
			d.addStats(reads, 0, emitted)
			return d.lost(fmt.Errorf("%s: read %d nodes: the server answered %d results", d.where(), n, len(res.Results)))
		}
		now = time.Now()
		for j, dv := range res.Results {
			i := readable[start+j]
			var cerr error
			buf, cerr = appendSamples(buf[:0], d.device, d.points[i].Name, dv, now)
			if cerr != nil {
				d.log.Debug("value not converted", "err", cerr)
			}
			for _, s := range buf {
				emit(s)
			}
			emitted += uint64(len(buf))
			if dv != nil && dv.Status == ua.StatusBadNodeIDUnknown && d.paths[i] != nil {
				needResolve = true
			}
		}
		start += n
	}
	d.addStats(reads, 0, emitted)
	if needResolve {
		return d.lost(fmt.Errorf("%s: a node found by browse path is gone (BadNodeIdUnknown): the address space changed; reconnecting to resolve the paths again", d.where()))
	}
	return nil
}

func (d *Driver) addStats(reads, notifications, samples uint64) {
	d.mu.Lock()
	d.stats.Reads += reads
	d.stats.Notifications += notifications
	d.stats.Samples += samples
	d.mu.Unlock()
}

func codeOf(err error) ua.StatusCode {
	var sc ua.StatusCode
	if errors.As(err, &sc) {
		return sc
	}
	return ua.StatusBadNodeIDUnknown
}

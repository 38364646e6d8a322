package opcua

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftiot/weft/protocols"
	sim "github.com/weftiot/weft/sim/opcua"
	"github.com/weftiot/weft/wire"
)

func startSim(t testing.TB, opts sim.Options) *sim.Server {
	t.Helper()
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	s, err := sim.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func newDriver(t testing.TB, cfg DeviceConfig, points []Point) *Driver {
	t.Helper()
	d, err := New("m1", cfg, points, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

type collector struct {
	mu sync.Mutex
	s  []wire.Sample
}

func (c *collector) emit(s wire.Sample) { c.mu.Lock(); c.s = append(c.s, s); c.mu.Unlock() }
func (c *collector) byPoint() map[string]wire.Sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string]wire.Sample{}
	for _, s := range c.s {
		m[s.Point] = s
	}
	return m
}
func (c *collector) count(point string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.s {
		if s.Point == point {
			n++
		}
	}
	return n
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestPollEveryType reads every data type of the simulator's Types folder in
// one poll and checks each conversion, the qualities and the array rule.
func TestPollEveryType(t *testing.T) {
	s := startSim(t, sim.Options{})
	var points []Point
	for _, name := range []string{"Boolean", "SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64",
		"Float", "Double", "String", "DateTime", "ByteString", "DoubleArray", "StatusUncertain", "StatusBad"} {
		points = append(points, Point{Name: name, PointConfig: PointConfig{Node: "ns=1;s=Types." + name, Mode: "poll"}})
	}
	points = append(points,
		Point{Name: "missing", PointConfig: PointConfig{Node: "ns=1;s=Types.Nope", Mode: "poll"}},
		Point{Name: "by_path", PointConfig: PointConfig{BrowsePath: "/Objects/1:Loom1/1:Style", Mode: "poll"}},
		Point{Name: "by_path_any_ns", PointConfig: PointConfig{BrowsePath: "/Objects/Loom1/Efficiency", Mode: "poll"}},
		Point{Name: "bad_path", PointConfig: PointConfig{BrowsePath: "/Objects/1:Loom9/1:Speed", Mode: "poll"}},
	)
	d := newDriver(t, DeviceConfig{Endpoint: s.Endpoint()}, points)
	ctx := ctxT(t, 20*time.Second)
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	var c collector
	if err := d.Poll(ctx, c.emit); err != nil {
		t.Fatal(err)
	}
	got := c.byPoint()
	want := map[string]wire.Value{
		"Boolean": wire.BoolValue(true), "SByte": wire.IntValue(-128), "Byte": wire.UintValue(255),
		"Int16": wire.IntValue(-32768), "UInt16": wire.UintValue(65535), "Int32": wire.IntValue(math.MinInt32),
		"UInt32": wire.UintValue(math.MaxUint32), "Int64": wire.IntValue(math.MinInt64), "UInt64": wire.UintValue(math.MaxUint64),
		"Float": wire.FloatValue(1.5), "Double": wire.FloatValue(math.Pi), "String": wire.StringValue("染色机 dyeing machine"),
		"DateTime":       wire.IntValue(time.Date(2024, 5, 1, 8, 30, 0, 123e6, time.UTC).UnixMilli()),
		"ByteString":     wire.StringValue("3q2+7w=="),
		"DoubleArray[0]": wire.FloatValue(1.25), "DoubleArray[1]": wire.FloatValue(-2.5),
		"DoubleArray[2]": wire.FloatValue(0), "DoubleArray[3]": wire.FloatValue(1e6),
		"StatusUncertain": wire.FloatValue(42), "by_path": wire.StringValue("Denim 3/1 twill 12oz"),
		"by_path_any_ns": wire.FloatValue(91.7),
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: no sample", name)
			continue
		}
		if !g.Value.Equal(w) {
			t.Errorf("%s = %v (kind %d), want %v (kind %d)", name, g.Value, g.Value.Kind(), w, w.Kind())
		}
		if g.TS == 0 || g.Device != "m1" {
			t.Errorf("%s: device %q ts %d", name, g.Device, g.TS)
		}
	}
	if _, ok := got["DoubleArray"]; ok {
		t.Error("an array gave a sample under its own name; want one per element only")
	}
	for name, q := range map[string]wire.Quality{"Double": wire.Good, "StatusUncertain": wire.Uncertain, "StatusBad": wire.Bad, "missing": wire.Bad, "bad_path": wire.Bad} {
		if got[name].Quality != q {
			t.Errorf("%s quality = %v, want %v", name, got[name].Quality, q)
		}
	}
	if got["StatusBad"].Code != 0x808C0000 || got["missing"].Code != 0x80340000 || got["Double"].Code != 0 {
		t.Errorf("codes: StatusBad %#x missing %#x Double %#x", got["StatusBad"].Code, got["missing"].Code, got["Double"].Code)
	}
	if st := d.Stats(); st.Unresolved != 1 || st.Reads != 1 || !st.Connected {
		t.Errorf("stats = %+v, want 1 unresolved point, 1 read, connected", st)
	}
}

// TestPollChunks proves that a poll splits into reads of the server's
// MaxNodesPerRead.
func TestPollChunks(t *testing.T) {
	s := startSim(t, sim.Options{MaxNodesPerRead: 2})
	var points []Point
	for _, n := range []string{"Int16", "Int32", "Int64", "Double", "Float"} {
		points = append(points, Point{Name: n, PointConfig: PointConfig{Node: "ns=1;s=Types." + n, Mode: "poll"}})
	}
	d := newDriver(t, DeviceConfig{Endpoint: s.Endpoint()}, points)
	ctx := ctxT(t, 20*time.Second)
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	before := d.Requests()
	var c collector
	if err := d.Poll(ctx, c.emit); err != nil {
		t.Fatal(err)
	}
	if n := d.Requests() - before; n != 3 {
		t.Errorf("5 nodes with MaxNodesPerRead 2 took %d reads, want 3", n)
	}
	if len(c.byPoint()) != 5 {
		t.Errorf("got %d points, want 5", len(c.byPoint()))
	}
}

// TestSubscribe gets changing values pushed through monitored items, by
// NodeId and by browse path.
func TestSubscribe(t *testing.T) {
	s := startSim(t, sim.Options{UpdateInterval: 50 * time.Millisecond})
	d := newDriver(t, DeviceConfig{Endpoint: s.Endpoint(), PublishingInterval: 50 * time.Millisecond}, []Point{
		{Name: "counter", PointConfig: PointConfig{Node: "ns=1;s=Types.Counter"}},
		{Name: "spindles", PointConfig: PointConfig{BrowsePath: "/Objects/1:Winder1/1:SpindleSpeeds"}},
		{Name: "gone", PointConfig: PointConfig{Node: "ns=1;s=Nope"}},
	})
	ctx := ctxT(t, 20*time.Second)
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	var c collector
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Subscribe(sctx, c.emit) }()
	waitFor(t, 10*time.Second, "3 counter changes and spindle speeds", func() bool {
		return c.count("counter") >= 3 && c.count("spindles[5]") >= 1
	})
	stop()
	if err := <-done; err != nil {
		t.Errorf("Subscribe after cancel = %v, want nil", err)
	}
	seen := map[uint64]bool{}
	for _, smp := range c.s {
		if smp.Point == "counter" {
			seen[smp.Value.Uint()] = true
		}
	}
	if len(seen) < 2 {
		t.Errorf("counter did not change: %v", seen)
	}
	// gopcua's server accepts a monitored item for an unknown node and
	// never publishes it; a real server refuses it (BadNodeIdUnknown) and
	// the driver emits that as a Bad sample.
	if d.Stats().Notifications == 0 {
		t.Error("no notifications counted")
	}
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runAgent connects d and runs agentLoop on it until the test ends; the
// collector gets its samples. subscribeFailed fails the test at once if
// Subscribe has returned an error that does not wrap ErrNotConnected.
func runAgent(t *testing.T, ctx context.Context, d *Driver) (c *collector, subscribeFailed func()) {
	t.Helper()
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	c = &collector{}
	lctx, stop := context.WithCancel(ctx)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); agentLoop(lctx, d, c.emit, errs) }()
	t.Cleanup(func() { stop(); wg.Wait() })
	return c, func() {
		t.Helper()
		select {
		case err := <-errs:
			t.Fatalf("Subscribe failed without ErrNotConnected: %v", err)
		default:
		}
	}
}

// agentLoop mimics the agent: Subscribe until it fails, then Connect with
// backoff until that works, then Subscribe again.
func agentLoop(ctx context.Context, d *Driver, emit protocols.Emit, errs chan<- error) {
	for ctx.Err() == nil {
		err := d.Subscribe(ctx, emit)
		if ctx.Err() != nil {
			return
		}
		if !errors.Is(err, protocols.ErrNotConnected) {
			errs <- err
			return
		}
		for backoff := 50 * time.Millisecond; ctx.Err() == nil; backoff = min(2*backoff, time.Second) {
			if d.Connect(ctx) == nil {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
		}
	}
}

// TestRestartMidSubscription restarts the server under a live subscription,
// several times: values resume with no new driver, and the gap is reported.
func TestRestartMidSubscription(t *testing.T) {
	s := startSim(t, sim.Options{UpdateInterval: 50 * time.Millisecond})
	d := newDriver(t, DeviceConfig{Endpoint: s.Endpoint(), PublishingInterval: 50 * time.Millisecond, Timeout: 2 * time.Second}, []Point{
		{Name: "counter", PointConfig: PointConfig{BrowsePath: "/Objects/1:Types/1:Counter"}},
	})
	ctx := ctxT(t, 90*time.Second)
	c, subscribeFailed := runAgent(t, ctx, d)

	rounds := 3
	if testing.Short() {
		rounds = 1
	}
	for round := 1; round <= rounds; round++ {
		n := c.count("counter")
		waitFor(t, 10*time.Second, "values before the restart", func() bool { return c.count("counter") >= n+2 })
		if err := s.Restart(); err != nil {
			t.Fatal(err)
		}
		after := c.count("counter")
		waitFor(t, 20*time.Second, "values after the restart", func() bool { return c.count("counter") >= after+2 })
		st := d.Stats()
		if st.Reconnects != uint64(round) {
			t.Errorf("round %d: reconnects = %d", round, st.Reconnects)
		}
		if st.LastGap <= 0 || st.LastLost.IsZero() {
			t.Errorf("round %d: gap not reported: %+v", round, st)
		}
		subscribeFailed()
	}
}

// TestStalledSubscription makes the simulator stop publishing (no data, no
// keep-alive) while the connection, the session and reads stay up: the
// driver must see the silence within publishing interval × max keep-alive
// count plus a margin, return ErrNotConnected so that the agent resubscribes,
// and values must resume once the server publishes again.
func TestStalledSubscription(t *testing.T) {
	s := startSim(t, sim.Options{UpdateInterval: 50 * time.Millisecond})
	// timeout 1s: a keep-alive is due every 2 s, silence is a stall after 3 s.
	d := newDriver(t, DeviceConfig{Endpoint: s.Endpoint(), PublishingInterval: 50 * time.Millisecond, Timeout: time.Second}, []Point{
		{Name: "counter", PointConfig: PointConfig{Node: "ns=1;s=Types.Counter"}},
	})
	ctx := ctxT(t, 60*time.Second)
	c, subscribeFailed := runAgent(t, ctx, d)

	n := c.count("counter")
	waitFor(t, 10*time.Second, "values before the stall", func() bool { return c.count("counter") >= n+3 })
	s.StallPublishing(true)
	stalledAt := time.Now()
	waitFor(t, 10*time.Second, "the driver to report the stall", func() bool {
		return strings.Contains(d.Stats().LastError, "sent neither data nor a keep-alive")
	})
	if took := time.Since(stalledAt); took < 2*time.Second {
		t.Errorf("stall reported after %s, before a keep-alive was even due", took)
	}
	st := d.Stats()
	if !strings.Contains(st.LastError, "not connected") || !strings.Contains(st.LastError, `device "m1"`) {
		t.Errorf("LastError %q should name the device and wrap ErrNotConnected", st.LastError)
	}
	s.StallPublishing(false)
	after := c.count("counter")
	waitFor(t, 15*time.Second, "values after publishing resumed", func() bool { return c.count("counter") >= after+3 })
	if st := d.Stats(); st.Reconnects < 1 || st.LastGap <= 0 {
		t.Errorf("stats after the stall: %+v, want a reconnect and its gap", st)
	}
	subscribeFailed()
}

// TestNetworkCut cuts the network under a live subscription without either
// side being told (the simulator drops every byte, connections stay open):
// the driver must call the connection lost, keep failing to connect while
// the cut lasts, and get values again once the network is back.
func TestNetworkCut(t *testing.T) {
	s := startSim(t, sim.Options{UpdateInterval: 50 * time.Millisecond})
	d := newDriver(t, DeviceConfig{Endpoint: s.Endpoint(), PublishingInterval: 50 * time.Millisecond, Timeout: time.Second}, []Point{
		{Name: "counter", PointConfig: PointConfig{Node: "ns=1;s=Types.Counter"}},
	})
	ctx := ctxT(t, 60*time.Second)
	c, subscribeFailed := runAgent(t, ctx, d)

	n := c.count("counter")
	waitFor(t, 10*time.Second, "values before the cut", func() bool { return c.count("counter") >= n+3 })
	s.CutNetwork(true)
	waitFor(t, 15*time.Second, "the driver to call the connection lost", func() bool { return !d.Stats().Connected })
	time.Sleep(3 * time.Second) // reconnects fail while the cut lasts
	if st := d.Stats(); st.Connected || st.Reconnects != 0 {
		t.Errorf("during the cut: %+v, want not connected and no reconnect", st)
	}
	s.CutNetwork(false)
	after := c.count("counter")
	waitFor(t, 20*time.Second, "values after the network came back", func() bool { return c.count("counter") >= after+3 })
	if st := d.Stats(); st.Reconnects != 1 || st.LastGap < 3*time.Second {
		t.Errorf("after the cut: %+v, want one reconnect and a gap of at least the 3 s cut", st)
	}
	subscribeFailed()
}

// TestQuietSubscription subscribes to a value that never changes: the server
// sends only keep-alives, and the driver must take them as signs of life,
// not report a stall.
func TestQuietSubscription(t *testing.T) {
	s := startSim(t, sim.Options{UpdateInterval: 50 * time.Millisecond})
	d := newDriver(t, DeviceConfig{Endpoint: s.Endpoint(), PublishingInterval: 50 * time.Millisecond, Timeout: time.Second}, []Point{
		{Name: "pi", PointConfig: PointConfig{Node: "ns=1;s=Types.Double"}},
	})
	ctx := ctxT(t, 30*time.Second)
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	var c collector
	sctx, stop := context.WithTimeout(ctx, 4500*time.Millisecond) // past the silence limit (3 s)
	defer stop()
	if err := d.Subscribe(sctx, c.emit); err != nil {
		t.Fatalf("a quiet subscription was reported lost: %v", err)
	}
	if n := c.count("pi"); n != 1 {
		t.Errorf("got %d samples of a constant, want the initial one", n)
	}
}

// TestManyItems subscribes 2,500 changing items: the driver spreads them
// over three subscriptions (one request to create each, one to add its
// items), and every item's values arrive. In one subscription they would not:
// gopcua's server sends a 2,500-item answer (about 75 KB) as one chunk, which
// its client refuses.
func TestManyItems(t *testing.T) {
	if testing.Short() {
		t.Skip("2,500 items: long")
	}
	const n = 2500
	s := startSim(t, sim.Options{Bulk: n, UpdateInterval: 100 * time.Millisecond})
	points := make([]Point, n)
	for i := range points {
		points[i] = Point{Name: fmt.Sprintf("v%d", i), PointConfig: PointConfig{Node: fmt.Sprintf("ns=1;s=Bulk.V%05d", i)}}
	}
	d := newDriver(t, DeviceConfig{Endpoint: s.Endpoint(), PublishingInterval: 100 * time.Millisecond, Timeout: 5 * time.Second}, points)
	ctx := ctxT(t, 60*time.Second)
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	before := d.Requests()
	var c collector
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Subscribe(sctx, c.emit) }()
	waitFor(t, 30*time.Second, "two values of every item", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		seen := make(map[string]int, n)
		for _, smp := range c.s {
			seen[smp.Point]++
		}
		if len(seen) < n {
			return false
		}
		for _, k := range seen {
			if k < 2 {
				return false
			}
		}
		return true
	})
	stop()
	if err := <-done; err != nil {
		t.Errorf("Subscribe = %v", err)
	}
	if got := d.Requests() - before; got != 6 {
		t.Errorf("%d requests to subscribe 2,500 items, want 6 (3 CreateSubscription, 3 CreateMonitoredItems)", got)
	}
}

// TestUsernameLogin logs in with a username whose password travels
// encrypted with the server's certificate (token policy Basic256Sha256 on
// the None endpoint), then with a wrong password, then anonymously on a
// server that refuses anonymous logins.
func TestUsernameLogin(t *testing.T) {
	s := startSim(t, sim.Options{Users: map[string]string{"operator": "s3cret"}, NoAnonymous: true})
	cfg := DeviceConfig{Endpoint: s.Endpoint(), Auth: "username", Username: "operator", Password: "s3cret"}
	points := []Point{{Name: "style", PointConfig: PointConfig{Node: "ns=1;s=Loom1.Style", Mode: "poll"}}}
	ctx := ctxT(t, 30*time.Second)
	d := newDriver(t, cfg, points)
	if err := d.Connect(ctx); err != nil {
		t.Fatalf("right password: %v", err)
	}
	var c collector
	if err := d.Poll(ctx, c.emit); err != nil {
		t.Fatal(err)
	}
	if got := c.byPoint()["style"]; got.Quality != wire.Good || got.Value.Str() != "Denim 3/1 twill 12oz" {
		t.Errorf("read after login = %+v", got)
	}

	cfg.Password = "wrong"
	err := newDriver(t, cfg, points).Connect(ctx)
	if !errors.Is(err, ErrLogin) || !strings.Contains(err.Error(), `user "operator"`) || !strings.Contains(err.Error(), "check username and password") {
		t.Errorf("wrong password: err = %v, want ErrLogin naming the user", err)
	}
	cfg.Username = "nobody"
	if err := newDriver(t, cfg, points).Connect(ctx); !errors.Is(err, ErrLogin) {
		t.Errorf("unknown user: err = %v, want ErrLogin", err)
	}
	cfg.Auth, cfg.Username, cfg.Password = "anonymous", "", ""
	if err := newDriver(t, cfg, points).Connect(ctx); !errors.Is(err, ErrLogin) {
		t.Errorf("anonymous on a server that refuses it: err = %v, want ErrLogin", err)
	}
}

// TestUntrustedServer: a server whose certificate is not trusted is refused
// with an error naming the file saved under pki/rejected; once the engineer
// moves it into pki/trusted, the driver gets past the trust check and makes
// its own certificate. (gopcua v0.8.0's server cannot finish a secure
// channel; the whole workflow, through to reading values, is
// TestNodeOPCUATrust against node-opcua.)
func TestUntrustedServer(t *testing.T) {
	s := startSim(t, sim.Options{Secure: true})
	dataDir := t.TempDir()
	cfg := DeviceConfig{Endpoint: s.Endpoint(), SecurityPolicy: "Basic256Sha256", SecurityMode: "SignAndEncrypt", Timeout: time.Second}
	d, err := New("loom1", cfg, nil, dataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := ctxT(t, 30*time.Second)
	err = d.Connect(ctx)
	if !errors.Is(err, ErrUntrustedServer) {
		t.Fatalf("untrusted server: err = %v, want ErrUntrustedServer", err)
	}
	rejected, _ := filepath.Glob(filepath.Join(dataDir, "pki/rejected/*.der"))
	if len(rejected) != 1 || !strings.Contains(err.Error(), rejected[0]) || !strings.Contains(err.Error(), filepath.Join(dataDir, "pki/trusted")) {
		t.Fatalf("error %q should name the rejected file %v and the trusted dir", err, rejected)
	}
	if !strings.Contains(err.Error(), "Weft OPC UA simulator") {
		t.Errorf("error %q should name the certificate's subject", err)
	}
	os.MkdirAll(filepath.Join(dataDir, "pki/trusted"), 0o755)
	if err := os.Rename(rejected[0], filepath.Join(dataDir, "pki/trusted", filepath.Base(rejected[0]))); err != nil {
		t.Fatal(err)
	}
	if err := d.Connect(ctx); errors.Is(err, ErrUntrustedServer) {
		t.Fatalf("after trusting: still untrusted: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "pki/own/cert.der")); err != nil {
		t.Errorf("own certificate not created: %v", err)
	}
	if _, _, err := loadOwn(DeviceConfig{}, dataDir); err != nil {
		t.Errorf("own certificate does not load back: %v", err)
	}
}

func TestConnectErrors(t *testing.T) {
	s := startSim(t, sim.Options{})
	ctx := ctxT(t, 20*time.Second)
	d := newDriver(t, DeviceConfig{Endpoint: s.Endpoint(), SecurityPolicy: "Basic256Sha256", SecurityMode: "Sign"}, nil)
	if err := d.Connect(ctx); !errors.Is(err, ErrNoEndpoint) || !strings.Contains(err.Error(), "None/None") {
		t.Errorf("policy the server lacks: err = %v, want ErrNoEndpoint listing what it offers", err)
	}
	addr := s.Endpoint()
	s.Stop()
	d = newDriver(t, DeviceConfig{Endpoint: addr, Timeout: time.Second}, nil)
	if err := d.Connect(ctx); err == nil || !strings.Contains(err.Error(), `device "m1"`) {
		t.Errorf("server down: err = %v, want an error naming the device", err)
	}
	var c collector
	if err := d.Poll(ctx, c.emit); err != nil {
		t.Errorf("poll with no poll points = %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg DeviceConfig
		p   Point
	}{
		"endpoint":      {DeviceConfig{Endpoint: "tcp://x:1"}, Point{Name: "a", PointConfig: PointConfig{Node: "i=1"}}},
		"policy":        {DeviceConfig{Endpoint: "opc.tcp://x:1", SecurityPolicy: "Basic128Rsa15", SecurityMode: "Sign"}, Point{Name: "a", PointConfig: PointConfig{Node: "i=1"}}},
		"policy-mode":   {DeviceConfig{Endpoint: "opc.tcp://x:1", SecurityPolicy: "Basic256Sha256"}, Point{Name: "a", PointConfig: PointConfig{Node: "i=1"}}},
		"auth":          {DeviceConfig{Endpoint: "opc.tcp://x:1", Auth: "kerberos"}, Point{Name: "a", PointConfig: PointConfig{Node: "i=1"}}},
		"node":          {DeviceConfig{Endpoint: "opc.tcp://x:1"}, Point{Name: "a", PointConfig: PointConfig{Node: "ns=x;i=1"}}},
		"path":          {DeviceConfig{Endpoint: "opc.tcp://x:1"}, Point{Name: "a", PointConfig: PointConfig{BrowsePath: "Objects/x"}}},
		"mode":          {DeviceConfig{Endpoint: "opc.tcp://x:1"}, Point{Name: "a", PointConfig: PointConfig{Node: "i=1", Mode: "push"}}},
		"trigger":       {DeviceConfig{Endpoint: "opc.tcp://x:1"}, Point{Name: "a", PointConfig: PointConfig{Node: "i=1", Trigger: "always"}}},
		"node and path": {DeviceConfig{Endpoint: "opc.tcp://x:1"}, Point{Name: "a", PointConfig: PointConfig{Node: "i=1", BrowsePath: "/Objects"}}},
	} {
		if _, err := New("dev", tc.cfg, []Point{tc.p}, "", nil); err == nil || !strings.Contains(err.Error(), `device "dev"`) {
			t.Errorf("%s: err = %v, want an error naming the device", name, err)
		}
	}
}

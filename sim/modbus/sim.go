// Package modbus is the Modbus side of weft-sim: simulated machines served by
// github.com/simonvetter/modbus's server, behind front ends that speak Modbus
// TCP, RTU over TCP, and RTU or ASCII on a serial line, and that inject the
// faults tests need (latency, dropped or garbage answers, stale transaction
// ids, disconnects, exceptions at chosen addresses).
//
// Every request, whatever its framing, is turned into a Modbus TCP request to
// the embedded simonvetter server on a loopback port; that server decodes and
// validates it and calls the simulated machine.
package modbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	mbs "github.com/simonvetter/modbus"
)

// Options configure a simulated server. At least one of TCP, RTUOverTCP and
// Serial must be set.
type Options struct {
	// TCP is the Modbus TCP listen address, e.g. 127.0.0.1:5020 (port 0
	// picks one; Server.Addr tells which).
	TCP string
	// RTUOverTCP is a listen address for RTU frames over TCP, as serial
	// device servers (DTUs) carry them.
	RTUOverTCP string
	// Serial is a serial device to answer on (one end of a socat pty pair).
	Serial string
	// SerialMode is rtu (default) or ascii.
	SerialMode string
	// Units maps unit ids to profiles. When empty, unit 1 serves Profile
	// (and for the counter profile units 1..Devices do).
	Units   map[byte]string
	Profile string
	// Devices and Registers size the counter profile (defaults 1 and 100).
	Devices   int
	Registers int
	// Tick is how often values move (default 100ms).
	Tick time.Duration
	// Fault is the initial fault setting; SetFault changes it.
	Fault Fault
	// Concurrency, when set, is shared with other servers so a test can see
	// requests outstanding across all of them; by default each server has
	// its own.
	Concurrency *Concurrency
	// Seed makes the noise of the profiles repeatable.
	Seed   uint64
	Logger *slog.Logger
}

// Fault is what the server does wrong, for tests. The *Next counters count
// down with each request they affect.
type Fault struct {
	// Latency is added before every answer.
	Latency time.Duration
	// DropRate is the fraction (0..1) of requests left unanswered.
	DropRate float64
	// DropNext: the next N requests are left unanswered.
	DropNext int
	// LateNext: the next N requests are answered after LateBy (default 1s),
	// so that a client that gave up may see the answer later.
	LateNext int
	LateBy   time.Duration
	// GarbageNext: the next N answers are random bytes; GarbageRate, that
	// fraction (0..1) of all answers.
	GarbageNext int
	GarbageRate float64
	// StaleNext: the next N answers carry the previous transaction id, as
	// a late answer to an earlier request would (Modbus TCP only).
	StaleNext int
	// DisconnectNext: the next N requests close the connection instead;
	// DisconnectRate, that fraction (0..1) of all requests.
	DisconnectNext int
	DisconnectRate float64
	// BusyNext: the next N requests are answered with exception 6.
	BusyNext int
	// Exceptions answers any request covering one of these addresses with
	// an exception.
	Exceptions []ExceptionAt
}

// ExceptionAt is an exception code answered for one address.
type ExceptionAt struct {
	Unit    byte   // 0: every unit
	Table   string // coil, discrete, holding or input
	Address int
	Code    byte
}

// Stats are what the server saw.
type Stats struct {
	Requests    uint64 // requests received, all front ends
	Connections uint64 // connections accepted
	MaxInFlight int64  // most requests received but not yet answered at once
}

// Concurrency counts requests received and not yet answered (or dropped).
type Concurrency struct {
	cur, max atomic.Int64
}

func (c *Concurrency) enter() {
	n := c.cur.Add(1)
	for {
		m := c.max.Load()
		if n <= m || c.max.CompareAndSwap(m, n) {
			return
		}
	}
}

func (c *Concurrency) leave() { c.cur.Add(-1) }

// Max is the most requests that were outstanding at once.
func (c *Concurrency) Max() int64 { return c.max.Load() }

// Server is a running simulator.
type Server struct {
	opts     Options
	log      *slog.Logger
	backend  *mbs.ModbusServer
	backAddr string
	machines map[byte]*machine
	conc     *Concurrency
	start    time.Time

	mu    sync.Mutex // guards fault and rng
	fault Fault
	rng   *rand.Rand

	requests    atomic.Uint64
	connections atomic.Uint64

	tcp, rtuTCP net.Listener
	serial      io.ReadWriteCloser

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	connMu sync.Mutex
	conns  map[net.Conn]struct{}
}

// Start starts a server as opts say.
func Start(opts Options) (*Server, error) {
	if opts.TCP == "" && opts.RTUOverTCP == "" && opts.Serial == "" {
		return nil, errors.New("modbus sim: no listener: set TCP, RTUOverTCP or Serial")
	}
	if opts.Tick <= 0 {
		opts.Tick = 100 * time.Millisecond
	}
	if opts.Devices <= 0 {
		opts.Devices = 1
	}
	if opts.Registers <= 0 {
		opts.Registers = 100
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts: opts, log: opts.Logger.With("component", "modbus-sim"),
		machines: map[byte]*machine{}, conc: opts.Concurrency,
		fault: opts.Fault, rng: rand.New(rand.NewPCG(opts.Seed, 7)),
		conns: map[net.Conn]struct{}{}, start: time.Now(),
	}
	if s.conc == nil {
		s.conc = &Concurrency{}
	}
	units := opts.Units
	if len(units) == 0 {
		if opts.Profile == "" {
			return nil, fmt.Errorf("modbus sim: no profile: want one of %v", ProfileNames())
		}
		units = map[byte]string{1: opts.Profile}
		if opts.Profile == "counter" {
			if opts.Devices > 247 {
				return nil, fmt.Errorf("modbus sim: counter: %d devices: at most 247 unit ids", opts.Devices)
			}
			units = map[byte]string{}
			for u := 1; u <= opts.Devices; u++ {
				units[byte(u)] = "counter"
			}
		}
	}
	for u, p := range units {
		m, ok := newProfile(p, u, opts.Registers, opts.Seed)
		if !ok {
			return nil, fmt.Errorf("modbus sim: unit %d: unknown profile %q: want one of %v", u, p, ProfileNames())
		}
		m.step(m, 0, 0)
		s.machines[u] = m
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.startBackend(); err != nil {
		return nil, err
	}
	if err := s.listen(); err != nil {
		s.Close()
		return nil, err
	}
	s.wg.Add(1)
	go s.tickLoop()
	return s, nil
}

// startBackend runs the simonvetter server on a free loopback port.
func (s *Server) startBackend() error {
	var err error
	for range 5 {
		var l net.Listener
		l, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("modbus sim: backend: %w", err)
		}
		addr := l.Addr().String()
		l.Close()
		var srv *mbs.ModbusServer
		srv, err = mbs.NewServer(&mbs.ServerConfiguration{
			URL: "tcp://" + addr, Timeout: 10 * time.Minute, MaxClients: 4096,
			Logger: log.New(io.Discard, "", 0),
		}, &handler{s: s})
		if err != nil {
			return fmt.Errorf("modbus sim: backend: %w", err)
		}
		if err = srv.Start(); err == nil {
			s.backend, s.backAddr = srv, addr
			return nil
		}
	}
	return fmt.Errorf("modbus sim: backend: %w", err)
}

func (s *Server) listen() error {
	if s.opts.TCP != "" {
		l, err := net.Listen("tcp", s.opts.TCP)
		if err != nil {
			return fmt.Errorf("modbus sim: listen %s: %w", s.opts.TCP, err)
		}
		s.tcp = l
		s.wg.Add(1)
		go s.accept(l, s.serveMBAP)
	}
	if s.opts.RTUOverTCP != "" {
		l, err := net.Listen("tcp", s.opts.RTUOverTCP)
		if err != nil {
			return fmt.Errorf("modbus sim: listen %s: %w", s.opts.RTUOverTCP, err)
		}
		s.rtuTCP = l
		s.wg.Add(1)
		go s.accept(l, func(c net.Conn) { s.serveSerialFraming(c, "rtu") })
	}
	if s.opts.Serial != "" {
		f, err := openSerial(s.opts.Serial, s.opts.serialBaud())
		if err != nil {
			return fmt.Errorf("modbus sim: serial %s: %w", s.opts.Serial, err)
		}
		s.serial = f
		mode := s.opts.SerialMode
		if mode == "" {
			mode = "rtu"
		}
		if mode != "rtu" && mode != "ascii" {
			return fmt.Errorf("modbus sim: serial mode %q: want rtu or ascii", mode)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveSerialFraming(f, mode)
		}()
	}
	return nil
}

func (o Options) serialBaud() int { return 9600 }

// Addr is the Modbus TCP address the server listens on ("" if none).
func (s *Server) Addr() string {
	if s.tcp == nil {
		return ""
	}
	return s.tcp.Addr().String()
}

// RTUOverTCPAddr is the RTU-over-TCP address ("" if none).
func (s *Server) RTUOverTCPAddr() string {
	if s.rtuTCP == nil {
		return ""
	}
	return s.rtuTCP.Addr().String()
}

// SetFault replaces the fault setting.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// Stats returns what the server has seen so far.
func (s *Server) Stats() Stats {
	return Stats{Requests: s.requests.Load(), Connections: s.connections.Load(), MaxInFlight: s.conc.Max()}
}

// SetRegister sets a holding (or, with input true, an input) register of a
// unit, for tests that need a value to change.
func (s *Server) SetRegister(unit byte, input bool, addr int, v uint16) error {
	m := s.machines[unit]
	if m == nil {
		return fmt.Errorf("unit %d is not simulated", unit)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.holding
	if input {
		t = m.input
	}
	if addr < 0 || addr >= len(t) {
		return fmt.Errorf("unit %d: address %d outside 0..%d", unit, addr, len(t)-1)
	}
	t[addr] = v
	return nil
}

// Units lists the simulated unit ids.
func (s *Server) Units() []byte {
	us := make([]byte, 0, len(s.machines))
	for u := range s.machines {
		us = append(us, u)
	}
	sort.Slice(us, func(i, j int) bool { return us[i] < us[j] })
	return us
}

// Close stops the listeners, closes every connection and waits for them.
func (s *Server) Close() error {
	s.cancel()
	if s.tcp != nil {
		s.tcp.Close()
	}
	if s.rtuTCP != nil {
		s.rtuTCP.Close()
	}
	if s.serial != nil {
		s.serial.Close()
	}
	s.connMu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.connMu.Unlock()
	s.wg.Wait()
	if s.backend != nil {
		return s.backend.Stop()
	}
	return nil
}

func (s *Server) tickLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.Tick)
	defer t.Stop()
	var ticks uint64
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			ticks++
			for _, m := range s.machines {
				m.mu.Lock()
				m.step(m, now.Sub(s.start), ticks)
				m.mu.Unlock()
			}
		}
	}
}

func (s *Server) accept(l net.Listener, serve func(net.Conn)) {
	defer s.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		s.connections.Add(1)
		s.connMu.Lock()
		if s.ctx.Err() != nil {
			s.connMu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.connMu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			serve(c)
			c.Close()
			s.connMu.Lock()
			delete(s.conns, c)
			s.connMu.Unlock()
		}()
	}
}

// action is what the fault setting decides for one request.
type action struct {
	delay      time.Duration
	drop       bool
	garbage    bool
	stale      bool
	disconnect bool
}

func (s *Server) decide() action {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := &s.fault
	a := action{delay: f.Latency}
	switch {
	case f.DisconnectNext > 0:
		f.DisconnectNext--
		a.disconnect = true
	case f.DisconnectRate > 0 && s.rng.Float64() < f.DisconnectRate:
		a.disconnect = true
	case f.DropNext > 0:
		f.DropNext--
		a.drop = true
	case f.DropRate > 0 && s.rng.Float64() < f.DropRate:
		a.drop = true
	case f.GarbageNext > 0:
		f.GarbageNext--
		a.garbage = true
	case f.GarbageRate > 0 && s.rng.Float64() < f.GarbageRate:
		a.garbage = true
	case f.StaleNext > 0:
		f.StaleNext--
		a.stale = true
	case f.LateNext > 0:
		f.LateNext--
		late := f.LateBy
		if late <= 0 {
			late = time.Second
		}
		a.delay += late
	}
	return a
}

func (s *Server) garbage() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := make([]byte, 1+s.rng.IntN(20))
	for i := range b {
		b[i] = byte(s.rng.UintN(256))
	}
	return b
}

// sleep waits d or until the server closes.
func (s *Server) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

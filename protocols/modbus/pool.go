package modbus

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Pool owns the connections of every Modbus device of an agent. Devices
// whose targets name the same TCP address, serial server (rtuovertcp) or
// serial line share one connection and one request queue, so the line
// carries one request at a time — or, on a Modbus TCP target whose devices
// all allow it (max_inflight), up to that many; devices on different targets
// poll in parallel. Make every driver of a target before the first poll: the
// link fixes its mode with its first request.
type Pool struct {
	log *slog.Logger

	mu    sync.Mutex
	links map[string]*link
}

// NewPool makes an empty pool. logger (nil: discard) is used as given; the
// caller names the component, e.g. logger.With("component", "modbus").
func NewPool(logger *slog.Logger) *Pool {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Pool{log: logger, links: map[string]*link{}}
}

// Driver makes the driver of one device: it checks the points, plans the
// reads and joins the connection of the device's target. It does not dial.
func (p *Pool) Driver(device string, cfg DeviceConfig, points []Point) (*Driver, error) {
	t, err := ParseTarget(cfg.Target)
	if err != nil {
		return nil, fmt.Errorf("device %q: %w", device, err)
	}
	d, err := newDriver(p, device, cfg, points, t)
	if err != nil {
		return nil, err
	}
	window := d.window()
	if window == 1 && cfg.MaxInflight != nil && *cfg.MaxInflight > 1 {
		d.log.Warn("inter_request_delay forces max_inflight 1", "max_inflight", *cfg.MaxInflight, "inter_request_delay", cfg.InterRequestDelay)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	key := t.String()
	l := p.links[key]
	if l == nil {
		l = newLink(t, p.log.With("target", key))
		p.links[key] = l
	}
	if err := l.join(device, window); err != nil {
		return nil, err
	}
	l.refs++
	if cfg.InterRequestDelay > time.Duration(l.delay.Load()) {
		l.delay.Store(int64(cfg.InterRequestDelay))
	}
	d.link = l
	return d, nil
}

// release is a driver leaving its link; the last one closes it.
func (p *Pool) release(l *link) error {
	p.mu.Lock()
	l.refs--
	last := l.refs == 0
	if last && p.links[l.target.String()] == l {
		delete(p.links, l.target.String())
	}
	p.mu.Unlock()
	if last {
		return l.closeConn()
	}
	return nil
}

// Close closes every connection. Drivers made by the pool must not be used
// afterwards.
func (p *Pool) Close() error {
	p.mu.Lock()
	links := p.links
	p.links = map[string]*link{}
	p.mu.Unlock()
	var errs []error
	for _, l := range links {
		if err := l.closeConn(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", l.target, err))
		}
	}
	return errors.Join(errs...)
}

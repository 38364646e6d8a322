package runner

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/weftiot/weft/agent/internal/collect"
	"github.com/weftiot/weft/agent/internal/pipeline"
	"github.com/weftiot/weft/config"
	"github.com/weftiot/weft/protocols"
	"github.com/weftiot/weft/protocols/modbus"
	"github.com/weftiot/weft/protocols/opcua"
	"github.com/weftiot/weft/wire"
)

// collection is the side of the agent a new config replaces: the drivers,
// their scheduler and the pipeline into the spool.
type collection struct {
	pool    *modbus.Pool
	batcher *pipeline.Batcher
	coll    *collect.Collector
	filters []*pipeline.Filter
	broken  []wire.DeviceHealth // devices whose driver could not be made
	devices []string
	points  []wire.DevicePoints // for the retained status
}

// Driver is one configured device's driver, ready to connect.
type Driver struct {
	ID       string
	Protocol string
	Interval time.Duration
	Driver   protocols.Driver
	Rules    map[string]pipeline.Rule
	// Explain is the device's errors as health shows them (lastError).
	Explain func(error) string
}

// Drivers makes the driver of every enabled device of cfg. A device whose
// driver cannot be made is reported in failed (and left out), so one bad
// device does not keep the others from running.
func Drivers(cfg *config.Agent, pool *modbus.Pool, logger *slog.Logger) (drivers []Driver, failed []wire.DeviceHealth) {
	for _, dev := range cfg.Devices {
		if dev.Disabled {
			continue
		}
		d, err := makeDriver(cfg, dev, pool, logger)
		if err != nil {
			logger.Error("device left out: its driver could not be made", "device", dev.ID, "err", err)
			failed = append(failed, wire.DeviceHealth{ID: dev.ID, Protocol: dev.Protocol, State: wire.DeviceDown, Errors: 1, LastError: err.Error()})
			continue
		}
		drivers = append(drivers, d)
	}
	return drivers, failed
}

func makeDriver(cfg *config.Agent, dev config.Device, pool *modbus.Pool, logger *slog.Logger) (Driver, error) {
	d := Driver{ID: dev.ID, Protocol: dev.Protocol, Interval: dev.Interval, Rules: map[string]pipeline.Rule{},
		Explain: func(err error) string { return lastError(dev, err) }}
	for _, p := range dev.Points {
		hb := p.Heartbeat
		if hb <= 0 {
			hb = dev.Heartbeat
		}
		d.Rules[p.Name] = pipeline.Rule{Scale: p.Scale, Offset: p.Offset, Deadband: p.Deadband, DeadbandPercent: p.DeadbandPercent, Heartbeat: hb}
	}
	switch dev.Protocol {
	case "modbus":
		if dev.Modbus == nil {
			return d, fmt.Errorf("device %q: no modbus section", dev.ID)
		}
		pts := make([]modbus.Point, len(dev.Points))
		for i, p := range dev.Points {
			pts[i] = modbus.Point{Name: p.Name, PointConfig: p.Modbus}
		}
		drv, err := pool.Driver(dev.ID, *dev.Modbus, pts)
		if err != nil {
			return d, err
		}
		d.Driver = drv
	case "opcua":
		if dev.OPCUA == nil {
			return d, fmt.Errorf("device %q: no opcua section", dev.ID)
		}
		pts := make([]opcua.Point, len(dev.Points))
		for i, p := range dev.Points {
			pts[i] = opcua.Point{Name: p.Name, PointConfig: p.OPCUA, Deadband: p.Deadband, DeadbandPercent: p.DeadbandPercent}
		}
		drv, err := opcua.New(dev.ID, *dev.OPCUA, pts, cfg.Agent.DataDir, logger)
		if err != nil {
			return d, err
		}
		d.Driver = drv
	default:
		return d, fmt.Errorf("device %q: unknown protocol %q", dev.ID, dev.Protocol)
	}
	return d, nil
}

// ExplainDevice says what to check for a device that failed, in the words
// probe uses for the same fault on a Modbus device (modbus.Explain); for
// other devices it is the error's text.
func ExplainDevice(d config.Device, err error) string {
	if d.Modbus == nil {
		return err.Error()
	}
	unit := modbus.DefaultUnit
	if d.Modbus.Unit != nil {
		unit = *d.Modbus.Unit
	}
	return modbus.Explain(err, d.Modbus.Target, unit, d.Modbus.Timeout)
}

// lastError is a device's error as its health shows it: ExplainDevice's
// sentence for the field engineer, then the error itself in parentheses
// when the sentence leaves it out, since it names the request that failed
// ("read holding 100..109").
func lastError(d config.Device, err error) string {
	raw, e := err.Error(), ExplainDevice(d, err)
	if strings.Contains(e, raw) {
		return e
	}
	return e + " (" + raw + ")"
}

// startCollection starts polling every device of cfg into app at once.
func startCollection(ctx context.Context, cfg *config.Agent, app pipeline.Appender, copts collect.Options, logger *slog.Logger) *collection {
	c := &collection{pool: modbus.NewPool(logger.With("component", "modbus"))}
	c.batcher = pipeline.NewBatcher(app, pipeline.Options{
		Agent:         cfg.Agent.ID,
		Site:          cfg.Agent.Site,
		MaxSamples:    cfg.Batch.MaxSamples,
		FlushInterval: cfg.Batch.FlushInterval,
		Logger:        logger.With("component", "pipeline"),
	})
	drivers, failed := Drivers(cfg, c.pool, logger.With("component", "drivers"))
	c.broken = failed
	var devs []collect.Device
	for _, d := range drivers {
		f := pipeline.NewFilter(d.Rules)
		c.filters = append(c.filters, f)
		devs = append(devs, collect.Device{ID: d.ID, Protocol: d.Protocol, Interval: d.Interval, Driver: d.Driver, Emit: c.batcher.Emitter(f), Explain: d.Explain})
	}
	for _, d := range cfg.Devices {
		if !d.Disabled {
			c.devices = append(c.devices, d.ID)
		}
	}
	c.points = StatusPoints(cfg)
	copts.Logger = logger.With("component", "collect")
	c.coll = collect.Start(ctx, devs, copts)
	return c
}

// stop stops the sources, then drains the pipeline into the spool.
func (c *collection) stop(ctx context.Context) error {
	c.coll.Stop()
	err := c.batcher.Close(ctx)
	c.pool.Close()
	return err
}

func (c *collection) health() []wire.DeviceHealth {
	return append(c.coll.Health(), c.broken...)
}

func (c *collection) suppressed() uint64 {
	var n uint64
	for _, f := range c.filters {
		n += f.Suppressed()
	}
	return n
}

// StatusPoints describes every point of every enabled device of cfg for the
// retained status: its unit and its data type on the device, so the gateway
// can show a value with its unit.
func StatusPoints(cfg *config.Agent) []wire.DevicePoints {
	var out []wire.DevicePoints
	for _, d := range cfg.Devices {
		if d.Disabled {
			continue
		}
		dp := wire.DevicePoints{Device: d.ID, Protocol: d.Protocol, Points: make([]wire.PointInfo, len(d.Points))}
		for i, p := range d.Points {
			dp.Points[i] = wire.PointInfo{Name: p.Name, Unit: p.Unit}
			if d.Protocol == "modbus" {
				mc := p.Modbus
				mc.SetDefaults() // a coil's type is bool without saying so
				dp.Points[i].Type = mc.Type
			}
		}
		out = append(out, dp)
	}
	return out
}

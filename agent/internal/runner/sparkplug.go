package runner

import (
	"context"
	"crypto/tls"
	"time"

	"github.com/weftiot/weft/agent/internal/sparkplug"
	"github.com/weftiot/weft/config"
	"github.com/weftiot/weft/wire"
)

// link is what the runner needs of its broker side: the native forwarder
// (mqtt.format: native) or the Sparkplug B edge node (sparkplug_b).
type link interface {
	Run(ctx context.Context) error
	Health() wire.ForwardHealth
	Connected() bool
	ConnectedAt() time.Time
	Publish(topic string, qos byte, retained bool, payload []byte, wait time.Duration) error
	PublishStatus() error
}

// edgeNode makes the Sparkplug B edge node of cfg: group = site, edge node =
// agent id, devices = the configured devices. Native commands and health
// keep their topics on the same connection.
func (a *Agent) edgeNode(cfg *config.Agent, tlsCfg *tls.Config) *sparkplug.EdgeNode {
	topics := wire.Topics{Prefix: cfg.MQTT.TopicPrefix}
	site, id := cfg.Agent.Site, cfg.Agent.ID
	return sparkplug.New(a.sp, sparkplug.Options{
		Broker:       cfg.MQTT.Broker,
		ClientID:     cfg.MQTT.ClientID,
		Username:     cfg.MQTT.Username,
		Password:     cfg.MQTT.Password,
		TLS:          tlsCfg,
		KeepAlive:    cfg.MQTT.KeepAlive,
		BackoffMin:   a.opts.BrokerBackoffMin,
		BackoffMax:   a.opts.BrokerBackoffMax,
		FlushTimeout: a.opts.FlushTimeout,
		Group:        site,
		EdgeNode:     id,
		PrimaryHost:  cfg.MQTT.Sparkplug.HostID,
		DataDir:      cfg.Agent.DataDir,
		Devices:      a.sparkplugDevices,
		MaxBatches:   cfg.MQTT.MaxInflight,
		Hold:         cfg.MQTT.Sparkplug.Hold,
		CmdFilter:    topics.CmdWildcard(site, id),
		OnCommand:    a.onCommand,
		OnConnect:    func() { a.publishHealth() },
		Logger:       a.log.With("component", "sparkplug"),
	})
}

// sparkplugDevices lists the running config's enabled devices, their points
// and whether their driver reports them down.
func (a *Agent) sparkplugDevices() []sparkplug.Device {
	a.mu.Lock()
	cfg, coll := a.cfg, a.coll
	a.mu.Unlock()
	down := map[string]bool{}
	if coll != nil {
		for _, h := range coll.health() {
			down[h.ID] = h.State == wire.DeviceDown
		}
	}
	var out []sparkplug.Device
	for _, d := range cfg.Devices {
		if d.Disabled {
			continue
		}
		sd := sparkplug.Device{ID: d.ID, Down: down[d.ID]}
		for _, p := range d.Points {
			sd.Points = append(sd.Points, sparkplug.Point{Name: p.Name, Unit: p.Unit})
		}
		out = append(out, sd)
	}
	return out
}

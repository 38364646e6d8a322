package config

import "time"

// Defaults of the agent's file; docs/config.md lists them with their keys.
const (
	DefaultAgentDataDir    = "/var/lib/weft"
	DefaultHealthInterval  = 10 * time.Second
	DefaultRollbackAfter   = 2 * time.Minute
	DefaultTopicPrefix     = "weft/v1"
	DefaultKeepAlive       = 30 * time.Second
	DefaultMaxInflight     = 32
	DefaultFormat          = "native"
	DefaultSpoolMaxBytes   = ByteSize(1 << 30)
	DefaultSpoolMaxAge     = 168 * time.Hour
	DefaultSpoolOverflow   = "drop_oldest"
	DefaultBatchMaxSamples = 1000
	DefaultFlushInterval   = time.Second
	DefaultDeviceInterval  = time.Second
	DefaultHeartbeat       = 60 * time.Second
	// DefaultSparkplugHold is mqtt.sparkplug.hold's: longer than the Weft
	// gateway's longest broker backoff (30 s) plus a connect.
	DefaultSparkplugHold = 60 * time.Second
)

// Defaults of the gateway's file.
const (
	DefaultGatewayID       = "gw-1"
	DefaultGatewayDataDir  = "/var/lib/weft-gateway"
	DefaultHTTP            = "127.0.0.1:8080"
	DefaultEmbeddedListen  = "127.0.0.1:1883"
	DefaultMeasurement     = "weft"
	DefaultInfluxBatchSize = 5000
	DefaultInfluxFlush     = time.Second
	DefaultOfflineAfter    = 2 * time.Minute
	DefaultBacklogAgeAfter = 10 * time.Minute
)

func orString(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

func orDuration(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

func orInt(i *int, def int) {
	if *i == 0 {
		*i = def
	}
}

// mqttDefaults fills the broker link; id is the agent's or gateway's id.
func mqttDefaults(m *MQTT, id string) {
	orString(&m.TopicPrefix, DefaultTopicPrefix)
	orString(&m.ClientID, id)
	orDuration(&m.KeepAlive, DefaultKeepAlive)
	orInt(&m.MaxInflight, DefaultMaxInflight)
	orString(&m.Format, DefaultFormat)
}

// agentDefaults fills every key left out of a valid agent file. c tells
// which keys were written (spool.max_age: 0 means keep forever).
func (c *checker) agentDefaults(a *Agent) {
	orString(&a.Agent.DataDir, DefaultAgentDataDir)
	orDuration(&a.Agent.HealthInterval, DefaultHealthInterval)
	orDuration(&a.Agent.RollbackAfter, DefaultRollbackAfter)
	mqttDefaults(&a.MQTT, a.Agent.ID)
	if a.MQTT.Format == "sparkplug_b" && a.MQTT.Sparkplug.HostID != "" {
		orDuration(&a.MQTT.Sparkplug.Hold, DefaultSparkplugHold)
	}
	if a.Spool.MaxBytes == 0 {
		a.Spool.MaxBytes = DefaultSpoolMaxBytes
	}
	if !c.set("spool.max_age") {
		a.Spool.MaxAge = DefaultSpoolMaxAge
	}
	orString(&a.Spool.Overflow, DefaultSpoolOverflow)
	orInt(&a.Batch.MaxSamples, DefaultBatchMaxSamples)
	orDuration(&a.Batch.FlushInterval, DefaultFlushInterval)
	for i := range a.Devices {
		dev := &a.Devices[i]
		orDuration(&dev.Interval, DefaultDeviceInterval)
		orDuration(&dev.Heartbeat, DefaultHeartbeat)
		if dev.Modbus != nil {
			dev.Modbus.SetDefaults()
		}
		if dev.OPCUA != nil {
			dev.OPCUA.SetDefaults(dev.Interval)
		}
		for j := range dev.Points {
			pointDefaults(&dev.Points[j], dev)
		}
	}
	for name, p := range a.Profiles {
		for j := range p.Points {
			pointDefaults(&p.Points[j], &Device{Protocol: p.Protocol, Interval: DefaultDeviceInterval, Heartbeat: DefaultHeartbeat})
		}
		a.Profiles[name] = p
	}
}

func pointDefaults(p *Point, dev *Device) {
	orDuration(&p.Heartbeat, dev.Heartbeat)
	if p.Scale == nil {
		one := 1.0
		p.Scale = &one
	}
	switch dev.Protocol {
	case "modbus":
		p.Modbus.SetDefaults()
	case "opcua":
		p.OPCUA.SetDefaults(dev.Interval)
	}
}

// gatewayDefaults fills every key left out of a valid gateway file.
func gatewayDefaults(g *Gateway) {
	orString(&g.Gateway.ID, DefaultGatewayID)
	orString(&g.Gateway.DataDir, DefaultGatewayDataDir)
	orString(&g.Gateway.HTTP, DefaultHTTP)
	orString(&g.Gateway.EmbeddedListen, DefaultEmbeddedListen)
	mqttDefaults(&g.MQTT, g.Gateway.ID)
	if g.MQTT.Sparkplug.Enabled {
		orString(&g.MQTT.Sparkplug.HostID, g.Gateway.ID)
	}
	if in := g.InfluxDB; in != nil {
		orString(&in.Measurement, DefaultMeasurement)
		orInt(&in.BatchSize, DefaultInfluxBatchSize)
		orDuration(&in.FlushInterval, DefaultInfluxFlush)
	}
	orDuration(&g.Alerts.OfflineAfter, DefaultOfflineAfter)
	orDuration(&g.Alerts.BacklogAgeAfter, DefaultBacklogAgeAfter)
}

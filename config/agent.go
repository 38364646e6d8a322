package config

import (
	"time"

	"github.com/weftiot/weft/protocols/modbus"
	"github.com/weftiot/weft/protocols/opcua"
)

// Agent is the agent's configuration file, schema v1. Extend it; never rename
// a key: field engineers' files in plants depend on it.
type Agent struct {
	Agent    AgentSection       `yaml:"agent"`
	MQTT     MQTT               `yaml:"mqtt"`
	Spool    Spool              `yaml:"spool"`
	Batch    Batch              `yaml:"batch"`
	Metrics  Metrics            `yaml:"metrics"`
	Profiles map[string]Profile `yaml:"profiles"`
	Devices  []Device           `yaml:"devices"`

	hash string // of the file it was loaded from; see Hash
}

// AgentSection names the agent.
type AgentSection struct {
	ID      string `yaml:"id"`   // required; [A-Za-z0-9_.-]+, unique in the fleet
	Site    string `yaml:"site"` // required; same alphabet
	DataDir string `yaml:"data_dir"`
	// HealthInterval is how often health is published (default 10s).
	HealthInterval time.Duration `yaml:"health_interval"`
	// RollbackAfter is how long a config pushed by the platform may go
	// without reaching the broker before the previous one is restored
	// (default 2m).
	RollbackAfter time.Duration `yaml:"rollback_after"`
}

// MQTT is the link to the broker. Used by the agent and the gateway.
type MQTT struct {
	// Broker is tcp://host:port, ssl://host:port (or tls://, mqtts://),
	// ws://host:port/path; the gateway also accepts "embedded".
	Broker       string `yaml:"broker"`
	TopicPrefix  string `yaml:"topic_prefix"` // default weft/v1
	ClientID     string `yaml:"client_id"`    // default the agent or gateway id
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	TLS          TLS    `yaml:"tls"`
	// KeepAlive is the MQTT keepalive (default 30s).
	KeepAlive time.Duration `yaml:"keepalive"`
	// MaxInflight is how many batches may await PUBACK at once (default 32).
	MaxInflight int `yaml:"max_inflight"`
	// Format is native (default) or sparkplug_b.
	Format string `yaml:"format"`
	// SharedGroup is the gateway's $share group of the data subscription.
	// Empty (the key left out, the default): no group; the gateway
	// subscribes to the data itself, which Mosquitto keeps across its
	// restart. A name shares the data among the gateways of that group.
	SharedGroup string `yaml:"shared_group"`
	// Sparkplug is the Sparkplug B side (docs/sparkplug.md).
	Sparkplug Sparkplug `yaml:"sparkplug"`
}

// Sparkplug configures Sparkplug B. In the agent (with format: sparkplug_b)
// HostID names the primary host application whose STATE decides when data
// is published (empty: publish whenever connected), and Hold is how long
// what the agent sends after a birth on a retained STATE online stays in
// its spool in case the host was not really there (default 60s;
// docs/sparkplug.md, "Across a broker restart"). In the gateway, Enabled
// makes it a Sparkplug host application with STATE topic id HostID
// (default the gateway's id).
type Sparkplug struct {
	Enabled bool          `yaml:"enabled"` // gateway only
	HostID  string        `yaml:"host_id"`
	Hold    time.Duration `yaml:"hold"` // agent only
}

// TLS is a client or server TLS setup; files are PEM.
type TLS struct {
	CA                 string `yaml:"ca"`
	Cert               string `yaml:"cert"`
	Key                string `yaml:"key"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Spool bounds the agent's on-disk backlog.
type Spool struct {
	MaxBytes ByteSize      `yaml:"max_bytes"` // default 1GiB
	MaxAge   time.Duration `yaml:"max_age"`   // default 168h; 0 keeps forever
	Overflow string        `yaml:"overflow"`  // drop_oldest (default) or drop_newest
}

// Batch is how samples are grouped into data messages.
type Batch struct {
	MaxSamples    int           `yaml:"max_samples"`    // default 1000
	FlushInterval time.Duration `yaml:"flush_interval"` // default 1s
}

// Metrics is the agent's local HTTP endpoint (/metrics, /healthz); off when
// Listen is empty.
type Metrics struct {
	Listen string `yaml:"listen"`
}

// Profile is a device template: one point map for many identical machines.
type Profile struct {
	Protocol string  `yaml:"protocol"` // modbus or opcua
	Points   []Point `yaml:"points"`
}

// Device is one machine.
type Device struct {
	ID       string            `yaml:"id"`
	Profile  string            `yaml:"profile"`
	Protocol string            `yaml:"protocol"` // taken from the profile when empty
	Interval time.Duration     `yaml:"interval"` // default 1s
	Disabled bool              `yaml:"disabled"`
	Tags     map[string]string `yaml:"tags"`
	// Heartbeat is the default heartbeat of its points (default 60s).
	Heartbeat time.Duration        `yaml:"heartbeat"`
	Modbus    *modbus.DeviceConfig `yaml:"modbus"`
	OPCUA     *opcua.DeviceConfig  `yaml:"opcua"`
	// Points override the profile's points of the same name and extend it
	// with new ones.
	Points []Point `yaml:"points"`
}

// Point is one value of a device. The protocol-specific keys sit beside the
// common ones; a key of the other protocol is an error.
type Point struct {
	Name string `yaml:"name"`
	Unit string `yaml:"unit"`
	// Deadband reports a change only when it exceeds this absolute amount;
	// DeadbandPercent, when it exceeds this percent of the last reported value.
	Deadband        *float64      `yaml:"deadband"`
	DeadbandPercent *float64      `yaml:"deadband_percent"`
	Heartbeat       time.Duration `yaml:"heartbeat"`
	// Scale and Offset: value*scale + offset.
	Scale  *float64 `yaml:"scale"`
	Offset float64  `yaml:"offset"`

	// Modbus and OPCUA hold the protocol's keys, written inline in the point.
	Modbus modbus.PointConfig `yaml:",inline"`
	OPCUA  opcua.PointConfig  `yaml:",inline"`
}

package config

import "time"

// Gateway is the platform gateway's configuration file, schema v1.
type Gateway struct {
	Gateway  GatewaySection `yaml:"gateway"`
	MQTT     MQTT           `yaml:"mqtt"`
	InfluxDB *InfluxDB      `yaml:"influxdb"` // nil: embedded recent-window store only
	Auth     Auth           `yaml:"auth"`
	Alerts   Alerts         `yaml:"alerts"`

	hash string // of the file it was loaded from; see Hash
}

// GatewaySection names the gateway instance.
type GatewaySection struct {
	ID      string `yaml:"id"`
	DataDir string `yaml:"data_dir"`
	HTTP    string `yaml:"http"` // listen address of API and dashboard (default 127.0.0.1:8080)
	// EmbeddedListen is where the embedded broker listens when mqtt.broker
	// is "embedded" (default 127.0.0.1:1883).
	EmbeddedListen string `yaml:"embedded_listen"`
}

// InfluxDB is where data is stored.
type InfluxDB struct {
	URL           string        `yaml:"url"`
	Org           string        `yaml:"org"`
	Bucket        string        `yaml:"bucket"` // for 1.8: db/rp
	Token         string        `yaml:"token"`
	TokenFile     string        `yaml:"token_file"`
	Measurement   string        `yaml:"measurement"` // default weft
	BatchSize     int           `yaml:"batch_size"`  // default 5000
	FlushInterval time.Duration `yaml:"flush_interval"`
}

// Auth lists API tokens. Admin tokens may push configs; read tokens may only look.
type Auth struct {
	AdminTokens []string `yaml:"admin_tokens"`
	ReadTokens  []string `yaml:"read_tokens"`
}

// Alerts are the thresholds of the fleet alert rules.
type Alerts struct {
	OfflineAfter    time.Duration `yaml:"offline_after"`     // default 2m
	BacklogAgeAfter time.Duration `yaml:"backlog_age_after"` // default 10m
}

package wire

// Status is the retained message on {prefix}/{site}/{agent}/status. The agent
// publishes State "online" when it connects; its MQTT will publishes the same
// message with State "offline".
type Status struct {
	V          int      `json:"v"`
	Agent      string   `json:"agent"`
	Site       string   `json:"site"`
	State      string   `json:"state"` // "online" or "offline"
	Version    string   `json:"version,omitempty"`
	ConfigHash string   `json:"config_hash,omitempty"`
	Started    int64    `json:"started,omitempty"` // ms since epoch
	Devices    []string `json:"devices,omitempty"`
	// Points describes the configured points of each device (unit, data
	// type), so the gateway can show a value with its unit. Only the online
	// status carries it: the will and the offline status leave it out (an
	// MQTT will is at most 64 KiB), and a receiver keeps what the last
	// online status said. Absent from agents older than this key.
	Points []DevicePoints `json:"points,omitempty"`
	TS     int64          `json:"ts"` // ms since epoch
}

// DevicePoints is what the agent's config says about one device's points.
type DevicePoints struct {
	Device   string      `json:"device"`
	Protocol string      `json:"protocol,omitempty"` // modbus, opcua
	Points   []PointInfo `json:"points"`
}

// PointInfo is one configured point: its name, the unit of its (scaled)
// value and its data type on the device, each omitted when not configured.
type PointInfo struct {
	Name string `json:"name"`
	Unit string `json:"unit,omitempty"` // as written in the config: "°C", "m³/h", "rpm"
	Type string `json:"type,omitempty"` // the protocol's data type: Modbus "float32", …
}

// Agent states carried by Status.State.
const (
	Online  = "online"
	Offline = "offline"
)

// Health is published on {prefix}/{site}/{agent}/health every health interval
// (not retained). It is what the fleet view shows about an agent.
type Health struct {
	V          int            `json:"v"`
	Agent      string         `json:"agent"`
	Site       string         `json:"site"`
	TS         int64          `json:"ts"`
	Version    string         `json:"version,omitempty"`
	ConfigHash string         `json:"config_hash,omitempty"`
	UptimeS    int64          `json:"uptime_s"`
	Spool      SpoolHealth    `json:"spool"`
	Forwarder  ForwardHealth  `json:"forwarder"`
	Devices    []DeviceHealth `json:"devices"`
}

// SpoolHealth is the backlog of the agent's durable spool.
type SpoolHealth struct {
	Batches       int64  `json:"batches"`
	Bytes         int64  `json:"bytes"`
	Samples       int64  `json:"samples"`
	OldestAgeMs   int64  `json:"oldest_age_ms"`
	DroppedOldest uint64 `json:"dropped_oldest"` // samples dropped by drop_oldest or max_age
	DroppedNewest uint64 `json:"dropped_newest"` // samples refused by drop_newest
	// DroppedExpired is the part of DroppedOldest dropped by max_age.
	DroppedExpired uint64 `json:"dropped_expired"`
	// DroppedCorrupt counts samples lost with a corrupt spool file or batch.
	DroppedCorrupt uint64 `json:"dropped_corrupt"`
	// LostSamples counts samples the pipeline could not append to the
	// spool: refused by drop_newest (also in DroppedNewest), failed to store
	// (disk errors), or arrived while the agent stopped.
	LostSamples uint64 `json:"lost_samples"`
	LastSeq     uint64 `json:"last_seq"`
}

// ForwardHealth is the agent's link to the broker.
type ForwardHealth struct {
	Connected      bool   `json:"connected"`
	PublishedBatch uint64 `json:"published_batches"`
	PublishedSamp  uint64 `json:"published_samples"`
	Reconnects     uint64 `json:"reconnects"`
	LastError      string `json:"last_error,omitempty"`
	// SamplesPerS and BatchesPerS are the publish rate (acknowledged by the
	// broker) since the previous health message, or since the agent started
	// for the first one.
	SamplesPerS float64 `json:"samples_per_s"`
	BatchesPerS float64 `json:"batches_per_s"`
}

// DeviceHealth is one device as its driver sees it.
type DeviceHealth struct {
	ID       string `json:"id"`
	Protocol string `json:"protocol"`
	State    string `json:"state"` // DeviceOK, DeviceDegraded or DeviceDown
	Reads    uint64 `json:"reads"`
	Errors   uint64 `json:"errors"`
	// ErrorsByKind counts the driver's failed requests by kind (the Error*
	// constants); kinds never seen are left out, and so is the map for a
	// driver that does not count them.
	ErrorsByKind map[string]uint64 `json:"errors_by_kind,omitempty"`
	Requests     uint64            `json:"requests,omitempty"` // protocol requests (Modbus PDUs, OPC UA Reads)
	Overruns     uint64            `json:"overruns,omitempty"`
	LatencyMs    float64           `json:"latency_ms"` // last read's round trip
	LastError    string            `json:"last_error,omitempty"`
	LastOK       int64             `json:"last_ok,omitempty"` // ms since epoch
	Samples      uint64            `json:"samples"`
}

// Device states.
const (
	DeviceOK       = "ok"
	DeviceDegraded = "degraded"
	DeviceDown     = "down"
)

// Kinds of device errors in DeviceHealth.ErrorsByKind.
const (
	ErrorTimeout   = "timeout"    // no answer in time
	ErrorIO        = "io"         // connection refused, reset or closed
	ErrorFrame     = "frame"      // a malformed or mismatched answer
	ErrorException = "exception"  // a Modbus exception answer
	ErrorBadStatus = "bad_status" // an OPC UA service or value with a Bad status
	ErrorBadValue  = "bad_value"  // a value that cannot be a reading (NaN, infinite)
)

// Command is published by the gateway on {prefix}/{site}/{agent}/cmd/{name}.
// The agent answers on {prefix}/{site}/{agent}/reply/{id}.
type Command struct {
	V    int    `json:"v"`
	ID   string `json:"id"`
	Name string `json:"name"` // CmdConfig, CmdStatus
	// Config is the new configuration file (YAML text) for CmdConfig.
	Config string `json:"config,omitempty"`
	TS     int64  `json:"ts"`
}

// Command names.
const (
	CmdConfig = "config"
	CmdStatus = "status"
)

// Reply answers one Command.
type Reply struct {
	V          int      `json:"v"`
	ID         string   `json:"id"`
	OK         bool     `json:"ok"`
	Error      string   `json:"error,omitempty"`
	Errors     []string `json:"errors,omitempty"` // config validation problems, one per line
	ConfigHash string   `json:"config_hash,omitempty"`
	Health     *Health  `json:"health,omitempty"` // for CmdStatus
	TS         int64    `json:"ts"`
}

package modbus

import "time"

// DeviceConfig is the `modbus:` section of a device in the agent's config.
type DeviceConfig struct {
	// Target is tcp://host:port, rtuovertcp://host:port,
	// rtu:///dev/ttyUSB0?baud=9600&parity=N&data_bits=8&stop_bits=1 or
	// ascii:///dev/ttyS1?... .
	Target string `yaml:"target"`
	// Unit is the slave id, 0..247 (default 1).
	Unit *int `yaml:"unit"`
	// Timeout is the per-request timeout (default 1s).
	Timeout time.Duration `yaml:"timeout"`
	// Retries is how often a failed request is retried (default 2).
	Retries *int `yaml:"retries"`
	// MaxRegistersPerRequest caps a register request below the protocol's
	// 125 (default 125).
	MaxRegistersPerRequest int `yaml:"max_registers_per_request"`
	// MaxBitsPerRequest caps a coil/discrete request below 2000 (default 2000).
	MaxBitsPerRequest int `yaml:"max_bits_per_request"`
	// MaxGap is how many unrequested registers may be read through to merge
	// two requests (default 10; 0 merges only adjacent ranges).
	MaxGap *int `yaml:"max_gap"`
	// InterRequestDelay is a pause between requests on a shared line.
	InterRequestDelay time.Duration `yaml:"inter_request_delay"`
	// MaxInflight is how many requests may be outstanding at once on the
	// device's Modbus TCP connection, 1..32 (default 1: one at a time).
	// Only tcp:// targets take more than 1; devices sharing a target use
	// the smallest value among them, and 1 when any has an
	// inter_request_delay.
	MaxInflight *int `yaml:"max_inflight"`
	// Writes enables function codes 5, 6, 15, 16 (setpoint writes); off by default.
	Writes bool `yaml:"writes"`
}

// PointConfig is the Modbus part of a point.
type PointConfig struct {
	// Table is coil, discrete, input or holding.
	Table string `yaml:"table"`
	// Address is the 0-based protocol address, 0..65535.
	Address *int `yaml:"address"`
	// Type is bool, bit, int16, uint16, int32, uint32, int64, uint64,
	// float32, float64 or string.
	Type string `yaml:"type"`
	// Order is ABCD (default), DCBA, BADC or CDAB.
	Order string `yaml:"order"`
	// Bit is the bit of a register for type bit, 0..15.
	Bit *int `yaml:"bit"`
	// Length is the register count of a string.
	Length int `yaml:"length"`
}

package modbus

import _ "embed"

// Sample is the commented sample of a Modbus device in the agent's config: a
// list of devices (YAML at column 0), which the config package indents under
// devices: when it assembles `weft-agent config sample`.
//
//go:embed sample.yaml
var Sample []byte

package config

import (
	"bytes"
	_ "embed"

	"github.com/weftiot/weft/protocols/modbus"
	"github.com/weftiot/weft/protocols/opcua"
)

//go:embed agent_sample.yaml
var agentSample []byte

//go:embed gateway_sample.yaml
var gatewaySample []byte

// AgentSample is a complete, commented agent config: config/agent_sample.yaml
// with each driver's own sample (protocols/*/sample.yaml) put in place of its
// "# @protocol" line under devices:.
func AgentSample() []byte {
	out := agentSample
	for _, s := range []struct {
		marker string
		sample []byte
	}{{"  # @modbus\n", modbus.Sample}, {"  # @opcua\n", opcua.Sample}} {
		out = bytes.Replace(out, []byte(s.marker), indent(s.sample, "  "), 1)
	}
	return out
}

// GatewaySample is a complete, commented gateway config.
func GatewaySample() []byte {
	return bytes.Clone(gatewaySample)
}

// indent puts prefix before every non-empty line.
func indent(b []byte, prefix string) []byte {
	var out bytes.Buffer
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) > 0 {
			out.WriteString(prefix)
		}
		out.Write(line)
	}
	if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
		out.WriteByte('\n')
	}
	return out.Bytes()
}

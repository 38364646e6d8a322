// Package cli is the weft-agent command line: the long-running `run`, and the
// field tools an engineer uses next to a PLC (`probe`, `scan`, `browse`,
// `once`, `config check`).
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/weftiot/weft/internal/command"
	"github.com/weftiot/weft/internal/version"
)

// Env is what a command gets (internal/command).
type Env = command.Env

// commands is the table of every command, by its words.
var commands = map[string]command.Command{
	"run":           {Summary: "collect from every device and forward to the broker (the service)", Run: runCmd},
	"once":          {Summary: "poll every configured device once and print the samples (--plan: the request plan)", Run: onceCmd},
	"config check":  {Summary: "validate a config file without touching any device or broker", Run: configCheckCmd},
	"config sample": {Summary: "print a complete, commented sample config", Run: configSampleCmd},
	"probe modbus":  {Summary: "read registers and show them decoded as every type and byte order", Run: probeModbusCmd},
	"scan modbus":   {Summary: "list the Modbus unit ids that answer on a target", Run: scanModbusCmd},
	"browse opcua":  {Summary: "print an OPC UA server's address space (--config: a points section)", Run: browseOPCUACmd},
	"version":       {Summary: "print version, commit, Go version and build date", Run: versionCmd},
}

// Main runs the command named by args and returns the process exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, logger *slog.Logger) int {
	return command.Set{
		Binary: "weft-agent",
		About: []string{
			"weft-agent: the Weft edge agent. Reads PLCs over Modbus and OPC UA, keeps every",
			"reading on disk, and forwards it over MQTT to the platform gateway.",
		},
		Docs:     "docs/README.md",
		Commands: commands,
	}.Main(ctx, args, stdout, stderr, logger)
}

func versionCmd(ctx context.Context, env Env) int {
	fmt.Fprintln(env.Stdout, version.String("weft-agent"))
	return 0
}

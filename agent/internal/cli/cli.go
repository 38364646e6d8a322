// Package cli is the weft-agent command line: the long-running `run`, and the
// field tools an engineer uses next to a PLC (`probe`, `scan`, `browse`,
// `once`, `config check`).
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"github.com/weftiot/weft/internal/version"
)

// Env is what a command gets: its arguments (after the command words), its
// output streams and a logger that writes to Stderr.
type Env struct {
	Args   []string
	Stdout io.Writer
	Stderr io.Writer
	Logger *slog.Logger
}

// command is one entry of the command table. run returns the exit status.
type command struct {
	summary string
	run     func(ctx context.Context, env Env) int
}

// commands is the table of every command, by its words.
var commands = map[string]command{
	"run":           {"collect from every device and forward to the broker (the service)", runCmd},
	"once":          {"poll every configured device once and print the samples (--plan: the request plan)", onceCmd},
	"config check":  {"validate a config file without touching any device or broker", configCheckCmd},
	"config sample": {"print a complete, commented sample config", configSampleCmd},
	"probe modbus":  {"read registers and show them decoded as every type and byte order", probeModbusCmd},
	"scan modbus":   {"list the Modbus unit ids that answer on a target", scanModbusCmd},
	"browse opcua":  {"print an OPC UA server's address space (--config: a points section)", browseOPCUACmd},
	"version":       {"print version, commit, Go version and build date", versionCmd},
}

// Main runs the command named by args and returns the process exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, logger *slog.Logger) int {
	for words := 2; words >= 1; words-- {
		if len(args) < words {
			continue
		}
		name := strings.Join(args[:words], " ")
		if c, ok := commands[name]; ok {
			return c.run(ctx, Env{Args: args[words:], Stdout: stdout, Stderr: stderr, Logger: logger})
		}
	}
	if len(args) > 0 && args[0] != "help" && args[0] != "-h" && args[0] != "--help" {
		fmt.Fprintf(stderr, "weft-agent: unknown command %q\n\n", strings.Join(args, " "))
		usage(stderr)
		return 2
	}
	usage(stdout)
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "weft-agent: the Weft edge agent. Reads PLCs over Modbus and OPC UA, keeps every")
	fmt.Fprintln(w, "reading on disk, and forwards it over MQTT to the platform gateway.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-14s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'weft-agent COMMAND --help' for a command's flags. Docs: docs/README.md")
}

func versionCmd(ctx context.Context, env Env) int {
	fmt.Fprintln(env.Stdout, version.String("weft-agent"))
	return 0
}

// Package cli is the weft-gateway command line: `run` (the service),
// `config check`, `config sample` and `version`.
package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/weftiot/weft/config"
	"github.com/weftiot/weft/gateway/internal/api"
	"github.com/weftiot/weft/gateway/internal/dashboard"
	"github.com/weftiot/weft/gateway/internal/gateway"
	"github.com/weftiot/weft/internal/command"
	"github.com/weftiot/weft/internal/version"
)

// Env is what a command gets (internal/command).
type Env = command.Env

var commands = map[string]command.Command{
	"run":           {Summary: "receive the fleet's data and store it; serve the API (the service)", Run: runCmd},
	"config check":  {Summary: "validate a gateway config file without connecting to anything", Run: configCheckCmd},
	"config sample": {Summary: "print a complete, commented sample config", Run: configSampleCmd},
	"version":       {Summary: "print version, commit, Go version and build date", Run: versionCmd},
}

// Main runs the command named by args and returns the process exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, logger *slog.Logger) int {
	return command.Set{
		Binary: "weft-gateway",
		About: []string{
			"weft-gateway: the Weft platform gateway. Receives every agent's data over MQTT,",
			"stores it in InfluxDB, keeps the fleet's state and serves the API and dashboard.",
		},
		Docs:     "docs/gateway.md",
		Commands: commands,
	}.Main(ctx, args, stdout, stderr, logger)
}

const runUsage = `usage: weft-gateway run --config FILE

Runs the gateway until SIGINT or SIGTERM: subscribes to every agent's data,
status and health, stores data in InfluxDB (or, without an influxdb section,
keeps the last hour per point), and serves the HTTP API. Logs go to standard
error; WEFT_LOG_LEVEL=debug|info|warn|error sets the level.

Exit status: 0 after a clean stop, 1 when the config is bad or the gateway
cannot start, 2 on wrong usage.
`

func runCmd(ctx context.Context, env Env) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	file := fs.String("config", "", "the gateway config file")
	if code, done := command.ParseFlags(fs, env, runUsage); done {
		return code
	}
	if *file == "" || fs.NArg() != 0 {
		fmt.Fprint(env.Stderr, "weft-gateway run: give --config FILE and nothing else\n\n"+runUsage)
		return 2
	}
	cfg, err := config.LoadGateway(*file)
	if problems := config.AsErrors(err); problems != nil {
		for _, p := range problems {
			fmt.Fprintln(env.Stderr, p)
		}
		return 1
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "weft-gateway: %v\n", err)
		return 1
	}
	if errs := config.CheckGatewaySecrets(*file, cfg); len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintln(env.Stderr, e)
		}
		fmt.Fprintf(env.Stderr, "%s: %d secret(s) readable by every user of this box; the gateway did not start\n", *file, len(errs))
		return 1
	}
	// The dashboard shares the API's listener; its sampler stops with ctx.
	mount := func(s *api.Server) {
		if _, err := dashboard.Mount(ctx, s, dashboard.Options{Log: env.Logger}); err != nil {
			env.Logger.Error("the dashboard cannot start; serving the API only", "error", err)
		}
	}
	if err := gateway.Run(ctx, cfg, gateway.Options{Log: env.Logger, Mount: mount}); err != nil {
		env.Logger.Error("gateway failed", "error", err)
		return 1
	}
	return 0
}

const configCheckUsage = `usage: weft-gateway config check FILE

Checks a gateway config file without connecting to anything. Every problem is
printed, one per line, as FILE:LINE:COL: path.to.key: what is wrong; what is
allowed. ${VAR} values are taken from the environment and token_file and
password_file files are read, as the service would.

Exit status: 0 when the file is good (a one-line summary is printed),
1 when it has problems or cannot be read, 2 on wrong usage.
`

func configCheckCmd(ctx context.Context, env Env) int {
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	if code, done := command.ParseFlags(fs, env, configCheckUsage); done {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprint(env.Stderr, "weft-gateway config check: give one config file\n\n"+configCheckUsage)
		return 2
	}
	file := fs.Arg(0)
	g, err := config.LoadGateway(file)
	return command.ReportCheck(env, file, err, func() string { return g.Summary() })
}

const configSampleUsage = `usage: weft-gateway config sample

Prints a complete, commented gateway config to standard output. Start from it:
  weft-gateway config sample > gateway.yaml
`

func configSampleCmd(ctx context.Context, env Env) int {
	fs := flag.NewFlagSet("config sample", flag.ContinueOnError)
	if code, done := command.ParseFlags(fs, env, configSampleUsage); done {
		return code
	}
	if fs.NArg() != 0 {
		fmt.Fprint(env.Stderr, "weft-gateway config sample: takes no arguments\n\n"+configSampleUsage)
		return 2
	}
	if _, err := env.Stdout.Write(config.GatewaySample()); err != nil {
		return 1
	}
	return 0
}

func versionCmd(ctx context.Context, env Env) int {
	fmt.Fprintln(env.Stdout, version.String("weft-gateway"))
	return 0
}

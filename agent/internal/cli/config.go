package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/weftiot/weft/config"
	"github.com/weftiot/weft/internal/command"
)

const configCheckUsage = `usage: weft-agent config check FILE

Checks an agent config file without touching any device or broker: unknown
or misspelt keys, wrong types, missing keys, bad addresses, duplicate ids,
out-of-range registers, unknown profiles. Every problem is printed, one per
line, as FILE:LINE:COL: path.to.key: what is wrong; what is allowed.
${VAR} values are taken from the environment and password_file files are
read, as the service would.

Exit status: 0 when the file is good (a one-line summary is printed),
1 when it has problems or cannot be read, 2 on wrong usage.
`

const configSampleUsage = `usage: weft-agent config sample

Prints a complete, commented agent config to standard output. Start from it:
  weft-agent config sample > agent.yaml
`

// configCheckCmd validates a config file; see configCheckUsage.
func configCheckCmd(ctx context.Context, env Env) int {
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	if code, done := command.ParseFlags(fs, env, configCheckUsage); done {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprint(env.Stderr, "weft-agent config check: give one config file\n\n"+configCheckUsage)
		return 2
	}
	file := fs.Arg(0)
	a, err := config.LoadAgent(file)
	return command.ReportCheck(env, file, err, func() string { return a.Summary() })
}

// configSampleCmd prints the commented sample config.
func configSampleCmd(ctx context.Context, env Env) int {
	fs := flag.NewFlagSet("config sample", flag.ContinueOnError)
	if code, done := command.ParseFlags(fs, env, configSampleUsage); done {
		return code
	}
	if fs.NArg() != 0 {
		fmt.Fprint(env.Stderr, "weft-agent config sample: takes no arguments\n\n"+configSampleUsage)
		return 2
	}
	if _, err := env.Stdout.Write(config.AgentSample()); err != nil {
		fmt.Fprintf(env.Stderr, "weft-agent: %v\n", err)
		return 1
	}
	return 0
}

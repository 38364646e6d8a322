package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/weftiot/weft/config"
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
	if code, done := parseFlags(fs, env, configCheckUsage); done {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprint(env.Stderr, "weft-agent config check: give one config file\n\n"+configCheckUsage)
		return 2
	}
	file := fs.Arg(0)
	a, err := config.LoadAgent(file)
	return reportCheck(env.Stdout, env.Stderr, file, err, func() string { return a.Summary() })
}

// reportCheck prints the outcome of a config check and returns the exit
// status: each problem on stdout, a count on stderr.
func reportCheck(stdout, stderr io.Writer, file string, err error, summary func() string) int {
	if problems := config.AsErrors(err); problems != nil {
		for _, p := range problems {
			fmt.Fprintln(stdout, p)
		}
		n := len(problems)
		word := "problems"
		if n == 1 {
			word = "problem"
		}
		fmt.Fprintf(stderr, "%s: %d %s\n", file, n, word)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "weft-agent: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok: %s\n", file, summary())
	return 0
}

// configSampleCmd prints the commented sample config.
func configSampleCmd(ctx context.Context, env Env) int {
	fs := flag.NewFlagSet("config sample", flag.ContinueOnError)
	if code, done := parseFlags(fs, env, configSampleUsage); done {
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

// parseFlags parses env.Args into fs. done is true when the command should
// stop with code: --help (usage on stdout, 0) or a bad flag (usage on
// stderr, 2).
func parseFlags(fs *flag.FlagSet, env Env, usage string) (code int, done bool) {
	fs.SetOutput(io.Discard)
	err := fs.Parse(env.Args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(env.Stdout, usage)
		return 0, true
	case err != nil:
		fmt.Fprintf(env.Stderr, "weft-agent %s: %v\n\n%s", fs.Name(), err, usage)
		return 2, true
	}
	return 0, false
}

// Package command is the command-line frame both Weft binaries share: a
// table of commands named by one or two words, the usage listing, flag
// parsing with --help, and the report of a config check. The commands
// themselves live with their binary (agent/internal/cli, gateway/internal/cli).
package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"github.com/weftiot/weft/config"
)

// Env is what a command gets: its arguments (after the command words), its
// output streams, a logger that writes to Stderr, and the binary's name for
// its messages.
type Env struct {
	Args   []string
	Stdout io.Writer
	Stderr io.Writer
	Logger *slog.Logger
	Binary string
}

// Command is one entry of a binary's command table. Run returns the exit
// status: 0 done, 1 failed, 2 wrong usage.
type Command struct {
	Summary string
	Run     func(ctx context.Context, env Env) int
}

// Set is a binary's commands.
type Set struct {
	Binary   string   // weft-agent
	About    []string // lines printed above the command list
	Docs     string   // where the docs start, for the last usage line
	Commands map[string]Command
}

// Main runs the command named by args (two words tried before one) and
// returns the process exit status.
func (s Set) Main(ctx context.Context, args []string, stdout, stderr io.Writer, logger *slog.Logger) int {
	for words := 2; words >= 1; words-- {
		if len(args) < words {
			continue
		}
		if c, ok := s.Commands[strings.Join(args[:words], " ")]; ok {
			return c.Run(ctx, Env{Args: args[words:], Stdout: stdout, Stderr: stderr, Logger: logger, Binary: s.Binary})
		}
	}
	if len(args) > 0 && args[0] != "help" && args[0] != "-h" && args[0] != "--help" {
		fmt.Fprintf(stderr, "%s: unknown command %q\n\n", s.Binary, strings.Join(args, " "))
		s.usage(stderr)
		return 2
	}
	s.usage(stdout)
	return 0
}

func (s Set) usage(w io.Writer) {
	for _, l := range s.About {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	names := make([]string, 0, len(s.Commands))
	for n := range s.Commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-14s %s\n", n, s.Commands[n].Summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Run '%s COMMAND --help' for a command's flags. Docs: %s\n", s.Binary, s.Docs)
}

// ParseFlags parses env.Args into fs. done is true when the command should
// stop with code: --help (usage on stdout, 0) or a bad flag (the error and
// usage on stderr, 2).
func ParseFlags(fs *flag.FlagSet, env Env, usage string) (code int, done bool) {
	fs.SetOutput(io.Discard)
	err := fs.Parse(env.Args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(env.Stdout, usage)
		return 0, true
	case err != nil:
		fmt.Fprintf(env.Stderr, "%s %s: %v\n\n%s", env.Binary, fs.Name(), err, usage)
		return 2, true
	}
	return 0, false
}

// ReportCheck prints the outcome of loading a config file and returns the
// exit status: each problem on stdout and a count on stderr (1), another
// error on stderr (1), or "FILE: ok: summary" (0).
func ReportCheck(env Env, file string, err error, summary func() string) int {
	if problems := config.AsErrors(err); problems != nil {
		for _, p := range problems {
			fmt.Fprintln(env.Stdout, p)
		}
		word := "problems"
		if len(problems) == 1 {
			word = "problem"
		}
		fmt.Fprintf(env.Stderr, "%s: %d %s\n", file, len(problems), word)
		return 1
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "%s: %v\n", env.Binary, err)
		return 1
	}
	fmt.Fprintf(env.Stdout, "%s: ok: %s\n", file, summary())
	return 0
}

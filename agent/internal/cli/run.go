package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/weftiot/weft/agent/internal/runner"
	"github.com/weftiot/weft/config"
	"github.com/weftiot/weft/internal/command"
)

const runUsage = `usage: weft-agent run --config FILE [--log-format text|json] [--log-level LEVEL]
                     [--rollback-after D] [--http ADDR]

Runs the agent: polls every configured device, keeps every reading in the
spool (data_dir/spool.db) and forwards it to the MQTT broker. Collection
starts at once, whether or not the broker is reachable.

Signals: SIGTERM or Ctrl-C stops (devices first, then the pipeline drains
into the spool, the forwarder publishes what it can within 5s, the spool
closes last). SIGHUP reads the config file again; a file with problems is
reported and the running config kept.

Flags:
  --config FILE         the agent config (required)
  --log-format FORMAT   text (default) or json
  --log-level LEVEL     debug, info (default), warn or error
  --rollback-after D    how long a config pushed by the platform may go
                        without reaching the broker before the previous one
                        is restored (default: the config's
                        agent.rollback_after, 2m)
  --http ADDR           serve /metrics, /healthz, /readyz and a status page
                        on ADDR, e.g. 127.0.0.1:9100 (default: the config's
                        metrics.listen; off when both are empty)

Exit status: 0 after a clean stop, 1 when the config has problems or the
agent could not start.
`

func runCmd(ctx context.Context, env Env) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	file := fs.String("config", "", "")
	format := fs.String("log-format", "text", "")
	level := fs.String("log-level", "", "")
	rollback := fs.Duration("rollback-after", 0, "")
	httpListen := fs.String("http", "", "")
	if code, done := command.ParseFlags(fs, env, runUsage); done {
		return code
	}
	if *file == "" && fs.NArg() == 1 {
		*file = fs.Arg(0)
	}
	if *file == "" || fs.NArg() > 1 || (fs.NArg() == 1 && fs.Arg(0) != *file) {
		fmt.Fprint(env.Stderr, "weft-agent run: give the config file with --config FILE\n\n"+runUsage)
		return 2
	}
	logger, err := runLogger(env, *format, *level)
	if err != nil {
		fmt.Fprintf(env.Stderr, "weft-agent run: %v\n\n%s", err, runUsage)
		return 2
	}

	reload := make(chan struct{}, 1)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()

	if cfg, err := config.LoadAgent(*file); err == nil {
		if errs := config.CheckSecrets(*file, cfg); len(errs) > 0 {
			for _, e := range errs {
				fmt.Fprintln(env.Stderr, e)
			}
			fmt.Fprintf(env.Stderr, "%s: %d secret(s) readable by every user of this box; the agent did not start\n", *file, len(errs))
			return 1
		}
	}

	err = runner.Run(ctx, runner.Options{ConfigPath: *file, Logger: logger, Reload: reload, RollbackAfter: *rollback, HTTPListen: *httpListen})
	if problems := config.AsErrors(err); problems != nil {
		for _, p := range problems {
			fmt.Fprintln(env.Stderr, p)
		}
		fmt.Fprintf(env.Stderr, "%s: %d problem(s); the agent did not start\n", *file, len(problems))
		return 1
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "weft-agent run: %v\n", err)
		return 1
	}
	return 0
}

// runLogger is the service's logger: env.Logger, unless a format or level
// is asked for.
func runLogger(env Env, format, level string) (*slog.Logger, error) {
	if format == "text" && level == "" && env.Logger != nil {
		return env.Logger, nil
	}
	var l slog.Level
	if level != "" {
		if err := l.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
		}
	} else if lv := os.Getenv("WEFT_LOG_LEVEL"); lv != "" {
		_ = l.UnmarshalText([]byte(lv))
	}
	o := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(env.Stderr, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(env.Stderr, o)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

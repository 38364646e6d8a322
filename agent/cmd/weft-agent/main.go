// Command weft-agent is the Weft edge agent. See docs/README.md.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/weftiot/weft/agent/internal/cli"
)

func main() {
	if os.Getenv("GOMAXPROCS") == "" {
		// The agent waits on devices and the broker far more than it
		// computes. With one processor the Go scheduler no longer wakes
		// a second thread for every answer that arrives, which was a
		// third of the agent's CPU at 2,000 samples/s; one core still
		// carries 100,000 samples/s (docs/benchmarks.md, "Agent CPU per
		// sample"). GOMAXPROCS in the environment overrides it.
		runtime.GOMAXPROCS(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()}))
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr, logger)
	stop()
	os.Exit(code)
}

// logLevel reads WEFT_LOG_LEVEL (debug, info, warn, error; default info).
func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("WEFT_LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}

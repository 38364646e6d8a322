// Command weft-gateway is the Weft platform gateway. See docs/gateway.md.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/weftiot/weft/gateway/internal/cli"
)

func main() {
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

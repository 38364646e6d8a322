package runner

import (
	"log/slog"
	"os"
)

// testLogger logs to stderr when WEFT_TEST_LOG is set, else nowhere.
func testLogger() *slog.Logger {
	if os.Getenv("WEFT_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

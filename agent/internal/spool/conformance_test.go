package spool_test

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/weftiot/weft/agent/internal/spool"
	"github.com/weftiot/weft/agent/internal/spool/spooltest"
)

func TestConformanceBbolt(t *testing.T) {
	spooltest.Run(t, func(t *testing.T, opts spool.Options) spool.Queue {
		opts.Logger = slog.New(slog.DiscardHandler)
		s, err := spool.Open(filepath.Join(t.TempDir(), "spool.db"), opts)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestConformanceMemory(t *testing.T) {
	spooltest.Run(t, func(t *testing.T, opts spool.Options) spool.Queue { return spool.NewMemory(opts) })
}

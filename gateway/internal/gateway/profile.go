package gateway

import (
	"context"
	"log/slog"
	"os"

	"github.com/weftiot/weft/internal/profiling"
)

// ProfileDirEnv names the debug switch for memory work on a running
// gateway (internal/profiling; docs/gateway.md, Profiling).
const ProfileDirEnv = profiling.DirEnv

// profileRate is the heap profile's sampling rate (bytes) while profiling:
// one sample per 64 KiB instead of the runtime's 512 KiB. The gateway
// allocates far more than the agent, so finer sampling would cost too much
// of the throughput being measured.
const profileRate = 64 << 10

// startProfiling writes profiles on every SIGUSR1 until ctx ends when
// ProfileDirEnv is set; without it a SIGUSR1 is logged and ignored.
func startProfiling(ctx context.Context, log *slog.Logger) {
	go profiling.OnSignal(ctx, os.Getenv(ProfileDirEnv), profileRate, log)
}

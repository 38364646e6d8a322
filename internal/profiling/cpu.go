package profiling

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
)

// CPUEnv names the environment variable that records a CPU profile of the
// whole run: WEFT_CPU_PROFILE=/some/file.pprof profiles from start until the
// process stops cleanly (SIGTERM or SIGINT; a SIGKILL leaves the file empty).
const CPUEnv = "WEFT_CPU_PROFILE"

// StartCPU starts a CPU profile into path (created or truncated) and returns
// the function that stops it and closes the file. With an empty path it does
// nothing. A profile that cannot start is logged, never fatal: profiling is a
// diagnosis aid and must not keep the process from running.
func StartCPU(path string, log *slog.Logger) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		log.Error("profiling: CPU profile not started", "env", CPUEnv, "err", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		log.Error("profiling: CPU profile not started", "env", CPUEnv, "path", path, "err", err)
		return func() {}
	}
	log.Info("profiling: recording a CPU profile until the process stops", "path", path)
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			log.Error("profiling: CPU profile not written", "path", path, "err", fmt.Errorf("close: %w", err))
			return
		}
		log.Info("profiling: CPU profile written", "path", path)
	}
}

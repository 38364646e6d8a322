package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"
)

// ProfileDirEnv names the debug switch for memory work on a running
// gateway: with WEFT_PROFILE_DIR=/some/dir set, SIGUSR1 writes a heap
// profile (in use, and allocated since start), a goroutine profile and the
// runtime's memory figures there, for `go tool pprof` (docs/gateway.md,
// Profiling). The agent has the same switch; the gateway cannot import the
// agent's internals, hence this copy.
const ProfileDirEnv = "WEFT_PROFILE_DIR"

// profileRate is the heap profile's sampling rate (bytes) while profiling:
// one sample per 64 KiB instead of the runtime's 512 KiB. The gateway
// allocates far more than the agent, so finer sampling would cost too much
// of the throughput being measured.
const profileRate = 64 << 10

// startProfiling turns profiling on when ProfileDirEnv is set and writes
// profiles on every SIGUSR1 until ctx ends. Without it a SIGUSR1 is logged
// and ignored (unhandled, it would end the gateway without draining).
func startProfiling(ctx context.Context, log *slog.Logger) {
	dir := os.Getenv(ProfileDirEnv)
	if dir != "" {
		runtime.MemProfileRate = profileRate
		log.Info("profiling: SIGUSR1 writes heap and goroutine profiles", "dir", dir)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	go func() {
		defer signal.Stop(sig)
		for {
			select {
			case <-ctx.Done():
				return
			case <-sig:
				if dir == "" {
					log.Warn("SIGUSR1 ignored: set " + ProfileDirEnv + " to write profiles")
					continue
				}
				paths, err := writeProfiles(dir, time.Now())
				if err != nil {
					log.Error("profiling: profiles not written", "dir", dir, "error", err)
					continue
				}
				log.Info("profiling: profiles written", "files", paths)
			}
		}
	}()
}

// writeProfiles writes heap-STAMP.pprof, goroutine-STAMP.pprof and
// memstats-STAMP.txt into dir. The memory figures are read before the GC
// that precedes the heap profile, so HeapAlloc shows garbage not yet
// collected too; the profile's in-use figures are the live heap.
func writeProfiles(dir string, now time.Time) ([]string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	stamp := now.Format("20060102-150405.000")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	runtime.GC()
	var paths []string
	for _, name := range []string{"heap", "goroutine"} {
		p := filepath.Join(dir, fmt.Sprintf("%s-%s.pprof", name, stamp))
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
		if err != nil {
			return paths, err
		}
		err = pprof.Lookup(name).WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return paths, fmt.Errorf("%s: %w", p, err)
		}
		paths = append(paths, p)
	}
	p := filepath.Join(dir, fmt.Sprintf("memstats-%s.txt", stamp))
	text := fmt.Sprintf("HeapAlloc %d\nHeapInuse %d\nHeapIdle %d\nHeapReleased %d\nHeapSys %d\nStackSys %d\nGCSys %d\nOtherSys %d\nSys %d\nNextGC %d\nNumGC %d\nTotalAlloc %d\nGoroutines %d\n",
		ms.HeapAlloc, ms.HeapInuse, ms.HeapIdle, ms.HeapReleased, ms.HeapSys, ms.StackSys, ms.GCSys, ms.OtherSys,
		ms.Sys, ms.NextGC, ms.NumGC, ms.TotalAlloc, runtime.NumGoroutine())
	if err := os.WriteFile(p, []byte(text), 0o640); err != nil {
		return paths, err
	}
	return append(paths, p), nil
}

// Package profiling is the debug switch both Weft binaries share for memory
// work on a running process: with WEFT_PROFILE_DIR=/some/dir set, SIGUSR1
// writes a heap profile (in use, and allocated since start), a goroutine
// profile and the runtime's memory figures there, for `go tool pprof`. It
// uses runtime/pprof, not net/http/pprof, which would link html/template
// into the agent (docs/agent.md and docs/gateway.md, Profiling).
package profiling

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

// DirEnv names the environment variable that turns profiling on.
const DirEnv = "WEFT_PROFILE_DIR"

// OnSignal writes profiles into dir on every SIGUSR1 until ctx ends; with a
// dir it first sets the heap profile's sampling rate to rate bytes (finer
// than the runtime's 512 KiB, at some CPU cost). Without a dir SIGUSR1 is
// only logged: left unhandled it would end the process like SIGKILL does,
// without draining what it holds.
func OnSignal(ctx context.Context, dir string, rate int, log *slog.Logger) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	defer signal.Stop(sig)
	if dir != "" {
		runtime.MemProfileRate = rate
		log.Info("profiling: SIGUSR1 writes heap and goroutine profiles", "dir", dir)
	} else {
		log.Debug("profiling off: SIGUSR1 is logged and ignored", "set", DirEnv)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
			if dir == "" {
				log.Warn("profiling: SIGUSR1 ignored; start with " + DirEnv + "=DIR to write profiles")
				continue
			}
			paths, err := Write(dir, time.Now())
			if err != nil {
				log.Error("profiling: profiles not written", "dir", dir, "err", err)
				continue
			}
			log.Info("profiling: profiles written", "files", paths)
		}
	}
}

// Write writes heap-STAMP.pprof, goroutine-STAMP.pprof and the
// runtime's memory figures (memstats-STAMP.txt) into dir.
// The heap profile follows a GC, so its in-use figures are the live heap.
func Write(dir string, now time.Time) ([]string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	stamp := now.Format("20060102-150405.000")
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
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	text := fmt.Sprintf("HeapAlloc %d\nHeapInuse %d\nHeapIdle %d\nHeapReleased %d\nHeapSys %d\nStackSys %d\nMSpanSys %d\nMCacheSys %d\nBuckHashSys %d\nGCSys %d\nOtherSys %d\nSys %d\nNextGC %d\nNumGC %d\nTotalAlloc %d\nGoroutines %d\n",
		ms.HeapAlloc, ms.HeapInuse, ms.HeapIdle, ms.HeapReleased, ms.HeapSys, ms.StackSys, ms.MSpanSys, ms.MCacheSys,
		ms.BuckHashSys, ms.GCSys, ms.OtherSys, ms.Sys, ms.NextGC, ms.NumGC, ms.TotalAlloc, runtime.NumGoroutine())
	if err := os.WriteFile(p, []byte(text), 0o640); err != nil {
		return paths, err
	}
	return append(paths, p), nil
}

package runner

import "github.com/weftiot/weft/internal/profiling"

// ProfileDirEnv names the debug switch for memory work on a running agent
// (internal/profiling; docs/agent.md, Profiling).
const ProfileDirEnv = profiling.DirEnv

// profileRate is the heap profile's sampling rate (bytes) while profiling:
// one sample per 4 KiB instead of the runtime's 512 KiB, precise enough to
// tell a few hundred kilobytes apart, at some CPU cost.
const profileRate = 4096

// Package version holds the build stamp of the Weft binaries, set by the
// linker: -X github.com/weftiot/weft/internal/version.Version=v0.1.0 (and
// Commit, Date).
package version

import (
	"fmt"
	"runtime"
)

// Set by -ldflags -X at release time.
var (
	Version = "dev"
	Commit  = "unknown"
	Date    = "unknown"
)

// String is the one-line version printed by `weft-agent version`.
func String(binary string) string {
	return fmt.Sprintf("%s %s (commit %s, built %s, %s, %s/%s)", binary, Version, Commit, Date, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// Package testbin gives tests the Weft binaries they run as real processes
// (weft-agent, weft-gateway, weft-sim): the ones in $WEFT_BIN, which
// `make test` builds there, or else a go build of this tree made once per
// test process. A package whose tests call it removes what it built with
//
//	func TestMain(m *testing.M) { testbin.Main(m) }
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// packages maps each binary to the main package it is built from.
var packages = map[string]string{
	"weft-agent":   "github.com/weftiot/weft/agent/cmd/weft-agent",
	"weft-gateway": "github.com/weftiot/weft/gateway/cmd/weft-gateway",
	"weft-sim":     "github.com/weftiot/weft/sim/cmd/weft-sim",
}

var (
	mu    sync.Mutex
	dir   string               // where this process builds, made on the first build
	built = map[string]error{} // binaries built into dir (nil) or that failed to build
)

// Dir returns a directory holding every named binary: $WEFT_BIN when it
// holds all of them, else the directory this process builds into, after
// building (CGO_ENABLED=0, like the release) those not built there yet.
func Dir(t testing.TB, names ...string) string {
	t.Helper()
	if env := os.Getenv("WEFT_BIN"); env != "" && holds(env, names) {
		return env
	}
	d, err := build(names)
	if err != nil {
		t.Fatalf("testbin: %v", err)
	}
	return d
}

// Path returns the path of one binary, as Dir finds or builds it.
func Path(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(Dir(t, name), name)
}

// Main runs the tests and then removes what Dir built. Call it from
// TestMain; when TestMain returns, the test binary exits with m.Run's code.
func Main(m *testing.M) {
	m.Run()
	RemoveBuilt()
}

// RemoveBuilt removes the directory Dir built into, if it built anything.
func RemoveBuilt() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
		dir = ""
		clear(built)
	}
}

func holds(d string, names []string) bool {
	for _, n := range names {
		if st, err := os.Stat(filepath.Join(d, n)); err != nil || st.IsDir() {
			return false
		}
	}
	return true
}

// build builds the named binaries this process has not tried yet, in one
// go build, and returns the directory. A failed build is not retried: its
// error is returned to every later caller that needs that binary.
func build(names []string) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	var todo []string
	for _, n := range names {
		if _, ok := packages[n]; !ok {
			return "", fmt.Errorf("no binary %q (know weft-agent, weft-gateway, weft-sim)", n)
		}
		if err, tried := built[n]; tried {
			if err != nil {
				return "", err
			}
			continue
		}
		todo = append(todo, n)
	}
	if len(todo) == 0 {
		return dir, nil
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "weft-testbin-")
		if err != nil {
			return "", fmt.Errorf("build directory: %w", err)
		}
		dir = d
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, n := range todo {
		args = append(args, packages[n])
	}
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var err error
	if out, e := cmd.CombinedOutput(); e != nil {
		err = fmt.Errorf("go build %v: %v\n%s", todo, e, out)
	}
	for _, n := range todo {
		built[n] = err
	}
	return dir, err
}

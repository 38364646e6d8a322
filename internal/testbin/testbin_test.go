package testbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

// TestDirTakesWEFTBIN: when $WEFT_BIN holds every named binary, Dir returns
// it and builds nothing.
func TestDirTakesWEFTBIN(t *testing.T) {
	env := t.TempDir()
	for _, n := range []string{"weft-agent", "weft-sim"} {
		if err := os.WriteFile(filepath.Join(env, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("WEFT_BIN", env)
	if got := Dir(t, "weft-agent", "weft-sim"); got != env {
		t.Errorf("Dir = %s, want $WEFT_BIN %s", got, env)
	}
	if got := Path(t, "weft-sim"); got != filepath.Join(env, "weft-sim") {
		t.Errorf("Path = %s, want the one in $WEFT_BIN", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(built) != 0 {
		t.Errorf("built %v though $WEFT_BIN held them", built)
	}
}

// TestPathBuildsOnce: when $WEFT_BIN lacks the binary, Path builds it from
// this tree, and a second call reuses that build; RemoveBuilt removes it.
func TestPathBuildsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	t.Setenv("WEFT_BIN", t.TempDir()) // empty: holds nothing
	bin := Path(t, "weft-agent")
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "weft-agent") {
		t.Fatalf("%s version: %v\n%s", bin, err, out)
	}
	before, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	if again := Path(t, "weft-agent"); again != bin {
		t.Fatalf("second Path = %s, want %s", again, bin)
	}
	after, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	if !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("the second Path built weft-agent again")
	}
	RemoveBuilt()
	if _, err := os.Stat(bin); !os.IsNotExist(err) {
		t.Errorf("after RemoveBuilt, %s: %v, want it gone", bin, err)
	}
}

// TestUnknownBinary: a name testbin cannot build is an error naming it.
func TestUnknownBinary(t *testing.T) {
	_, err := build([]string{"weft-nothing"})
	if err == nil || !strings.Contains(err.Error(), `"weft-nothing"`) {
		t.Errorf("build(weft-nothing) = %v, want an error naming it", err)
	}
}

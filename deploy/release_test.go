package deploy

import (
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// agentSizeGoal is the size goal of issue 9 for the stripped linux/arm64
// weft-agent: under 15 MB (decimal, the stricter reading). The agent is
// about 11.5 MB; a change that takes it over fails here, and
// docs/benchmarks.md ("Binary size") says what made it big before.
const agentSizeGoal = 15_000_000

// TestReleaseArm64UnderQemu runs deploy/release.sh for linux/arm64 only,
// checks the tarball and the sums, and runs the released agent under
// qemu-user: `version` and `config check` on the sample config and on a
// broken one.
func TestReleaseArm64UnderQemu(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a release for arm64 (about a minute); skipped with -short")
	}
	qemu := "/usr/bin/qemu-aarch64-static"
	if _, err := os.Stat(qemu); err != nil {
		t.Skipf("%s not found; install qemu-user-static (make deps does)", qemu)
	}
	root := repoRoot(t)
	dist := t.TempDir()
	const version = "v0.0.0-releasetest"
	run(t, root, []string{"TARGETS=linux/arm64", "DIST=" + dist, "VERSION=" + version}, "./deploy/release.sh")

	name := "weft-" + version + "-linux-arm64"
	sums := mustRead(t, filepath.Join(dist, "SHA256SUMS"))
	for _, want := range []string{name + ".tar.gz", name + "/weft-agent", name + "/weft-gateway"} {
		if !strings.Contains(sums, "  "+want+"\n") {
			t.Errorf("SHA256SUMS has no line for %s:\n%s", want, sums)
		}
	}
	run(t, dist, nil, "sha256sum", "--check", "--strict", "SHA256SUMS")

	// Unpack the tarball as a field engineer would, and use what is in it.
	box := t.TempDir()
	run(t, box, nil, "tar", "xzf", filepath.Join(dist, name+".tar.gz"))
	dir := filepath.Join(box, name)
	for _, f := range []string{"weft-agent", "weft-gateway", "install.sh", "systemd/weft-agent.service",
		"systemd/weft-gateway.service", "examples/agent.yaml", "examples/gateway.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("tarball lacks %s: %v", f, err)
		}
	}

	agent := filepath.Join(dir, "weft-agent")
	checkStaticELF(t, agent, elf.EM_AARCH64, root)
	st, err := os.Stat(agent)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("linux/arm64 weft-agent: %d bytes (%.2f MiB); goal < %d bytes", st.Size(), float64(st.Size())/(1<<20), agentSizeGoal)
	if st.Size() >= agentSizeGoal {
		t.Errorf("linux/arm64 weft-agent is %d bytes, over the %d goal: build it without -s -w and run `go tool nm -size -sort size`, and `go list -deps ./agent/cmd/weft-agent` for new heavy packages (templates, protobuf reflection, client_golang); docs/benchmarks.md, \"Binary size\"", st.Size(), agentSizeGoal)
	}

	out := run(t, dir, nil, qemu, agent, "version")
	if !strings.HasPrefix(out, "weft-agent "+version+" (commit ") || !strings.Contains(out, "linux/arm64") {
		t.Errorf("weft-agent version under qemu printed %q; want the stamped version %s and linux/arm64", out, version)
	}
	if strings.Contains(out, "built unknown") || strings.Contains(out, "commit unknown") {
		t.Errorf("weft-agent version under qemu printed %q: commit and build date were not stamped", out)
	}

	out = run(t, dir, nil, qemu, agent, "config", "check", "examples/agent.yaml")
	if !strings.Contains(out, "examples/agent.yaml: ok: agent ") {
		t.Errorf("config check of the shipped sample under qemu printed %q; want an ok summary", out)
	}

	// A broken config fails with the file, the line and the key.
	writeFile(t, filepath.Join(dir, "bad.yaml"), "agent:\n  id: a1\n  site: s1\n  colour: blue\nmqtt:\n  broker: tcp://127.0.0.1:1883\n", 0o644)
	out, err = runErr(dir, nil, qemu, agent, "config", "check", "bad.yaml")
	if err == nil {
		t.Fatalf("config check of a broken file under qemu succeeded:\n%s", out)
	}
	if !strings.Contains(out, "bad.yaml:4:") || !strings.Contains(out, "agent.colour") {
		t.Errorf("config check of a broken file under qemu printed %q; want bad.yaml:4: agent.colour", out)
	}
}

// checkStaticELF checks that a binary is for machine, has no program
// interpreter (static), carries no symbol table (stripped) and does not
// contain the build machine's source path (trimmed).
func checkStaticELF(t *testing.T, path string, machine elf.Machine, srcRoot string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	if f.Machine != machine {
		t.Errorf("%s is for %s; want %s", path, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a program interpreter: not a static binary (CGO_ENABLED=0?)", path)
		}
	}
	if f.Section(".symtab") != nil {
		t.Errorf("%s has a symbol table: not stripped (-ldflags -s -w?)", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), srcRoot+"/") {
		t.Errorf("%s contains the build path %s: not built with -trimpath", path, srcRoot)
	}
}

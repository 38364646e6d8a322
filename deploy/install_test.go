package deploy

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// fakeRoot makes a directory that install.sh --root treats as /: an /etc
// with the user database of a fresh Debian box (root, and group dialout).
// useradd, usermod and userdel --prefix and systemctl --root work on it for
// real; the host's own /etc is never touched.
func fakeRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n", 0o644)
	writeFile(t, filepath.Join(root, "etc/group"), "root:x:0:\ndialout:x:20:\n", 0o644)
	writeFile(t, filepath.Join(root, "etc/shadow"), "root:*:19000:0:99999:7:::\n", 0o640)
	writeFile(t, filepath.Join(root, "etc/gshadow"), "root:*::\ndialout:*::\n", 0o640)
	return root
}

// unpackedRelease lays out what a release tarball unpacks to, with
// binaries for this machine: the binaries, install.sh, systemd/, examples/.
func unpackedRelease(t *testing.T) string {
	t.Helper()
	repo := repoRoot(t)
	dir := t.TempDir()
	for _, c := range []string{"agent/cmd/weft-agent", "gateway/cmd/weft-gateway"} {
		bin := buildCmd(t, c, hostArch())
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(c)
		writeFile(t, filepath.Join(dir, name), string(data), 0o755)
		sample := run(t, dir, nil, filepath.Join(dir, name), "config", "sample")
		writeFile(t, filepath.Join(dir, "examples", strings.TrimPrefix(name, "weft-")+".yaml"), sample, 0o644)
	}
	for _, f := range []string{"install.sh", "systemd/weft-agent.service", "systemd/weft-gateway.service"} {
		writeFile(t, filepath.Join(dir, f), mustRead(t, filepath.Join(repo, "deploy", f)), 0o755)
	}
	return dir
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("install.sh adds a user (useradd --prefix) and sets owners: run as root")
	}
	need(t, "useradd", "passwd")
	need(t, "systemctl", "systemd")
}

// snapshot lists every file under root with its type, mode, owner and
// content hash (or link target), one line each, sorted.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		// useradd's backup copies (passwd-, group-) are rewritten with the
		// same contents; they are not what we check.
		if strings.HasSuffix(rel, "-") {
			return nil
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		what := ""
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			what = "-> " + target
		case info.Mode().IsRegular():
			data, _ := os.ReadFile(p)
			what = fmt.Sprintf("%x", sha256.Sum256(data))[:16]
		}
		lines = append(lines, fmt.Sprintf("%s %v %d:%d %s", rel, info.Mode(), st.Uid, st.Gid, what))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// passwdEntry returns the fields of user in root's /etc/passwd, or nil.
func passwdEntry(t *testing.T, root, user string) []string {
	t.Helper()
	for _, l := range strings.Split(mustRead(t, filepath.Join(root, "etc/passwd")), "\n") {
		if f := strings.Split(l, ":"); f[0] == user {
			return f
		}
	}
	return nil
}

func groupMembers(t *testing.T, root, group string) (gid string, members []string) {
	t.Helper()
	for _, l := range strings.Split(mustRead(t, filepath.Join(root, "etc/group")), "\n") {
		if f := strings.Split(l, ":"); f[0] == group && len(f) == 4 {
			if f[3] == "" {
				return f[2], nil
			}
			return f[2], strings.Split(f[3], ",")
		}
	}
	return "", nil
}

func checkMode(t *testing.T, path string, mode fs.FileMode, uid, gid string) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Errorf("%v", err)
		return
	}
	st := info.Sys().(*syscall.Stat_t)
	if info.Mode().Perm() != mode || fmt.Sprint(st.Uid) != uid || fmt.Sprint(st.Gid) != gid {
		t.Errorf("%s: mode %v owner %d:%d; want %v %s:%s", path, info.Mode().Perm(), st.Uid, st.Gid, mode, uid, gid)
	}
}

// TestInstallAgent installs the agent into a fake root twice: the first
// run makes the user, directories, binary, config and enabled unit; the
// second changes nothing and says so.
func TestInstallAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent and the gateway; skipped with -short")
	}
	needRoot(t)
	hostPasswd := mustRead(t, "/etc/passwd")
	rel := unpackedRelease(t)
	root := fakeRoot(t)

	out := run(t, rel, nil, "./install.sh", "--root", root)
	t.Logf("first run:\n%s", out)
	u := passwdEntry(t, root, "weft")
	if u == nil {
		t.Fatalf("no user weft in %s/etc/passwd after install:\n%s", root, out)
	}
	if u[5] != "/var/lib/weft" || u[6] != "/usr/sbin/nologin" {
		t.Errorf("user weft: home %q shell %q; want /var/lib/weft and /usr/sbin/nologin", u[5], u[6])
	}
	if uid := u[2]; uid == "0" || len(uid) > 3 {
		t.Errorf("user weft has uid %s; want a system uid (1-999)", uid)
	}
	_, dialout := groupMembers(t, root, "dialout")
	if !contains(dialout, "weft") {
		t.Errorf("weft is not in group dialout (members %v): it could not open serial ports", dialout)
	}
	wgid, _ := groupMembers(t, root, "weft")
	checkMode(t, filepath.Join(root, "usr/local/bin/weft-agent"), 0o755, "0", "0")
	checkMode(t, filepath.Join(root, "etc/systemd/system/weft-agent.service"), 0o644, "0", "0")
	// weft owns its config dir: the agent writes configs pushed by the platform.
	checkMode(t, filepath.Join(root, "etc/weft"), 0o750, u[2], wgid)
	checkMode(t, filepath.Join(root, "etc/weft/agent.yaml"), 0o640, u[2], wgid)
	checkMode(t, filepath.Join(root, "var/lib/weft"), 0o750, u[2], wgid)
	link, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/weft-agent.service"))
	if err != nil || link != "/etc/systemd/system/weft-agent.service" {
		t.Errorf("weft-agent.service is not enabled: %v %q", err, link)
	}
	// The installed binary is the one from the tarball, and it runs.
	if v := run(t, root, nil, filepath.Join(root, "usr/local/bin/weft-agent"), "version"); !strings.HasPrefix(v, "weft-agent ") {
		t.Errorf("installed weft-agent version printed %q", v)
	}

	// A field engineer edits the config; the second run keeps it and
	// changes nothing at all.
	writeFile(t, filepath.Join(root, "etc/weft/agent.yaml"), "# edited on site\n", 0o640)
	before := snapshot(t, root)
	out = run(t, rel, nil, "./install.sh", "--root", root)
	t.Logf("second run:\n%s", out)
	if after := snapshot(t, root); after != before {
		t.Errorf("the second run changed the tree.\nbefore:\n%s\nafter:\n%s", before, after)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.Contains(l, "unchanged") && !strings.Contains(l, "kept") && !strings.HasPrefix(l, "install.sh: weft-agent ") {
			t.Errorf("second run reported a change: %q", l)
		}
	}

	// A new binary is installed over the old one; nothing else moves.
	writeFile(t, filepath.Join(rel, "weft-agent"), mustRead(t, filepath.Join(rel, "weft-agent"))+"\x00", 0o755)
	out = run(t, rel, nil, "./install.sh", "--root", root)
	if !strings.Contains(out, "installed "+filepath.Join(root, "usr/local/bin/weft-agent")) {
		t.Errorf("a new binary was not installed:\n%s", out)
	}
	if got := mustRead(t, "/etc/passwd"); got != hostPasswd {
		t.Errorf("install.sh --root changed the host's /etc/passwd")
	}
}

// TestUninstallAgent removes the agent and keeps config, data and the user;
// --purge removes those too.
func TestUninstallAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent and the gateway; skipped with -short")
	}
	needRoot(t)
	rel := unpackedRelease(t)
	root := fakeRoot(t)
	run(t, rel, nil, "./install.sh", "--root", root)
	writeFile(t, filepath.Join(root, "var/lib/weft/spool.db"), "backlog", 0o600)

	out := run(t, rel, nil, "./install.sh", "--root", root, "--uninstall")
	t.Logf("uninstall:\n%s", out)
	for _, gone := range []string{"usr/local/bin/weft-agent", "etc/systemd/system/weft-agent.service",
		"etc/systemd/system/multi-user.target.wants/weft-agent.service"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); err == nil {
			t.Errorf("%s is still there after --uninstall", gone)
		}
	}
	for _, kept := range []string{"var/lib/weft/spool.db", "etc/weft/agent.yaml"} {
		if _, err := os.Stat(filepath.Join(root, kept)); err != nil {
			t.Errorf("--uninstall without --purge removed %s: %v", kept, err)
		}
	}
	if passwdEntry(t, root, "weft") == nil {
		t.Errorf("--uninstall without --purge removed the user weft")
	}
	// Uninstalling twice is fine too.
	run(t, rel, nil, "./install.sh", "--root", root, "--uninstall")

	out = run(t, rel, nil, "./install.sh", "--root", root, "--uninstall", "--purge")
	t.Logf("purge:\n%s", out)
	for _, gone := range []string{"var/lib/weft", "etc/weft"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); err == nil {
			t.Errorf("%s is still there after --purge", gone)
		}
	}
	if passwdEntry(t, root, "weft") != nil {
		t.Errorf("--purge kept the user weft")
	}
	if _, dialout := groupMembers(t, root, "dialout"); contains(dialout, "weft") {
		t.Errorf("--purge left weft in group dialout")
	}
}

// TestInstallGateway installs the gateway beside the agent: same user, its
// own data dir, no dialout; purging the gateway keeps the user the agent
// still needs.
func TestInstallGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent and the gateway; skipped with -short")
	}
	needRoot(t)
	rel := unpackedRelease(t)
	root := fakeRoot(t)
	run(t, rel, nil, "./install.sh", "--root", root, "--gateway")
	u := passwdEntry(t, root, "weft")
	if u == nil {
		t.Fatal("no user weft after --gateway")
	}
	wgid, _ := groupMembers(t, root, "weft")
	checkMode(t, filepath.Join(root, "usr/local/bin/weft-gateway"), 0o755, "0", "0")
	checkMode(t, filepath.Join(root, "var/lib/weft-gateway"), 0o750, u[2], wgid)
	checkMode(t, filepath.Join(root, "etc/weft/gateway.yaml"), 0o640, u[2], wgid)
	if _, dialout := groupMembers(t, root, "dialout"); contains(dialout, "weft") {
		t.Errorf("the gateway put weft into dialout; only the agent needs serial ports")
	}
	run(t, rel, nil, "./install.sh", "--root", root)
	out := run(t, rel, nil, "./install.sh", "--root", root, "--gateway", "--uninstall", "--purge")
	if !strings.Contains(out, "kept user weft") || passwdEntry(t, root, "weft") == nil {
		t.Errorf("purging the gateway removed the user the agent runs as:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/local/bin/weft-agent")); err != nil {
		t.Errorf("purging the gateway removed the agent: %v", err)
	}
}

// TestInstallRefusesBadUsage checks the messages for wrong options and a
// run outside an unpacked tarball.
func TestInstallRefusesBadUsage(t *testing.T) {
	script := filepath.Join(repoRoot(t), "deploy/install.sh")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--purge"}, "--purge goes with --uninstall"},
		{[]string{"--frobnicate"}, "unknown option --frobnicate"},
		{[]string{"--root"}, "--root needs a directory"},
	} {
		out, err := runErr(t.TempDir(), nil, script, c.args...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("install.sh %v: err %v, output %q; want a failure saying %q", c.args, err, out, c.want)
		}
	}
	if os.Geteuid() == 0 {
		// deploy/ itself holds install.sh but no binary: the message says
		// where to run it from.
		out, err := runErr(t.TempDir(), nil, script, "--root", t.TempDir())
		if err == nil || !strings.Contains(out, "run me from the unpacked release tarball") {
			t.Errorf("install.sh outside a tarball: err %v, output %q", err, out)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

#!/bin/sh
# Cross-compiles static Weft binaries for the edge boxes and platform servers
# we support, into dist/, with SHA-256 sums and one tarball per architecture
# (binaries, systemd units, install.sh, sample configs). See docs/deploy.md.
#
# Environment (all optional):
#   VERSION  the version stamped into the binaries (default: git describe)
#   TARGETS  space-separated os/arch[/arm], default the four supported ones
#   DIST     output directory (default dist); it is emptied first
set -eu
cd "$(dirname "$0")/.."

version="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
targets="${TARGETS:-linux/amd64 linux/arm64 linux/arm/7 linux/386}"
dist="${DIST:-dist}"
pkg=github.com/weftiot/weft/internal/version
ldflags="-s -w -X $pkg.Version=$version -X $pkg.Commit=$commit -X $pkg.Date=$date"

# A command directory without Go files is a command not written yet: say so
# loudly and leave it out, rather than fail the whole release.
cmds=""
for cmd in agent/cmd/weft-agent gateway/cmd/weft-gateway sim/cmd/weft-sim; do
	if ls "$cmd"/*.go >/dev/null 2>&1; then
		cmds="$cmds $cmd"
	else
		echo "release: WARNING: $cmd has no Go files; $(basename "$cmd") is not in this release" >&2
	fi
done

rm -rf "$dist" && mkdir -p "$dist/.examples"
# The sample configs are what `config sample` prints (the drivers add their
# own sections), made with a binary for this machine.
go run ./agent/cmd/weft-agent config sample > "$dist/.examples/agent.yaml"
if ls gateway/cmd/weft-gateway/*.go >/dev/null 2>&1; then
	go run ./gateway/cmd/weft-gateway config sample > "$dist/.examples/gateway.yaml"
fi
for target in $targets; do
	os=${target%%/*}; rest=${target#*/}; arch=${rest%%/*}; arm=""
	[ "$arch" = arm ] && arm=${rest#*/}
	name="weft-$version-$os-$arch${arm:+v$arm}"
	out="$dist/$name"
	mkdir -p "$out"
	for cmd in $cmds; do
		echo "release: $name $(basename "$cmd")" >&2
		CGO_ENABLED=0 GOOS=$os GOARCH=$arch GOARM=$arm \
			go build -trimpath -ldflags "$ldflags" -o "$out/$(basename "$cmd")" "./$cmd"
	done
	cp -r deploy/systemd "$out/"
	cp deploy/install.sh "$out/"
	cp -r "$dist/.examples" "$out/examples"
	if [ -d deploy/examples ]; then cp -r deploy/examples/. "$out/examples/"; fi
	tar -C "$dist" -czf "$dist/$name.tar.gz" "$name"
done
(cd "$dist" && find . -type f \( -name 'weft-*' -perm -u+x -o -name '*.tar.gz' \) | sed 's#^\./##' | sort | xargs sha256sum > SHA256SUMS)
rm -rf "$dist/.examples"
echo "release: $dist/SHA256SUMS" >&2
ls -l "$dist"/*/weft-agent >&2

#!/bin/sh
# Cross-compiles static Weft binaries for the edge boxes and platform servers
# we support, into dist/, with SHA-256 sums and one tarball per architecture
# (binaries, systemd units, install.sh, sample configs).
set -eu
cd "$(dirname "$0")/.."

version="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
pkg=github.com/weftiot/weft/internal/version
ldflags="-s -w -X $pkg.Version=$version -X $pkg.Commit=$commit -X $pkg.Date=$date"

rm -rf dist && mkdir -p dist
for target in linux/amd64 linux/arm64 linux/arm/7 linux/386; do
	os=${target%%/*}; rest=${target#*/}; arch=${rest%%/*}; arm=""
	[ "$arch" = arm ] && arm=${rest#*/}
	name="weft-$version-$os-$arch${arm:+v$arm}"
	out="dist/$name"
	mkdir -p "$out"
	for cmd in agent/cmd/weft-agent gateway/cmd/weft-gateway sim/cmd/weft-sim; do
		[ -d "$cmd" ] || continue
		echo "release: $name $(basename $cmd)" >&2
		CGO_ENABLED=0 GOOS=$os GOARCH=$arch GOARM=$arm \
			go build -trimpath -ldflags "$ldflags" -o "$out/$(basename $cmd)" "./$cmd"
	done
	cp -r deploy/systemd "$out/"
	[ -f deploy/install.sh ] && cp deploy/install.sh "$out/"
	[ -d deploy/examples ] && cp -r deploy/examples "$out/"
	tar -C dist -czf "dist/$name.tar.gz" "$name"
done
(cd dist && find . -type f \( -name 'weft-*' -perm -u+x -o -name '*.tar.gz' \) | sed 's#^\./##' | sort | xargs sha256sum > SHA256SUMS)
echo "release: dist/SHA256SUMS" >&2
ls -l dist/*/weft-agent >&2

#!/bin/sh
# Builds SeaweedFS's `weed` (an S3-compatible object store) from its Go module,
# for the several-node tests. `go install` refuses the module for its replace
# directives, so the module is downloaded from the Go proxy, copied somewhere
# writable and built there. The binary is kept under $WEED_HOME (default
# ~/.cache/gridwatch) by version; a second run finds it and does nothing.
# Usage: scripts/install-weed.sh  -> prints the path of the binary.
set -eu
VERSION=v0.0.0-20261109003541-7506e5f91cd6
GO=${GO:-go}
home=${WEED_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/gridwatch}
bin="$home/weed-$VERSION"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
mkdir -p "$home"
echo "install-weed: building SeaweedFS $VERSION (several minutes, once)" >&2
dir=$(cd /tmp && GOFLAGS=-mod=mod $GO mod download -json "github.com/seaweedfs/seaweedfs@$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] && [ -d "$dir" ] || { echo "install-weed: module download failed" >&2; exit 1; }
src=$(mktemp -d "$home/weed-src.XXXXXX")
trap 'chmod -R u+w "$src" 2>/dev/null; rm -rf "$src"' EXIT
cp -R "$dir/." "$src"
chmod -R u+w "$src"
(cd "$src" && CGO_ENABLED=0 $GO build -trimpath -ldflags '-s -w' -o "$bin.tmp" ./weed)
mv "$bin.tmp" "$bin"
echo "$bin"

#!/usr/bin/env bash
# Builds helm (for the tests of charts/portico) from the pinned Go module in
# test/lab/gomod/helm (go.mod + go.sum, committed) with -mod=readonly into a
# cache entry keyed by those two files, and prints the binary's path. One
# builder per entry (flock); a second waits and says so.
#   test/lab/build-helm.sh           # build if needed, print the path
#   test/lab/build-helm.sh --check   # print the path if built, else exit 1
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod="$here/gomod/helm"
cache="${PORTICO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/portico}"
log() { echo "[helm] $*" >&2; }
version="$(sed -n 's/^\thelm.sh\/helm\/v3 \(v[^ ]*\).*/\1/p' "$mod/go.mod")"
[ -n "$version" ] || { log "no helm.sh/helm/v3 version in $mod/go.mod"; exit 1; }
key="$(cat "$mod/go.mod" "$mod/go.sum" | sha256sum | cut -c1-12)"
OUT="$cache/helm/helm-$version-$key"
if [ -x "$OUT/helm" ]; then echo "$OUT/helm"; exit 0; fi
[ "${1:-}" = --check ] && exit 1
command -v go >/dev/null || { log "the Go toolchain is needed (apt-get install golang); none is on PATH"; exit 1; }
mkdir -p "$OUT"
exec 9>"$OUT.lock"
if ! flock -n 9; then log "another build of $OUT is running: waiting for it"; flock 9; fi
if [ -x "$OUT/helm" ]; then echo "$OUT/helm"; exit 0; fi
export GOFLAGS=-mod=readonly GOWORK=off CGO_ENABLED=0
log "building helm $version from $mod (the first time: downloads its modules, then a few minutes)"
start=$SECONDS
(cd "$mod" && go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$version" -o "$OUT/helm.tmp" helm.sh/helm/v3/cmd/helm)
mv "$OUT/helm.tmp" "$OUT/helm"
log "built helm $version in $((SECONDS - start)) s"
echo "$OUT/helm"

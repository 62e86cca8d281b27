#!/usr/bin/env bash
# Builds the lab's Kubernetes binaries from the Go modules pinned in
# test/lab/gomod/ (go.mod + go.sum, committed) into a cache outside the
# repository, keyed by those files' content. Nothing here resolves a version:
# the build runs with -mod=readonly, so a pin that would need to change fails
# loudly instead of fetching something newer.
#
#   build-control-plane.sh [--check] [--node]
#     (default)  etcd kube-apiserver kube-controller-manager kube-scheduler kubectl
#     --node     also kubelet and kube-proxy (the lab's real nodes)
#     --check    build nothing: print the bin directory if every binary is there, else exit 1
#
# Two builds of the same cache entry at once (two checkouts, a test run and
# `npm run lab`) take turns on a lock; the second says so and then finds the
# binaries built.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mods="$here/gomod"
CACHE="${PORTICO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/portico}"
log() { echo "[control-plane] $*" >&2; }

check=0; node=0
for a in "$@"; do
  case "$a" in
    --check) check=1 ;;
    --node) node=1 ;;
    *) echo "usage: build-control-plane.sh [--check] [--node]" >&2; exit 2 ;;
  esac
done

# The versions come from the committed go.mod files, read as text so that
# --check needs no Go toolchain.
mod_version() { sed -n "s#^\(require \|\t\)$2 \(v[^ ]*\).*#\2#p" "$mods/$1/go.mod" | head -1; }
K8S_VERSION="$(mod_version kubernetes k8s.io/kubernetes)"
ETCD_VERSION="$(mod_version etcd go.etcd.io/etcd/server/v3)"
[ -n "$K8S_VERSION" ] && [ -n "$ETCD_VERSION" ] || { log "cannot read the pinned versions from $mods/*/go.mod"; exit 1; }
key="$(cat "$mods/kubernetes/go.mod" "$mods/kubernetes/go.sum" "$mods/etcd/go.mod" "$mods/etcd/go.sum" | sha256sum | cut -c1-12)"
OUT="$CACHE/control-plane/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-$key"

K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
[ "$node" = 1 ] && K8S_BINS+=(kubelet kube-proxy)
have_all() {
  [ -x "$OUT/bin/etcd" ] || return 1
  local b; for b in "${K8S_BINS[@]}"; do [ -x "$OUT/bin/$b" ] || return 1; done
}

if [ "$check" = 1 ]; then have_all && { echo "$OUT/bin"; exit 0; }; exit 1; fi
if have_all; then echo "$OUT/bin"; exit 0; fi

command -v go >/dev/null || { log "the Go toolchain is needed (apt-get install golang, or https://go.dev/dl); none is on PATH"; exit 1; }
mkdir -p "$OUT/bin"

# One builder per cache entry. flock releases the lock when this process ends,
# however it ends, so a killed build never leaves the entry locked.
exec 9>"$OUT.lock"
if ! flock -n 9; then
  log "another build of $OUT is running (pid $(cat "$OUT.lock.pid" 2>/dev/null || echo '?')): waiting for it"
  flock 9
  log "the other build finished"
fi
echo $$ > "$OUT.lock.pid"
if have_all; then echo "$OUT/bin"; exit 0; fi
rm -rf "$OUT"/build.* # a build killed before its cleanup ran; nobody else writes here while we hold the lock

# go build prints nothing for minutes: say every 30 s that it is still going.
with_progress() {
  local what="$1"; shift
  "$@" & local pid=$! start=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if (( (SECONDS - start) % 30 == 0 )) && kill -0 "$pid" 2>/dev/null; then log "still building $what ($(( SECONDS - start )) s)"; fi
  done
  wait "$pid"
}

export GOFLAGS=-mod=readonly GOWORK=off CGO_ENABLED=0
tmp="$(mktemp -d "$OUT/build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# --- Kubernetes: every command still missing, in one go build (the packages
# compile in parallel and share their dependencies).
missing=()
for b in "${K8S_BINS[@]}"; do [ -x "$OUT/bin/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -gt 0 ]; then
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  pkgs=(); for b in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  log "building ${missing[*]} $K8S_VERSION from $mods/kubernetes (the first time: downloads a few hundred MB of modules, then several minutes on 2 cores)"
  start=$SECONDS
  (cd "$mods/kubernetes" && with_progress "${missing[*]}" go build -trimpath -ldflags "$ld" -o "$tmp/" "${pkgs[@]}")
  for b in "${missing[@]}"; do mv -f "$tmp/$b" "$OUT/bin/$b"; done
  log "built ${missing[*]} in $(( SECONDS - start )) s"
fi

# --- etcd: the server module's root package is the etcd binary.
if [ ! -x "$OUT/bin/etcd" ]; then
  log "building etcd $ETCD_VERSION from $mods/etcd"
  start=$SECONDS
  (cd "$mods/etcd" && with_progress etcd go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
  mv -f "$tmp/etcd" "$OUT/bin/etcd"
  log "built etcd in $(( SECONDS - start )) s"
fi
have_all || { log "some binaries are missing in $OUT/bin"; exit 1; }
log "binaries ready in $OUT/bin"
echo "$OUT/bin"

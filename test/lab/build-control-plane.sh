#!/usr/bin/env bash
# Builds the lab's Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl) from their Go modules at
# pinned versions, into a cache outside the repository keyed by version.
# A second run finds the binaries and returns at once.
set -euo pipefail

K8S_VERSION="${PORTICO_K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${PORTICO_ETCD_VERSION:-v3.6.8}"
CACHE="${PORTICO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/portico}"
OUT="$CACHE/control-plane/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
BINS=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)

if [ "${1:-}" = --check ]; then for b in "${BINS[@]}"; do [ -x "$OUT/bin/$b" ] || exit 1; done; echo "$OUT/bin"; exit 0; fi
have_all() { for b in "${BINS[@]}"; do [ -x "$OUT/bin/$b" ] || return 1; done; }
if have_all; then echo "$OUT/bin"; exit 0; fi

command -v go >/dev/null || { echo "build-control-plane: the Go toolchain is needed (apt-get install golang or https://go.dev/dl); none is on PATH" >&2; exit 1; }
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"; patch="${K8S_VERSION##*.}"
staging="v0.$minor.$patch"

mkdir -p "$OUT/src/k8s" "$OUT/src/etcd" "$OUT/bin"
log() { echo "[control-plane] $*" >&2; }
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

# --- Kubernetes: the main module publishes its staging modules as v0.0.0, so pin
# every k8s.io/<staging> module to the matching published version.
cd "$OUT/src/k8s"
log "resolving k8s.io/kubernetes $K8S_VERSION (staging modules at $staging)"
cat > go.mod <<MOD
module portico.dev/lab/controlplane

go 1.26
MOD
modfile=$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
[ -f "$modfile" ] || { log "could not download k8s.io/kubernetes $K8S_VERSION from the Go module proxy"; exit 1; }
{
  echo "require k8s.io/kubernetes $K8S_VERSION"
  grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$modfile" | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
} >> go.mod
cat > tools.go <<'GO'
//go:build tools

package controlplane

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
log "downloading modules (first time: a few hundred MB)"
GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
GOFLAGS=-mod=mod go get k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl >&2
ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  [ -x "$OUT/bin/$cmd" ] && continue
  log "building $cmd $K8S_VERSION (several minutes each on 2 cores)"
  start=$(date +%s)
  GOFLAGS=-mod=mod CGO_ENABLED=0 with_progress "$cmd" go build -trimpath -ldflags "$ld" -o "$OUT/bin/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
  mv "$OUT/bin/$cmd.tmp" "$OUT/bin/$cmd"
  log "built $cmd in $(( $(date +%s) - start )) s"
done

# --- etcd: the server module's root package is the etcd binary.
if [ ! -x "$OUT/bin/etcd" ]; then
  cd "$OUT/src/etcd"
  log "building etcd $ETCD_VERSION"
  printf 'module portico.dev/lab/etcd\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > go.mod
  printf '//go:build tools\n\npackage etcd\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
  GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  GOFLAGS=-mod=mod CGO_ENABLED=0 with_progress etcd go build -trimpath -ldflags "-s -w" -o "$OUT/bin/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$OUT/bin/etcd.tmp" "$OUT/bin/etcd"
fi
have_all || { log "some binaries are missing in $OUT/bin"; exit 1; }
log "control plane ready in $OUT/bin"
echo "$OUT/bin"

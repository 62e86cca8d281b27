#!/usr/bin/env bash
# Regenerates one of the lab's pinned Go modules for an explicit release. Run
# it by hand when moving the lab to another release, review the diff, commit
# go.mod and go.sum together; the build (build-control-plane.sh) never
# resolves anything itself.
#
#   pin.sh kubernetes v1.36.3
#   pin.sh etcd v3.6.8
#
# The version is always given: nothing here asks for "latest".
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
what="${1:-}"; version="${2:-}"
[[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "usage: pin.sh kubernetes|etcd vX.Y.Z (an exact release)" >&2; exit 2; }
export GOWORK=off GOTOOLCHAIN=local GOFLAGS=-mod=mod
dir="$here/$what"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

case "$what" in
  kubernetes)
    # k8s.io/kubernetes requires its staging modules as v0.0.0 and replaces
    # them with ./staging/...; a module that depends on it must replace each
    # with the published copy, v0.<minor>.<patch> for v1.<minor>.<patch>.
    staging_version="v0.${version#v1.}"
    upstream="$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')"
    [ -f "$upstream" ] || { echo "pin.sh: could not download k8s.io/kubernetes@$version" >&2; exit 1; }
    mapfile -t staging < <(sed -n 's|^\t\(k8s\.io/[^ ]*\) => \./staging/.*|\1|p' "$upstream")
    [ ${#staging[@]} -gt 0 ] || { echo "pin.sh: no staging replace lines in $upstream" >&2; exit 1; }
    {
      echo "// The lab's Kubernetes binaries (kube-apiserver, kube-controller-manager,"
      echo "// kube-scheduler, kubectl, kubelet, kube-proxy) at one pinned release."
      echo "// k8s.io/kubernetes names its staging modules as v0.0.0 and replaces them with"
      echo "// ./staging/...; here each is pinned to the published $staging_version instead."
      echo "// Regenerate with test/lab/gomod/pin.sh; go.sum is the checksum record."
      echo "module portico.dev/lab/kubernetes"
      echo
      echo "go 1.26.0"
      echo
      # The main module's godebug settings apply to the binaries: keep upstream's.
      grep '^godebug ' "$upstream" && echo
      echo "require k8s.io/kubernetes $version"
      echo
      echo "tool ("
      for t in kube-apiserver kube-controller-manager kube-proxy kube-scheduler kubectl kubelet; do printf '\tk8s.io/kubernetes/cmd/%s\n' "$t"; done
      echo ")"
      echo
      for m in "${staging[@]}"; do echo "replace $m => $m $staging_version"; echo; done
    } > "$tmp/go.mod"
    (cd "$tmp" && go mod tidy)
    ;;
  etcd)
    {
      echo "// The lab's etcd at one pinned release. Regenerate with test/lab/gomod/pin.sh;"
      echo "// go.sum is the checksum record."
      echo "module portico.dev/lab/etcd"
      echo
      echo "go 1.26.0"
      echo
      echo "require go.etcd.io/etcd/server/v3 $version"
      echo
      echo "tool go.etcd.io/etcd/server/v3"
    } > "$tmp/go.mod"
    (cd "$tmp" && go mod tidy)
    ;;
  *) echo "usage: pin.sh kubernetes|etcd vX.Y.Z" >&2; exit 2 ;;
esac

mkdir -p "$dir"
cp "$tmp/go.mod" "$tmp/go.sum" "$dir/"
echo "pinned $what $version in $dir (go.mod, go.sum): review with git diff, then commit both" >&2

#!/usr/bin/env bash
# Prepares this machine for Portico and says what it does: Debian packages,
# pnpm, Node 24 and the workspace's dependencies, and (for the lab, tests and
# benchmarks) the Kubernetes control plane built from source and cached.
#   scripts/setup.sh [deps|image|lab|test|bench]
set -euo pipefail
what="${1:-test}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${PORTICO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/portico}"
# pnpm's version is written once, in package.json's packageManager field.
PNPM_VERSION="$(sed -n 's/^ *"packageManager": *"pnpm@\([0-9][^"]*\)".*/\1/p' "$root/package.json")"
say() { echo "[setup] $*" >&2; }
die() { echo "[setup] error: $*" >&2; exit 1; }
[ -n "$PNPM_VERSION" ] || die "package.json names no pnpm version in packageManager"

# --- Debian packages the lab and the tests use. Installed when missing (as root);
# otherwise the message names each missing package and the command to install it.
# Each entry: package:command-that-proves-it.
lab_pkgs=(iproute2:ip nftables:nft openssl:openssl socat:socat curl:curl iputils-ping:ping tcpdump:tcpdump procps:ps)
# Real lab nodes (Lab.start({ realNodes: true }), `npm run lab -- --real-nodes`, test/e2e/real):
# Debian's container runtime, the CNI plugins, and gcc + static busybox for the lab's own images.
realnode_pkgs=(containerd:containerd runc:runc containernetworking-plugins:/usr/lib/cni/bridge busybox-static:busybox build-essential:gcc)
# Portico's image (scripts/image.sh, `npm run image`; the real-node tests build it): podman
# runs the Dockerfile with runc, debootstrap makes the Debian base here.
image_pkgs=(podman:podman debootstrap:debootstrap runc:runc)
test_pkgs=(frr:bgpd bird2:bird gobgpd:gobgpd qemu-system-x86:qemu-system-x86_64 busybox-static:busybox kmod:modprobe cpio:cpio ipvsadm:ipvsadm build-essential:make python3:python3)
has_cmd() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/lib/frr/$1" ] || [ -x "/sbin/$1" ]; }
need_pkgs() {
  local missing=() e
  for e in "$@"; do has_cmd "${e#*:}" || missing+=("${e%%:*}"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    die "missing Debian packages: ${missing[*]}. Install them with: sudo apt-get install -y ${missing[*]}"
  fi
  say "installing Debian packages: ${missing[*]}"
  if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/portico-apt.log 2>&1 ||
         { apt-get update -q >>/tmp/portico-apt.log 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/portico-apt.log 2>&1; }; }; then
    tail -5 /tmp/portico-apt.log >&2
    die "could not install ${missing[*]} (log: /tmp/portico-apt.log). Install them by hand: apt-get install -y ${missing[*]}"
  fi
  # FRR's package enables a system service we never use; the lab runs its own daemons.
  for e in "$@"; do has_cmd "${e#*:}" || die "package ${e%%:*} installed but ${e#*:} is still not found"; done
}

if [ "$what" = image ]; then
  [ "$(id -u)" -eq 0 ] || die "building the image runs podman as root here: run it as root (sudo -E npm run image)"
  need_pkgs "${image_pkgs[@]}"
elif [ "$what" != deps ]; then
  if [ "$(id -u)" -ne 0 ]; then
    if [ "$what" = lab ] || [ "$what" = bench ]; then
      die "the lab creates network namespaces and needs root: run it as root (sudo -E npm run $what)"
    fi
    say "not root: the end-to-end tests will be skipped (they need root for network namespaces)"
  else
    need_pkgs "${lab_pkgs[@]}" "${realnode_pkgs[@]}" "${image_pkgs[@]}"
    [ "$what" = lab ] || need_pkgs "${test_pkgs[@]}"
  fi
fi

# --- pnpm: exactly the pinned version (one on PATH if it is that one), else install it into the cache.
pnpm_ok() { command -v pnpm >/dev/null 2>&1 && [ "$(pnpm --version 2>/dev/null)" = "$PNPM_VERSION" ]; }
if ! pnpm_ok; then
  if [ ! -x "$cache/tools/pnpm-$PNPM_VERSION/node_modules/.bin/pnpm" ]; then
    say "installing pnpm $PNPM_VERSION into $cache/tools"
    mkdir -p "$cache/tools/pnpm-$PNPM_VERSION"
    npm install --silent --no-save --prefix "$cache/tools/pnpm-$PNPM_VERSION" "pnpm@$PNPM_VERSION" >&2 \
      || die "could not install pnpm from the npm registry"
  fi
  export PATH="$cache/tools/pnpm-$PNPM_VERSION/node_modules/.bin:$PATH"
fi

# --- dependencies, Node 24 among them (the `node` devDependency).
cd "$root"
stamp="node_modules/.portico-install-stamp"
if [ ! -f "$stamp" ] || [ pnpm-lock.yaml -nt "$stamp" ] || [ ! -x node_modules/.bin/node ]; then
  say "installing dependencies with pnpm (Node 24 comes with them)"
  # The lockfile fixes every package's version and integrity hash; --frozen-lockfile
  # fails instead of resolving anything anew.
  [ -f pnpm-lock.yaml ] || die "pnpm-lock.yaml is missing: the dependencies would resolve to whatever is newest"
  pnpm install --frozen-lockfile --reporter=append-only >&2 || die "pnpm install --frozen-lockfile failed (if package.json changed, run pnpm install and commit pnpm-lock.yaml)"
  touch "$stamp"
fi
v="$(node_modules/.bin/node --version)"
case "$v" in v24.*) ;; *) die "node_modules/.bin/node is $v, expected Node 24" ;; esac

# --- the control plane (minutes the first time on a machine, cached after that).
if [ "$what" != deps ] && [ "$what" != image ]; then
  if [ "$(id -u)" -eq 0 ] || [ "$what" = lab ]; then
    # --node: kubelet and kube-proxy too, for the real-node lab and test/e2e/real.
    if ! bin="$(bash test/lab/build-control-plane.sh --check --node 2>/dev/null)"; then
      say "building the Kubernetes control plane (and kubelet, kube-proxy) from source; this takes a while the first time (cached afterwards)"
    fi
    bin="$(bash test/lab/build-control-plane.sh --node)" || die "the control-plane build failed (see the lines above)"
    echo "$bin" > node_modules/.portico-control-plane
  fi
fi

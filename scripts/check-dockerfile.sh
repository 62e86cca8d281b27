#!/usr/bin/env bash
# Replays the Dockerfile without a container engine: each stage becomes a
# directory under a fresh temporary root, WORKDIR and absolute paths are mapped
# into it, COPY copies from the repository (or from an earlier stage), RUN runs
# the same command with the machine's Node 24 and pnpm first on PATH. What this
# cannot check is the base images themselves (their Node, libc and compilers
# are the machine's here). A RUN preceded by "# check-dockerfile: skip" is not
# replayed (tool installs into the image, the rootfs stage's apt and chroot); a
# COPY --from a stage with skipped steps is skipped when its source is missing.
# RUN --mount=... options are dropped; exec-form RUN ["a", "b"] runs as a b.
# ENV PATH is not replayed (the machine's Node 24 stays first on PATH).
#
#   scripts/check-dockerfile.sh           # exit 0: every step passed
#   KEEP=1 scripts/check-dockerfile.sh    # keep the directory to look at
# Exit 77 means a tool is missing here (the test skips with the reason).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dockerfile="$root/Dockerfile"

pnpm_bin="${PNPM:-$(command -v pnpm || true)}"
if [ -z "$pnpm_bin" ]; then
  for c in "$HOME"/.cache/portico/tools/pnpm-*/node_modules/.bin/pnpm; do [ -x "$c" ] && pnpm_bin="$c"; done
fi
[ -n "$pnpm_bin" ] && [ -x "$pnpm_bin" ] || { echo "SKIP: no pnpm here (npm run setup installs it)"; exit 77; }
[ -x "$root/node_modules/.bin/node" ] || { echo "SKIP: no Node 24 in node_modules (run pnpm install)"; exit 77; }
for t in python3 make cc; do command -v "$t" >/dev/null || { echo "SKIP: $t is missing (node-gyp needs it; the build image has it)"; exit 77; }; done

work="$(mktemp -d "${TMPDIR:-/tmp}/portico-dockerfile.XXXXXX")"
if [ "${KEEP:-}" = 1 ]; then echo "keeping $work"; else trap 'rm -rf "$work"' EXIT; fi
mkdir -p "$work/.bin"
printf '#!/bin/sh\nexec %q "$@"\n' "$root/node_modules/.bin/node" > "$work/.bin/node"
printf '#!/bin/sh\nexec %q "$@"\n' "$pnpm_bin" > "$work/.bin/pnpm"
chmod +x "$work/.bin/node" "$work/.bin/pnpm"
export PATH="$work/.bin:$PATH"
# The build image starts empty; here the store may already hold the packages.
export npm_config_prefer_offline=true

stage="" stagedir="" wd="" skip=0 steps=0
declare -a envs=()
declare -A skipped=()
map() { case "$1" in /*) printf '%s%s' "$stagedir" "$1" ;; *) printf '%s/%s' "$wd" "$1" ;; esac; }

copy() {
  local from="" args=()
  for a in "$@"; do case "$a" in --from=*) from="${a#--from=}" ;; --*) ;; *) args+=("$a") ;; esac; done
  local n=${#args[@]}
  local dst="${args[$((n-1))]}" target
  target="$(map "$dst")"
  if [ "$n" -gt 2 ] || [[ "$dst" == */ ]]; then mkdir -p "$target"; else mkdir -p "$(dirname "$target")"; fi
  for src in "${args[@]:0:$((n-1))}"; do
    local s
    if [ -n "$from" ]; then s="$work/stages/$from$src"; else s="$root/$src"; fi
    if [ ! -e "$s" ] && [ -n "$from" ] && [ -n "${skipped[$from]:-}" ]; then echo "  (skipped here: $src comes from skipped steps of stage $from)"; continue; fi
    [ -e "$s" ] || { echo "COPY: $src does not exist${from:+ in stage $from}"; exit 1; }
    if [ -d "$s" ]; then mkdir -p "$target"; cp -a "$s/." "$target/"; else cp -a "$s" "$target"; fi
  done
}

run() {
  local cmd="$1"
  echo "[$stage] RUN $cmd"
  ( cd "$wd" && for e in "${envs[@]}"; do export "${e?}"; done && bash -euo pipefail -c "$cmd" ) || { echo "FAILED in stage $stage: RUN $cmd"; exit 1; }
}

# Join continuation lines, then interpret instruction by instruction.
while IFS= read -r line; do
  case "$line" in
    '# check-dockerfile: skip'*) skip=1; continue ;;
    '#'*|'') continue ;;
  esac
  instr="${line%% *}" rest="${line#* }"
  case "$instr" in
    ARG) ;;
    FROM)
      stage="${rest##* AS }"; [ "$stage" = "$rest" ] && stage="stage$steps"
      stagedir="$work/stages/$stage"; mkdir -p "$stagedir"; wd="$stagedir"; envs=()
      echo "[$stage] FROM ${rest%% AS *}" ;;
    WORKDIR) wd="$(map "$rest")"; mkdir -p "$wd" ;;
    ENV) read -r -a kv <<< "$rest"; for e in "${kv[@]}"; do case "$e" in PATH=*) ;; *) envs+=("$e") ;; esac; done ;;
    COPY) read -r -a parts <<< "$rest"; echo "[$stage] COPY $rest"; copy "${parts[@]}" ;;
    RUN)
      while [[ "$rest" == --mount=* ]]; do rest="${rest#* }"; done
      if [[ "$rest" == '['* ]]; then
        rest="$(node -e 'process.stdout.write(JSON.parse(process.argv[1]).map((a) => /^[\w.\/=-]+$/.test(a) ? a : JSON.stringify(a)).join(" "))' "$rest")"
      fi
      if [ "$skip" = 1 ]; then echo "[$stage] (skipped here) RUN $rest"; skipped[$stage]=1; skip=0; else run "$rest"; fi ;;
    USER|CMD|ENTRYPOINT|EXPOSE|LABEL) echo "[$stage] $instr $rest (image metadata, nothing to replay)" ;;
    *) echo "check-dockerfile: cannot replay instruction $instr"; exit 1 ;;
  esac
  steps=$((steps + 1))
done < <(sed -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*/ /; ta' "$dockerfile")

# The runtime stage must hold nothing it should not: no dev tools.
rt="$work/stages/runtime/app"
for devtool in node-gyp typescript eslint mocha; do
  if [ -e "$rt/node_modules/$devtool" ] || [ -e "$rt/packages/speaker/node_modules/$devtool" ]; then echo "runtime stage contains $devtool"; exit 1; fi
done
# The compile cache the build warmed serves every TypeScript file of both
# entry points: a start that had to strip one would load the type stripper.
cached() {
  local what="$1"; shift
  local log hits misses
  log="$(cd "$rt" && NODE_COMPILE_CACHE=.cache/node NODE_DEBUG_NATIVE=COMPILE_CACHE NODE_OPTIONS=--disable-warning=ExperimentalWarning "$@" 2>&1 >/dev/null || true)"
  hits="$(grep -c 'retrieving transpile cache for StrippedTypeScript.*success' <<< "$log" || true)"
  misses="$(grep 'no transpile cache for StrippedTypeScript' <<< "$log" || true)"
  if [ -n "$misses" ] || [ "$hits" -lt 10 ]; then echo "compile cache: $what: $hits TypeScript files from the cache; not in it:"; echo "$misses"; exit 1; fi
  echo "compile cache: $what: all $hits TypeScript files from the cache"
}
cached controller node --optimize-for-size packages/controller/src/main.ts --help
cached speaker node --optimize-for-size packages/speaker/src/main.ts --help
echo "check-dockerfile: $steps instructions replayed; runtime stage $(du -sh "$rt" | cut -f1)"

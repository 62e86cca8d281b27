#!/usr/bin/env bash
# Entry point of the npm scripts: set up what the command needs, then run it on
# Node 24 through pnpm (which puts node_modules/.bin, and so Node 24, first on PATH).
set -euo pipefail
cmd="$1"; shift
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "$cmd" in
  test) bash "$root/scripts/setup.sh" test ;;
  lab) if [ "${1:-}" = down ] || [ "${1:-}" = status ]; then bash "$root/scripts/setup.sh" deps; else bash "$root/scripts/setup.sh" lab; fi ;;
  bench) bash "$root/scripts/setup.sh" bench ;;
  *) bash "$root/scripts/setup.sh" deps ;;
esac
cache="${PORTICO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/portico}"
command -v pnpm >/dev/null 2>&1 && [ "$(pnpm --version | cut -d. -f1)" = 10 ] || export PATH="$cache/tools/pnpm-10.34.8/node_modules/.bin:$PATH"
cd "$root"
exec pnpm run --silent "$cmd:run" "$@"

#!/usr/bin/env bash
# The README's main command: installs what is missing, builds, and runs a
# two-site gwmirror cluster of sample gateway hosts on this machine, with a
# MariaDB, a PostgreSQL and an OpenLDAP server per site whose dumps gw1
# carries (`gwmirror sandbox up --databases`), then shows its status.
#
#   scripts/sandbox.sh up   [--dir DIR] [--slots N] [--size small|large] [--no-databases]
#   scripts/sandbox.sh status [--dir DIR]
#   scripts/sandbox.sh down [--dir DIR]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-up}; shift || true
dir=/tmp/gwmirror-sandbox; extra=(); databases=(--databases)
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2;;
    --slots|--size) extra+=("$1" "$2"); shift 2;;
    --no-databases) databases=(); shift;;
    *) echo "sandbox: unknown option $1" >&2; exit 2;;
  esac
done
B=$top/build
case "$cmd" in
  up)
    bash "$top/scripts/setup.sh"
    export CCACHE_BASEDIR=$top
    cmake -S "$top" -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$B" -j"$(nproc)" --target gwmirror gwmirror-node gwmirror-coordinator
    "$B/gwmirror" sandbox up --dir "$dir" "${extra[@]}" "${databases[@]}"
    echo
    "$B/gwmirror" status --config "$dir/cli.json"
    ;;
  status) "$B/gwmirror" status --config "$dir/cli.json";;
  down) "$B/gwmirror" sandbox down --dir "$dir";;
  *) echo "sandbox: unknown command $cmd (up, status, down)" >&2; exit 2;;
esac

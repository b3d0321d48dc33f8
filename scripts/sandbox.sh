#!/usr/bin/env bash
# The README's main command: installs what is missing, builds, and runs a
# two-site gwmirror cluster of sample gateway hosts on this machine, with a
# MariaDB, a PostgreSQL and an OpenLDAP server per site whose dumps gw1
# carries (`gwmirror sandbox up --databases`), then shows its status.
#
#   scripts/sandbox.sh up   [--dir DIR] [--slots N] [--size small|large] [--no-databases]
#                           [--wan SPEC] [--coordinator-site production|standby]
#                           [--etcd N [--coordinators 2]]
#   scripts/sandbox.sh status [--dir DIR]
#   scripts/sandbox.sh link down|up|set SPEC [--dir DIR]
#   scripts/sandbox.sh down [--dir DIR]
#
# --wan puts each site in a network namespace of its own behind a link of
# that shape (root; "delay=40ms,jitter=5ms,loss=0.5%,rate=50mbit", each part
# optional). --etcd N keeps the coordinator's state in an etcd cluster of N
# members; --coordinators 2 adds the other site's coordinator.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-up}; shift || true
dir=/tmp/gwmirror-sandbox; extra=(); databases=(--databases); words=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2;;
    --slots|--size|--coordinator-site|--etcd|--coordinators) extra+=("$1" "$2"); shift 2;;
    --wan) extra+=("$1" "$2"); shift 2;;
    --no-databases) databases=(); shift;;
    down|up|set) words+=("$1"); shift;;
    *=*) words+=("$1"); shift;;
    *) echo "sandbox: unknown option $1" >&2; exit 2;;
  esac
done
B=$top/build
case "$cmd" in
  up)
    bash "$top/scripts/setup.sh"
    export CCACHE_BASEDIR=$top
    cmake -S "$top" -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$B" -j"$(nproc)" --target gwmirror gwmirror-node gwmirror-coordinator gwmirror-wan-relay
    "$B/gwmirror" sandbox up --dir "$dir" "${extra[@]+"${extra[@]}"}" "${databases[@]+"${databases[@]}"}"
    echo
    "$B/gwmirror" status --config "$dir/cli.json"
    ;;
  status) "$B/gwmirror" status --config "$dir/cli.json";;
  link) "$B/gwmirror" sandbox link "${words[@]}" --dir "$dir";;
  down) "$B/gwmirror" sandbox down --dir "$dir";;
  *) echo "sandbox: unknown command $cmd (up, status, link, down)" >&2; exit 2;;
esac

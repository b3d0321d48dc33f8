# Sourced by the sandbox benchmarks after their option parsing, with $name
# set: finds the build, makes the work directory $W (removed on exit, with
# the sandbox at $W/sb stopped and background jobs killed), sets $G (the
# CLI), $top and now().
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${GWMIRROR_BIN_DIR:-$top/build}
[ -x "$bin/gwmirror-coordinator" ] || { echo "$name: build first (scripts/test.sh)" >&2; exit 1; }
command -v rsync >/dev/null || { echo "$name: rsync is not installed" >&2; exit 1; }
W=$(mktemp -d "/tmp/gwmirror-$name.XXXXXX")
G="$bin/gwmirror"
cleanup() {
  "$G" sandbox down --dir "$W/sb" >/dev/null 2>&1 || true
  kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"
}
trap cleanup EXIT
now() { date +%s.%N; }

#!/usr/bin/env bash
# The systemd units of deploy/systemd pass `systemd-analyze verify` with no
# message at all (it prints warnings yet exits 0, so any output fails),
# with ExecStart pointed at this build's binaries. A unit with a planted
# mistake must be caught, or the check proves nothing.
#
#   tests/deploy/systemd_verify.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
top=$(cd "$(dirname "$0")/../.." && pwd)
command -v systemd-analyze >/dev/null || {
  echo "systemd_verify: systemd-analyze missing (scripts/setup.sh installs systemd)" >&2; exit 1; }
W=$(mktemp -d /tmp/gwmirror-systemd.XXXXXX)
trap 'rm -rf "$W"' EXIT
check() {  # unit file -> prints systemd-analyze's output, returns its status
  systemd-analyze verify --man=no "$1" 2>&1
}
for unit in "$top"/deploy/systemd/*.service; do
  name=$(basename "$unit")
  sed "s|/usr/bin/|$build/|" "$unit" > "$W/$name"
  out=$(check "$W/$name") || { echo "$name: $out" >&2; exit 1; }
  [ -z "$out" ] || { echo "$name: $out" >&2; exit 1; }
  echo "$name: verified"
done
sed 's/^Restart=on-failure/Restart=sometimes/' "$W/gwmirror-node.service" > "$W/broken.service"
out=$(check "$W/broken.service" || true)
[ -n "$out" ] || { echo "systemd_verify: a broken unit passed; the check is blind" >&2; exit 1; }
echo "a planted mistake is caught: $out"

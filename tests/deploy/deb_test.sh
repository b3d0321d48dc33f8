#!/usr/bin/env bash
# The .deb that CPack makes from the install rules holds the three
# binaries, both systemd units, the docs and the deploy files, depends on
# the Debian libraries the binaries link (dpkg-shlibdeps), and its binaries
# run.
#
#   tests/deploy/deb_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
W=$(mktemp -d /tmp/gwmirror-deb.XXXXXX)
trap 'rm -rf "$W"' EXIT
cpack -G DEB --config "$build/CPackConfig.cmake" -B "$W" >"$W/cpack.log" 2>&1 || {
  cat "$W/cpack.log" >&2; exit 1; }
deb=$(ls "$W"/gwmirror_*_amd64.deb)
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/bin/gwmirror ./usr/bin/gwmirror-node ./usr/bin/gwmirror-coordinator \
         ./usr/lib/systemd/system/gwmirror-node.service \
         ./usr/lib/systemd/system/gwmirror-coordinator.service \
         ./usr/share/doc/gwmirror/OPERATIONS.md \
         ./usr/share/doc/gwmirror/examples/coordinator.json \
         ./usr/share/doc/gwmirror/prometheus/gwmirror-alerts.yml \
         ./usr/share/doc/gwmirror/grafana/gwmirror-dashboard.json \
         ./usr/share/man/man1/gwmirror.1 ./usr/share/man/man8/gwmirror-node.8 \
         ./usr/share/man/man8/gwmirror-coordinator.8 \
         ./usr/share/bash-completion/completions/gwmirror; do
  grep -qx -- "$f" <<<"$contents" || { echo "deb_test: $f is not in $deb" >&2; exit 1; }
done
depends=$(dpkg-deb -f "$deb" Depends)
for lib in 'libgrpc++1.51' librsync2 libssl3 libzstd1 libsqlite3-0 libmicrohttpd12; do
  grep -q -- "$lib" <<<"$depends" || { echo "deb_test: Depends lacks $lib: $depends" >&2; exit 1; }
done
dpkg-deb -x "$deb" "$W/root"
usage=$("$W/root/usr/bin/gwmirror-coordinator" --help 2>&1 || true)
grep -q "Usage: gwmirror-coordinator" <<<"$usage" || {
  echo "deb_test: the packaged gwmirror-coordinator does not run" >&2; exit 1; }
echo "deb_test: $(basename "$deb") ($(du -h "$deb" | cut -f1)), Depends: $depends"

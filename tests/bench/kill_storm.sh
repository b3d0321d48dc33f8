#!/usr/bin/env bash
# The kill storm at full size (issue 18): 1,000 SIGKILLs of random daemons
# of a two-slot sandbox while production changes, each restart followed by
# the invariant checks of tests/e2e/kill_storm_test.cc. Bounded in time.
#
#   tests/bench/kill_storm.sh [BUILD_DIR] [KILLS] [SECONDS]
set -euo pipefail
build=${1:-build}
kills=${2:-1000}
seconds=${3:-3600}
# Its own copy of the binaries: a rebuild meanwhile must not swap them
# under the restarts.
bin=$(mktemp -d /tmp/gwmirror-storm.XXXXXX)
trap 'rm -rf "$bin"' EXIT
mkdir -p "$bin/tests"
cp "$build"/gwmirror "$build"/gwmirror-node "$build"/gwmirror-coordinator "$bin/"
cp "$build/tests/kill_storm_e2e_test" "$bin/tests/"
GWMIRROR_BIN_DIR=$bin GWMIRROR_KILLS=$kills GWMIRROR_KILL_SECONDS=$seconds \
  "$bin/tests/kill_storm_e2e_test" --gtest_filter='KillStormTest.*' 2>&1 |
  grep -v '^20[0-9][0-9]-.*INFO' | grep -E 'kill storm:|OK|FAILED|Failure|ERROR|WARN' -A12

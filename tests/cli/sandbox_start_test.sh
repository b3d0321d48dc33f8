#!/usr/bin/env bash
# A daemon that dies while `gwmirror sandbox up` waits for its port is
# named at once, with how it ended and the end of its log: the sandbox's
# own children stay zombies until reaped, so before the up waited 30 s
# for a dead process and said only "did not start listening". Here the
# coordinator is a stand-in that fails as one that cannot reach etcd.
#
#   tests/cli/sandbox_start_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
W=$(mktemp -d /tmp/gwmirror-sandbox-start.XXXXXX)
trap 'rm -rf "$W"' EXIT
fail() { echo "sandbox_start_test: $*" >&2; exit 1; }

# The sandbox starts the daemons beside its own binary.
mkdir -p "$W/bin"
cp "$build/gwmirror" "$build/gwmirror-node" "$W/bin/"
printf '#!/bin/sh\necho "etcd: no member answers (a stand-in)" >&2\nexit 3\n' \
  > "$W/bin/gwmirror-coordinator"
chmod +x "$W/bin/gwmirror-coordinator"
start=$(date +%s)
set +e
"$W/bin/gwmirror" sandbox up --dir "$W/sb" --manual >"$W/out" 2>"$W/err"
rc=$?
set -e
took=$(( $(date +%s) - start ))
[ "$rc" -ne 0 ] || fail "sandbox up succeeded with a coordinator that exits"
[ "$took" -lt 20 ] || fail "sandbox up took ${took} s to see its coordinator exit"
grep -q "exited with status 3 before it listened" "$W/err" || fail "no exit status: $(cat "$W/err")"
grep -q "no member answers (a stand-in)" "$W/err" || fail "no log tail: $(cat "$W/err")"
echo "sandbox_start_test: a coordinator that exits is named in ${took} s with its log"

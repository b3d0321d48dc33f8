#!/usr/bin/env bash
# Memory against file size (issue 22): for each dump size, one generated
# dump (`gwmirror dumpgen`) pushed whole into a fresh replica, then its
# 1 %-changed version (rows changed, some inserted and deleted: offsets
# shift) pushed as a delta, each a one-shot `gwmirror-node push --commit`
# over loopback to a replica started for that push. Prints per size and
# push: wall seconds, bytes on the wire, CPU seconds and peak RSS of the
# source and of the replica. The peak RSS should not grow with the size.
# Needs about 5x the largest size free in /tmp (the two dumps, the
# replica's copy and its staging of the next one).
#
# `--digest-while-sending-from BYTES` sets the source's
# source.digest_while_sending_from (a size above the dump's makes the scan
# hash it before the push, as before digests at the end); the last column
# says where the pushed file's digest was found: "end" (as it was sent),
# "first" (hashed before the push) or "scan".
#
# `--compression auto|always|never` sets the source's source.compression
# (default auto, the policy that measures both ways); `--direct-io-min-bytes
# BYTES` the replica's replica.direct_io_min_bytes (a size above the dump's
# stages it and reads its basis through the page cache).
#
#   tests/bench/large_file_bench.sh [--mib N[,N...]] [--digest-while-sending-from BYTES]
#       [--compression auto|always|never] [--direct-io-min-bytes BYTES]
set -euo pipefail
sizes=1024
pending_from=0
compression=auto
direct_from=0
while [ $# -gt 0 ]; do
  case "$1" in
    --mib) sizes=$2; shift 2;;
    --digest-while-sending-from) pending_from=$2; shift 2;;
    --direct-io-min-bytes) direct_from=$2; shift 2;;
    --compression)
      case "$2" in auto|always|never) compression=$2;;
        *) echo "large_file_bench: --compression is auto, always or never, not $2" >&2; exit 2;; esac
      shift 2;;
    *) echo "large_file_bench: unknown option $1" >&2; exit 2;;
  esac
done
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${GWMIRROR_BIN_DIR:-$top/build}
[ -x "$bin/gwmirror-node" ] || { echo "large_file_bench: build first (scripts/test.sh)" >&2; exit 1; }
W=$(mktemp -d /tmp/gwmirror-bench.XXXXXX)
G="$bin/gwmirror"; N="$bin/gwmirror-node"
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
now() { date +%s.%N; }
"$G" certs init --dir "$W/pki" >/dev/null
for n in replica source; do "$G" certs issue --dir "$W/pki" --name $n --json >/dev/null; done

# rss_hwm PID: peak RSS in KiB; cpu PID: user + system seconds.
rss_hwm() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
cpu() {
  local f; f=$(cut -d')' -f2- "/proc/$1/stat"); set -- $f
  echo "scale=2; (${12} + ${13}) / $(getconf CLK_TCK)" | bc
}

echo "| dump MiB | push | wall s | bytes on wire | source CPU s | source peak RSS MiB | replica CPU s | replica peak RSS MiB | digest |"
echo "|---|---|---|---|---|---|---|---|---|"
for mib in ${sizes//,/ }; do
  D="$W/$mib"; mkdir -p "$D/prod/var/lib/gwmirror/dumps" "$D/standby" "$D/src"
  "$G" dumpgen --out "$D/src/base.sql" --changed-out "$D/src/changed.sql" --mib "$mib" --seed 1 >/dev/null
  python3 - "$W" "$D" "$pending_from" "$compression" "$direct_from" <<'PY'
import json, sys
W, D, pending_from, compression, direct_from = sys.argv[1:6]
roots = [{"path": "var/lib/gwmirror/dumps"}]
tls = lambda n: {"ca_file": f"{W}/pki/ca/ca.pem", "cert_file": f"{W}/pki/certs/{n}.pem",
                 "key_file": f"{W}/pki/certs/{n}.key"}
json.dump({"slot": "gw1", "host_root": f"{D}/standby", "state_dir": f"{D}/rstate",
           "tls": tls("replica"), "roots": roots, "port_file": f"{D}/port", "listen": "127.0.0.1:0",
           "replica": {"source_identity": "source", "controller_identities": ["source"],
                       "direct_io_min_bytes": int(direct_from)}},
          open(f"{D}/replica.json", "w"))
json.dump({"slot": "gw1", "host_root": f"{D}/prod", "state_dir": f"{D}/sstate", "tls": tls("source"),
           "roots": roots, "source": {"replica_address": "127.0.0.1:PORT", "replica_identity": "replica",
                                      "digest_while_sending_from": int(pending_from),
                                      "compression": "COMPRESSION_" + compression.upper()}},
          open(f"{D}/source.json.in", "w"))
PY
  checkpoint=0
  for push in initial changed; do
    # A hard link, not a copy: the source only reads it.
    src=base; [ "$push" = initial ] || src=changed
    ln -f "$D/src/$src.sql" "$D/prod/var/lib/gwmirror/dumps/metrics.sql"
    rm -f "$D/port"
    "$N" serve --config "$D/replica.json" 2>>"$D/replica.log" & rp=$!
    for _ in $(seq 200); do [ -s "$D/port" ] && break; sleep 0.05; done
    sed "s/PORT/$(cat "$D/port")/" "$D/source.json.in" > "$D/source.json"
    checkpoint=$((checkpoint + 1))
    # The generated dumps on the disk first: the replica's sync is not to
    # write them out for the bench (its sites are one file system here).
    sync
    t0=$(now)
    out=$(/usr/bin/time -f '%U %S %M' -o "$D/time" "$N" push --config "$D/source.json" --checkpoint "$checkpoint" --commit 2>>"$D/push.log")
    t1=$(now)
    read -r u s m < "$D/time"
    wire=$(sed -E 's/.*"wire_bytes": ([0-9]+).*/\1/' <<<"$out")
    digest=scan
    grep -q '"digests_first": 1' <<<"$out" && digest=first
    grep -q '"digests_at_end": 1' <<<"$out" && digest=end
    rcpu=$(cpu "$rp"); rrss=$(rss_hwm "$rp")
    kill "$rp"; wait "$rp" 2>/dev/null || true
    echo "| $mib | $push | $(printf %.2f "$(echo "$t1 - $t0" | bc)") | $wire | $(printf %.2f "$(echo "$u + $s" | bc)") | $((m / 1024)) | $(printf %.2f "$rcpu") | $((rrss / 1024)) | $digest |"
  done
  rm -rf "$D"
done

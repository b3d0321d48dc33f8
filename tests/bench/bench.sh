#!/usr/bin/env bash
# gwmirror beside `rsync -a --delete` to an rsync daemon on loopback, on the
# same data in the same run. Prints a table of min and median wall time,
# bytes on the wire, the source's CPU seconds and peak RSS, and the ratio to
# rsync. Every figure is relative to rsync measured here and now.
#
#   tests/bench/bench.sh [--size small|large] [--dump-mib N] [--runs R]
#
# CI runs it at --size small --dump-mib 8 --runs 1 to prove it works.
set -euo pipefail
size=small; dump_mib=64; runs=3
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift 2;;
    --dump-mib) dump_mib=$2; shift 2;;
    --runs) runs=$2; shift 2;;
    *) echo "bench: unknown option $1" >&2; exit 2;;
  esac
done
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${GWMIRROR_BIN_DIR:-$top/build}
[ -x "$bin/gwmirror-node" ] || { echo "bench: build first (scripts/test.sh)" >&2; exit 1; }
command -v rsync >/dev/null || { echo "bench: rsync is not installed" >&2; exit 1; }
W=$(mktemp -d /tmp/gwmirror-bench.XXXXXX)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
now() { date +%s.%N; }
G="$bin/gwmirror"; N="$bin/gwmirror-node"

# ---- data
"$G" sample --dir "$W/prod" --size "$size" >/dev/null
mkdir -p "$W/prod/var/lib/gwmirror/dumps" "$W/dumpsrc"
"$G" dumpgen --out "$W/dumpsrc/base.sql" --changed-out "$W/dumpsrc/changed.sql" --mib "$dump_mib" --seed 1

# ---- PKI and configs
"$G" certs init --dir "$W/pki" >/dev/null
for n in replica source operator; do "$G" certs issue --dir "$W/pki" --name $n --json >/dev/null; done
python3 - "$W" <<'PY'
import json, sys
W = sys.argv[1]
p = "opt/Axway-7.7"
roots = [{"path": f"{p}/apigateway/conf"}, {"path": f"{p}/apigateway/groups"},
         {"path": f"{p}/apigateway/ext"},
         {"path": f"{p}/apigateway/system/conf", "include": ["nodemanager.xml"]},
         {"path": f"{p}/apigateway/messaging-shared"}, {"path": f"{p}/analytics/conf"},
         {"path": f"{p}/analytics/ext"}, {"path": "etc/init.d", "include": ["vshell-*"]},
         {"path": "var/lib/gwmirror/dumps"}]
tls = lambda n: {"ca_file": f"{W}/pki/ca/ca.pem", "cert_file": f"{W}/pki/certs/{n}.pem",
                 "key_file": f"{W}/pki/certs/{n}.key"}
json.dump({"slot": "gw1", "host_root": f"{W}/standby", "state_dir": f"{W}/rstate",
           "tls": tls("replica"), "roots": roots, "port_file": f"{W}/port",
           "listen": "127.0.0.1:0",
           "replica": {"source_identity": "source", "controller_identities": ["source", "operator"]}}, open(f"{W}/replica.json", "w"))
json.dump({"slot": "gw1", "host_root": f"{W}/prod", "state_dir": f"{W}/sstate",
           "tls": tls("source"), "roots": roots,
           "source": {"replica_address": "127.0.0.1:PORT", "replica_identity": "replica"}},
          open(f"{W}/source.json.in", "w"))
PY

# ---- rsync daemon on loopback
. "$top/tests/bench/rsyncd.sh"
# The same file set as gwmirror's mirror set.
rsync_sel=(--exclude=opsdb.d/ --exclude=logs/ --exclude=trace/ --exclude=events/
  --exclude=groups/certs/private/temp/ --exclude='*.pid' --exclude='*.lock' --exclude=system/lib/
  --exclude=other-product-file.xml --exclude=/etc/init.d/cron)

start_replica() {
  rm -f "$W/port"
  "$N" serve --config "$W/replica.json" 2>>"$W/replica.log" &
  replica_pid=$!
  for _ in $(seq 200); do [ -s "$W/port" ] && break; sleep 0.05; done
  sed "s/PORT/$(cat "$W/port")/" "$W/source.json.in" > "$W/source.json"
}
stop_replica() { kill "$replica_pid"; wait "$replica_pid" 2>/dev/null || true; }

results="$W/results.tsv"; : > "$results"
# run_gw SCENARIO CHECKPOINT: one timed push+commit; records wall, wire, cpu, rss.
run_gw() {
  local t0 t1 out
  t0=$(now)
  out=$(/usr/bin/time -f '%U %S %M' -o "$W/time" "$N" push --config "$W/source.json" --checkpoint "$2" --commit)
  t1=$(now)
  read -r u s m < "$W/time"
  wire=$(sed -E 's/.*"wire_bytes": ([0-9]+).*/\1/' <<<"$out")
  echo -e "$1\tgwmirror\t$(echo "$t1 - $t0" | bc)\t$wire\t$(echo "$u + $s" | bc)\t$m" >> "$results"
}
run_rsync() {
  local t0 t1 out
  t0=$(now)
  out=$(/usr/bin/time -f '%U %S %M' -o "$W/time" rsync -a --delete --stats "${rsync_sel[@]}" "$W/prod/" "rsync://127.0.0.1:$rport/standby/")
  t1=$(now)
  read -r u s m < "$W/time"
  sent=$(grep 'Total bytes sent' <<<"$out" | tr -dc 0-9)
  recv=$(grep 'Total bytes received' <<<"$out" | tr -dc 0-9)
  echo -e "$1\trsync\t$(echo "$t1 - $t0" | bc)\t$((sent + recv))\t$(echo "$u + $s" | bc)\t$m" >> "$results"
}
# Snapshots so that every run of a scenario starts from the same state.
snap() { rm -rf "$W/snap-$1"; mkdir -p "$W/snap-$1"; for d in standby rstate sstate rsync-dest; do [ -e "$W/$d" ] && cp -a "$W/$d" "$W/snap-$1/"; done; true; }
restore() { for d in standby rstate sstate rsync-dest; do rm -rf "$W/$d"; [ -e "$W/snap-$1/$d" ] && cp -a "$W/snap-$1/$d" "$W/"; done; true; }

ckpt=0
scenario() {  # scenario NAME SNAPSHOT
  for r in $(seq "$runs"); do
    restore "$2"; sync
    start_replica; ckpt=$((ckpt + 1)); run_gw "$1" $ckpt; stop_replica
    sync; run_rsync "$1"
  done
}

cp "$W/dumpsrc/base.sql" "$W/prod/var/lib/gwmirror/dumps/metrics.sql"
snap empty
scenario "initial: installation + ${dump_mib} MiB dump" empty
# Keep the state after the last initial run as the base of the next ones.
snap initial
"$G" changeset --dir "$W/prod" --percent 1 >/dev/null
scenario "incremental: 1% change set" initial
snap changed
scenario "no change (rescan)" changed
restore changed
cp "$W/dumpsrc/changed.sql" "$W/prod/var/lib/gwmirror/dumps/metrics.sql"
scenario "dump: 1% rows changed + shifts" changed

python3 - "$results" <<'PY'
import sys, statistics, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    scen, tool, wall, wire, cpu, rss = line.rstrip("\n").split("\t")
    rows.setdefault(scen, {}).setdefault(tool, []).append((float(wall), int(wire), float(cpu), int(rss)))
print("| scenario | tool | wall min s | wall median s | bytes on wire | source CPU s | source peak RSS MiB | wall ratio to rsync (median) | bytes ratio to rsync |")
print("|---|---|---|---|---|---|---|---|---|")
for scen, tools in rows.items():
    ref = tools.get("rsync")
    refw = statistics.median(r[0] for r in ref) if ref else None
    refb = statistics.median(r[1] for r in ref) if ref else None
    for tool in ("gwmirror", "rsync"):
        rs = tools.get(tool, [])
        if not rs: continue
        w = [r[0] for r in rs]; b = statistics.median(r[1] for r in rs)
        c = statistics.median(r[2] for r in rs); m = max(r[3] for r in rs) / 1024
        med = statistics.median(w)
        ratio = f"{med / refw:.2f}" if refw else "-"
        bratio = f"{b / refb:.3f}" if refb else "-"
        print(f"| {scen} | {tool} | {min(w):.3f} | {med:.3f} | {int(b)} | {c:.2f} | {m:.0f} | {ratio} | {bratio} |")
PY

#!/usr/bin/env bash
# The benchmark driver (issue 8): gwmirror beside `rsync -a --delete` to an
# rsync daemon on loopback, and beside lsyncd for latency, on the same
# deterministic data in the same run. Prints a table per part: wall time
# (min, median), bytes on the wire, CPU seconds and peak RSS at the source
# and the replica, and ratios to rsync; then latency, idle cost and a
# churn soak (tests/bench/latency_bench.sh). Every figure is relative to
# its peer measured here and now, and the dump's beside the physical limits
# of the work (tests/bench/limits.py: read, SHA-256, copy + fsync, loopback,
# on the same dump in the same run). The redeployment also has rsync given
# the previous deployment as its basis (--copy-dest) as a second peer.
#
#   tests/bench/bench.sh [--size small|large] [--dump-mib N] [--runs R]
#       [--latency-changes N] [--default-delay-changes N]
#       [--soak-seconds S] [--soak-rate R] [--no-latency]
#       [--wan metro|wan|thin|SPEC]
#
# With --wan (root), both tools cross the same shaped link between two
# network namespaces (`gwmirror sandbox up --wan`, whose idle daemons stay
# out of the way): the replica and the rsync daemon in the standby's, the
# pushes, rsync and lsyncd in production's. Profiles: metro
# delay=5ms,rate=1gbit; wan delay=40ms,jitter=5ms,rate=100mbit,loss=0.1%;
# thin delay=80ms,rate=20mbit,loss=0.5%.
#
# CI runs it tiny (tests/CMakeLists.txt, bench_smoke) to prove it works.
set -euo pipefail
size=small; dump_mib=64; runs=3; latency=(); no_latency=0; wan=
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift 2;;
    --dump-mib) dump_mib=$2; shift 2;;
    --runs) runs=$2; shift 2;;
    --latency-changes) latency+=(--changes "$2"); shift 2;;
    --default-delay-changes|--soak-seconds|--soak-rate|--idle-seconds)
      latency+=("$1" "$2"); shift 2;;
    --no-latency) no_latency=1; shift;;
    --wan) wan=$2; shift 2;;
    *) echo "bench: unknown option $1" >&2; exit 2;;
  esac
done
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${GWMIRROR_BIN_DIR:-$top/build}
[ -x "$bin/gwmirror-node" ] || { echo "bench: build first (scripts/test.sh)" >&2; exit 1; }
command -v rsync >/dev/null || { echo "bench: rsync is not installed" >&2; exit 1; }
W=$(mktemp -d /tmp/gwmirror-bench.XXXXXX)
G="$bin/gwmirror"; N="$bin/gwmirror-node"
cleanup() {
  kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true
  [ -z "$wan" ] || "$G" sandbox down --dir "$W/sb" >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT
now() { date +%s.%N; }

# ---- where each side runs: loopback, or either end of a shaped link
wan_json=""
case "$wan" in
  metro) wan="delay=5ms,rate=1gbit";;
  wan) wan="delay=40ms,jitter=5ms,rate=100mbit,loss=0.1%";;
  thin) wan="delay=80ms,rate=20mbit,loss=0.5%";;
esac
if [ -n "$wan" ]; then
  "$G" sandbox up --dir "$W/sb" --slots 1 --manual --wan "$wan" >"$W/wan.log" 2>&1 || {
    cat "$W/wan.log" >&2; exit 1; }
  wan_json="$W/sb/sandbox.json"
  echo "bench: across a link of $wan"
fi
# The rsync daemon (and $rsync_addr, $in_p, $in_s).
. "$top/tests/bench/rsyncd.sh"

# ---- data
"$G" sample --dir "$W/prod" --size "$size" >/dev/null
mkdir -p "$W/prod/var/lib/gwmirror/dumps" "$W/dumpsrc"
"$G" dumpgen --out "$W/dumpsrc/base.sql" --changed-out "$W/dumpsrc/changed.sql" --mib "$dump_mib" --seed 1
# What the hardware allows for that dump, measured now (issue 22).
python3 "$top/tests/bench/limits.py" "$W/dumpsrc/base.sql" "$W" > "$W/limits.tsv"

# ---- PKI and configs
"$G" certs init --dir "$W/pki" >/dev/null
for n in replica source operator; do "$G" certs issue --dir "$W/pki" --name $n --json >/dev/null; done
python3 - "$W" "$rsync_addr" <<'PY'
import json, sys
W, addr = sys.argv[1:3]
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
           "listen": f"{addr}:0",
           "replica": {"source_identity": "source", "controller_identities": ["source", "operator"]}}, open(f"{W}/replica.json", "w"))
json.dump({"slot": "gw1", "host_root": f"{W}/prod", "state_dir": f"{W}/sstate",
           "tls": tls("source"), "roots": roots,
           "source": {"replica_address": f"{addr}:PORT", "replica_identity": "replica"}},
          open(f"{W}/source.json.in", "w"))
PY


start_replica() {
  rm -f "$W/port"
  ${in_s[@]+"${in_s[@]}"} "$N" serve --config "$W/replica.json" 2>>"$W/replica.log" &
  replica_pid=$!
  for _ in $(seq 200); do [ -s "$W/port" ] && break; sleep 0.05; done
  sed "s/PORT/$(cat "$W/port")/" "$W/source.json.in" > "$W/source.json"
}
stop_replica() { kill "$replica_pid"; wait "$replica_pid" 2>/dev/null || true; }

results="$W/results.tsv"; : > "$results"
scans="$W/scans.tsv"; : > "$scans"
# CPU seconds of a process (its own, or with "children" those of the
# children it reaped), and its peak RSS in KiB.
cpu_of() {
  local f; f=$(cut -d')' -f2- "/proc/$1/stat")
  set -- $f "${2:-self}"
  if [ "${!#}" = children ]; then echo "scale=2; (${14} + ${15}) / $(getconf CLK_TCK)" | bc
  else echo "scale=2; (${12} + ${13}) / $(getconf CLK_TCK)" | bc; fi
}
rss_of() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
# run_gw SCENARIO CHECKPOINT: one timed push+commit to a freshly started
# replica; records wall, wire, CPU and peak RSS of both sides.
run_gw() {
  local t0 t1 out
  t0=$(now)
  out=$(/usr/bin/time -f '%U %S %M' -o "$W/time" ${in_p[@]+"${in_p[@]}"} "$N" push --config "$W/source.json" --checkpoint "$2" --commit)
  t1=$(now)
  read -r u s m < "$W/time"
  wire=$(sed -E 's/.*"wire_bytes": ([0-9]+).*/\1/' <<<"$out")
  echo -e "$1\tgwmirror\t$(echo "$t1 - $t0" | bc)\t$wire\t$(echo "$u + $s" | bc)\t$m\t$(cpu_of "$replica_pid")\t$(rss_of "$replica_pid")" >> "$results"
  python3 -c 'import json, sys; r = json.loads(sys.argv[2]); print(sys.argv[1], r["entries"], r["index_hits"], r["bytes_hashed"], r["signature_fetches"], sep="\t")' "$1" "$out" >> "$scans"
}
run_rsync() {
  local t0 t1 out d0
  d0=$(cpu_of "$rsyncd_pid" children)
  t0=$(now)
  out=$(/usr/bin/time -f '%U %S %M' -o "$W/time" ${in_p[@]+"${in_p[@]}"} rsync -a --delete --stats "${rsync_sel[@]}" "$W/prod/" "rsync://$rsync_addr:$rport/standby/")
  t1=$(now)
  read -r u s m < "$W/time"
  sent=$(grep 'Total bytes sent' <<<"$out" | tr -dc 0-9)
  recv=$(grep 'Total bytes received' <<<"$out" | tr -dc 0-9)
  sleep 0.2  # the daemon reaps its child
  echo -e "$1\trsync\t$(echo "$t1 - $t0" | bc)\t$((sent + recv))\t$(echo "$u + $s" | bc)\t$m\t$(echo "$(cpu_of "$rsyncd_pid" children) - $d0" | bc)\t-" >> "$results"
}
# rsync given the basis an expert would name for a new deployment folder
# (issue 20): the new folder first with --copy-dest at the previous
# deployment's, then the whole tree as run_rsync does; both calls counted.
run_rsync_basis() {  # run_rsync_basis SCENARIO NEW_FOLDER OLD_NAME
  local t0 t1 out1 out2 d0 u1 s1 m1
  d0=$(cpu_of "$rsyncd_pid" children)
  t0=$(now)
  out1=$(/usr/bin/time -f '%U %S %M' -o "$W/time1" ${in_p[@]+"${in_p[@]}"} rsync -a --stats --copy-dest="../$3/" "$W/prod/$2/" "rsync://$rsync_addr:$rport/standby/$2/")
  out2=$(/usr/bin/time -f '%U %S %M' -o "$W/time" ${in_p[@]+"${in_p[@]}"} rsync -a --delete --stats "${rsync_sel[@]}" "$W/prod/" "rsync://$rsync_addr:$rport/standby/")
  t1=$(now)
  read -r u1 s1 m1 < "$W/time1"
  read -r u s m < "$W/time"
  local bytes=0 o
  for o in "$out1" "$out2"; do
    bytes=$((bytes + $(grep 'Total bytes sent' <<<"$o" | tr -dc 0-9) + $(grep 'Total bytes received' <<<"$o" | tr -dc 0-9)))
  done
  sleep 0.2  # the daemon reaps its children
  echo -e "$1\trsync --copy-dest\t$(echo "$t1 - $t0" | bc)\t$bytes\t$(echo "$u + $s + $u1 + $s1" | bc)\t$((m > m1 ? m : m1))\t$(echo "$(cpu_of "$rsyncd_pid" children) - $d0" | bc)\t-" >> "$results"
}
# Snapshots so that every run of a scenario starts from the same state.
snap() { rm -rf "$W/snap-$1"; mkdir -p "$W/snap-$1"; for d in standby rstate sstate rsync-dest; do [ -e "$W/$d" ] && cp -a "$W/$d" "$W/snap-$1/"; done; true; }
restore() { for d in standby rstate sstate rsync-dest; do rm -rf "$W/$d"; [ -e "$W/snap-$1/$d" ] && cp -a "$W/snap-$1/$d" "$W/"; done; true; }

ckpt=0
scenario() {  # scenario NAME SNAPSHOT [EXTRA_PEER ARGS...]: EXTRA_PEER NAME ARGS
  for r in $(seq "$runs"); do
    restore "$2"; sync
    start_replica; ckpt=$((ckpt + 1)); run_gw "$1" $ckpt; stop_replica
    sync; run_rsync "$1"
    if [ $# -gt 2 ]; then restore "$2"; sync; "$3" "$1" "${@:4}"; fi
  done
}

snap empty
scenario "initial: installation" empty
# Each scenario starts from the state the last run of the one before left.
snap installed
scenario "no change: rescan (restart over the index)" installed
restore installed
cp "$W/dumpsrc/base.sql" "$W/prod/var/lib/gwmirror/dumps/metrics.sql"
scenario "initial: ${dump_mib} MiB dump" installed
snap dumped
"$G" changeset --dir "$W/prod" --percent 1 >/dev/null
scenario "incremental: 1% change set" dumped
snap changed
cp "$W/dumpsrc/changed.sql" "$W/prod/var/lib/gwmirror/dumps/metrics.sql"
scenario "dump: 1% rows changed + shifts" changed
snap dumpchanged
# A redeployment: the next deployment of the sample's gateway group as the
# Admin Node Manager writes one (issue 20; `gwmirror sample deploy`): a new
# groups/G/conf/<uuid>/ folder beside the current one, its PrimaryStore.xml
# with about 2 % of its entities edited, added or removed, most other stores
# identical, then every instance switched to it (deployments.json). With
# --size large its PrimaryStore.xml is about 2 MB, as real ones are.
gw_root=$(find "$W/prod" -maxdepth 4 -type d -name apigateway | head -1)
group=$(python3 - "$gw_root/groups/topology.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
groups = [g for g in t["groups"] if g.get("name") != "Node Manager Group"]
print(groups[0]["id"])
PY
)
deploy_json=$("$G" sample deploy --host-root "$W/prod" --group "$group")
read -r new_folder old_name deploy_bytes < <(python3 - "$gw_root" "$W/prod" "$deploy_json" <<'PY'
import json, os, sys
root, prod, text = sys.argv[1:]
d = json.loads(text)
folder = os.path.join(root, "groups", d["group"], "conf", d["id"])
print(os.path.relpath(folder, prod), d["previous"], d["bytes"])
PY
)
primary=$(stat -c %s "$W/prod/$new_folder/PrimaryStore.xml")
scenario "redeployment: next generated ($((deploy_bytes / 1024)) KiB, PrimaryStore $((primary / 1024)) KiB)" dumpchanged \
  run_rsync_basis "$new_folder" "$old_name"

python3 "$top/tests/bench/table.py" "$results" "$scans" "$W/limits.tsv"
echo
# The incremental change set again, through a running cluster: inotify and
# the in-memory tree instead of a cold process's whole scan.
if [ -n "$wan" ]; then
  "$G" sandbox down --dir "$W/sb" >/dev/null  # Its subnet for the next.
  latency+=(--wan "$wan")
fi
GWMIRROR_BIN_DIR="$bin" bash "$top/tests/bench/checkpoint_bench.sh" --slots 1 --size "$size" --runs "$runs" ${wan:+--wan "$wan"}
if [ "$no_latency" = 0 ]; then
  echo
  GWMIRROR_BIN_DIR="$bin" bash "$top/tests/bench/latency_bench.sh" --size "$size" "${latency[@]+"${latency[@]}"}"
fi

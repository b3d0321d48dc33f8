#!/usr/bin/env bash
# A consistent checkpoint across N hosts (`gwmirror checkpoint create
# --wait` on a sandbox: cut, stage on every slot in parallel, verify, commit
# point, apply) beside what an operator would script without gwmirror: one
# `rsync -a --delete` per host to an rsync daemon on loopback, one host
# after the other (which gives no consistent cut at all). Same data, same
# run; prints bench.sh's table (tests/bench/table.py): wall min and median,
# bytes on the wire, CPU and peak RSS of both sides, ratios to rsync.
#
#   tests/bench/checkpoint_bench.sh [--slots N] [--size small|large] [--runs R]
#       [--wan SPEC]
#
# With --wan (root), the sites sit on either end of a link of that shape,
# and rsync (production's namespace) reaches its daemon across it too.
set -euo pipefail
slots=3; size=small; runs=5; wan=
while [ $# -gt 0 ]; do
  case "$1" in
    --slots) slots=$2; shift 2;;
    --size) size=$2; shift 2;;
    --runs) runs=$2; shift 2;;
    --wan) wan=$2; shift 2;;
    *) echo "checkpoint_bench: unknown option $1" >&2; exit 2;;
  esac
done
name=checkpoint_bench
. "$(dirname "$0")/sandbox_common.sh"

# No pre-staging: the cut does all the work the timer sees.
"$G" sandbox up --dir "$W/sb" --slots "$slots" --size "$size" --manual --no-prestage ${wan:+--wan "$wan"} >/dev/null
wan_json=${wan:+$W/sb/sandbox.json}
C="$W/sb/cli.json"
# Per host: production pid, standby pid, production metrics URL.
mapfile -t hosts < <(python3 - "$W/sb/sandbox.json" <<'PY'
import json, sys
for s in json.load(open(sys.argv[1]))["slots"]:
    print(s["production"]["pid"], s["standby"]["pid"], s["production"]["metrics_url"])
PY
)

. "$top/tests/bench/rsyncd.sh"
# Prints the bytes sent and received, summed over hosts; appends each
# client's CPU and peak RSS to $W/rtime.
rsync_all() {
  local total=0 out
  for i in $(seq "$slots"); do
    out=$(/usr/bin/time -f '%U %S %M' -a -o "$W/rtime" \
      ${in_p[@]+"${in_p[@]}"} rsync -a --delete --stats "${rsync_sel[@]}" "$W/sb/gw$i/production/" "rsync://$rsync_addr:$rport/standby/gw$i/")
    total=$((total + $(grep 'Total bytes sent' <<<"$out" | tr -dc 0-9) + $(grep 'Total bytes received' <<<"$out" | tr -dc 0-9)))
  done
  echo "$total"
}
rsync_all >/dev/null  # Initial copy, as the sandbox's checkpoint 1 did for gwmirror.

# CPU seconds of processes (their own, or with "children" those they reaped).
cpu_of() {
  python3 - "$@" <<'PY'
import os, sys
kids = sys.argv[-1] == "children"
t = 0
for p in (a for a in sys.argv[1:] if a != "children"):
    f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
    t += int(f[13]) + int(f[14]) if kids else int(f[11]) + int(f[12])
print(t / os.sysconf("SC_CLK_TCK"))
PY
}
hwm() { local m=0 v; for p in "$@"; do v=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status"); [ "$v" -gt "$m" ] && m=$v; done; echo "$m"; }
wire() {  # gwmirror_source_wire_bytes_total, summed over the production nodes
  python3 - "${hosts[@]}" <<'PY'
import sys, urllib.request
t = 0
for h in sys.argv[1:]:
    for line in urllib.request.urlopen(h.split()[-1], timeout=5).read().decode().splitlines():
        if line.startswith("gwmirror_source_wire_bytes_total"):
            t += float(line.split()[-1])
print(int(t))
PY
}
prod_pids=(); standby_pids=()
for h in "${hosts[@]}"; do read -r p s _ <<<"$h"; prod_pids+=("$p"); standby_pids+=("$s"); done

results="$W/results"
for r in $(seq "$runs"); do
  for scenario in change none; do
    if [ "$scenario" = change ]; then
      for i in $(seq "$slots"); do
        "$G" changeset --dir "$W/sb/gw$i/production" --seed $((100 * r + i)) --percent 1 >/dev/null
      done
    fi
    sync
    name=$([ "$scenario" = change ] && echo "incremental: 1% change set, running cluster" || echo "no change, running cluster")
    w0=$(wire); c0=$(cpu_of "${prod_pids[@]}"); d0=$(cpu_of "${standby_pids[@]}")
    t0=$(now); "$G" checkpoint create --wait --config "$C" >/dev/null; t1=$(now)
    w1=$(wire); c1=$(cpu_of "${prod_pids[@]}"); d1=$(cpu_of "${standby_pids[@]}")
    echo -e "$name\tgwmirror\t$(echo "$t1 - $t0" | bc)\t$((w1 - w0))\t$(echo "$c1 - $c0" | bc)\t$(hwm "${prod_pids[@]}")\t$(echo "$d1 - $d0" | bc)\t$(hwm "${standby_pids[@]}")" >> "$results"
    d0=$(cpu_of "$rsyncd_pid" children)
    : > "$W/rtime"
    t0=$(now); bytes=$(rsync_all); t1=$(now)
    read -r cpu m < <(awk '{c += $1 + $2; if ($3 > m) m = $3} END {print c, m}' "$W/rtime")
    sleep 0.2  # the daemon reaps its child
    echo -e "$name\trsync\t$(echo "$t1 - $t0" | bc)\t$bytes\t$cpu\t$m\t$(echo "$(cpu_of "$rsyncd_pid" children) - $d0" | bc)\t-" >> "$results"
  done
done

echo "checkpoint across $slots hosts ($size sample), $runs runs: gwmirror checkpoint create --wait against rsync -a --delete of each host in turn"
python3 "$top/tests/bench/table.py" "$results"

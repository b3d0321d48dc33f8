#!/usr/bin/env bash
# A consistent checkpoint across N hosts (`gwmirror checkpoint create
# --wait` on a sandbox: cut, stage on every slot in parallel, verify, commit
# point, apply) beside what an operator would script without gwmirror: one
# `rsync -a --delete` per host to an rsync daemon on loopback, one host
# after the other (which gives no consistent cut at all). Same data, same
# run; prints median wall times and the ratio to rsync.
#
#   tests/bench/checkpoint_bench.sh [--slots N] [--size small|large] [--runs R]
set -euo pipefail
slots=3; size=small; runs=5
while [ $# -gt 0 ]; do
  case "$1" in
    --slots) slots=$2; shift 2;;
    --size) size=$2; shift 2;;
    --runs) runs=$2; shift 2;;
    *) echo "checkpoint_bench: unknown option $1" >&2; exit 2;;
  esac
done
name=checkpoint_bench
. "$(dirname "$0")/sandbox_common.sh"

"$G" sandbox up --dir "$W/sb" --slots "$slots" --size "$size" --manual >/dev/null
C="$W/sb/cli.json"

. "$top/tests/bench/rsyncd.sh"
sel=(--exclude=opsdb.d/ --exclude=logs/ --exclude=trace/ --exclude=events/
  --exclude=groups/certs/private/temp/ --exclude='*.pid' --exclude='*.lock' --exclude=system/lib/)
rsync_all() {
  for i in $(seq "$slots"); do
    rsync -a --delete "${sel[@]}" "$W/sb/gw$i/production/" "rsync://127.0.0.1:$rport/standby/gw$i/"
  done
}
rsync_all  # Initial copy, as the sandbox's checkpoint 1 did for gwmirror.

results="$W/results"
for r in $(seq "$runs"); do
  for scenario in change none; do
    if [ "$scenario" = change ]; then
      for i in $(seq "$slots"); do
        "$G" changeset --dir "$W/sb/gw$i/production" --seed $((100 * r + i)) --percent 1 >/dev/null
      done
    fi
    sync
    t0=$(now); "$G" checkpoint create --wait --config "$C" >/dev/null; t1=$(now)
    echo -e "$scenario\tgwmirror\t$(echo "$t1 - $t0" | bc)" >> "$results"
    t0=$(now); rsync_all; t1=$(now)
    echo -e "$scenario\trsync\t$(echo "$t1 - $t0" | bc)" >> "$results"
  done
done

python3 - "$results" "$slots" "$size" "$runs" <<'PY'
import collections, statistics, sys
path, slots, size, runs = sys.argv[1:]
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(path):
    scenario, tool, wall = line.split("\t")
    rows[scenario][tool].append(float(wall))
names = {"change": "1% edits + 50 adds + 50 deletes + 20 chmods per host",
         "none": "no change"}
print(f"checkpoint across {slots} hosts ({size} sample), {runs} runs")
print("| scenario | gwmirror median s | rsync per host, sequential, median s | ratio to rsync |")
print("|---|---|---|---|")
for s in ("change", "none"):
    g = statistics.median(rows[s]["gwmirror"]); r = statistics.median(rows[s]["rsync"])
    print(f"| {names[s]} | {g:.3f} | {r:.3f} | {g / r:.2f}x |")
PY

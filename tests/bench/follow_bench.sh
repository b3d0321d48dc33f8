#!/usr/bin/env bash
# Continuous mirroring under a change set: a sandbox that follows changes
# (inotify, pre-streaming, change-driven cuts) gets a 1 % change set on
# every production host; we time from the end of the change set to the
# checkpoint that holds it being applied on every standby host, and read
# how the bytes split between pre-stage pushes and the cut's tail. Beside
# it, in the same run, `rsync -a --delete` of each host to an rsync daemon
# on loopback, one after the other, for the same change.
#
#   tests/bench/follow_bench.sh [--slots N] [--size small|large] [--runs R]
set -euo pipefail
slots=1; size=large; runs=5
while [ $# -gt 0 ]; do
  case "$1" in
    --slots) slots=$2; shift 2;;
    --size) size=$2; shift 2;;
    --runs) runs=$2; shift 2;;
    *) echo "follow_bench: unknown option $1" >&2; exit 2;;
  esac
done
name=follow_bench
. "$(dirname "$0")/sandbox_common.sh"

"$G" sandbox up --dir "$W/sb" --slots "$slots" --size "$size" >/dev/null
C="$W/sb/cli.json"
. "$top/tests/bench/rsyncd.sh"
rsync_all() {
  for i in $(seq "$slots"); do
    rsync -a --delete "${rsync_sel[@]}" "$W/sb/gw$i/production/" "rsync://127.0.0.1:$rport/standby/gw$i/"
  done
}
rsync_all

# The newest applied checkpoint: "id cut_ms applied_ms".
latest() {
  "$G" checkpoints --all --json --config "$C" | python3 -c '
import json, sys
cps = [c for c in json.load(sys.stdin).get("checkpoints", []) if c.get("state") == "CHECKPOINT_STATE_APPLIED"]
c = max(cps, key=lambda c: int(c["id"])) if cps else {"id": 0, "cut_unix_ms": 0, "applied_unix_ms": 0}
print(c["id"], c.get("cut_unix_ms", 0), c.get("applied_unix_ms", 0))'
}
# Sums "<n> <what>" in source log lines matching `marker` from byte $1 on.
logsum() {
  local from=$1 marker=$2 what=$3 sum=0
  for i in $(seq "$slots"); do
    n=$(tail -c +"$((from + 1))" "$W/sb/logs/gw$i-production.log" | grep "$marker" |
      grep -o "[0-9]* $what" | awk '{s += $1} END {print s + 0}')
    sum=$((sum + n))
  done
  echo $sum
}
logsize() { cat "$W"/sb/logs/gw*-production.log | wc -c; }

results="$W/results"
for r in $(seq "$runs"); do
  sleep 2  # Quiet: the previous checkpoint is applied and nothing pends.
  from=$(stat -c %s "$W/sb/logs/gw1-production.log")
  for i in $(seq "$slots"); do
    "$G" changeset --dir "$W/sb/gw$i/production" --seed $((100 * r + i)) --percent 1 >/dev/null
  done
  t_end_ms=$(date +%s%3N)
  for _ in $(seq 600); do
    read -r id cut applied < <(latest)
    [ "$cut" -gt "$t_end_ms" ] && break
    sleep 0.05
  done
  lat=$(echo "($applied - $t_end_ms) / 1000" | bc -l)
  pre=$(logsum "$from" "pre-staged" "bytes")
  tail_wire=$(logsum "$from" "staged:" "wire bytes")
  cutdur=$(echo "($applied - $cut) / 1000" | bc -l)
  echo -e "gwmirror\t$lat\t$pre\t$tail_wire\t$cutdur" >> "$results"
  t0=$(now); rsync_all; t1=$(now)
  echo -e "rsync\t$(echo "$t1 - $t0" | bc)" >> "$results"
done

python3 - "$results" <<'PY'
import statistics, sys
g, r = [], []
for line in open(sys.argv[1]):
    f = line.split("\t")
    if f[0] == "gwmirror":
        g.append((float(f[1]), int(f[2]), int(f[3]), float(f[4])))
    else:
        r.append(float(f[1]))
gm = statistics.median(x[0] for x in g)
rm = statistics.median(r)
cm = statistics.median(x[3] for x in g)
print("| scenario | gwmirror: change set end to applied on every standby, median s (min) | of which the cut (cut to applied), median s | pre-staged bytes, median | cut tail on the wire, median bytes | rsync -a --delete per host, started at the end of the change set, median s (min) | ratio to rsync: end to applied, the cut |")
print("|---|---|---|---|---|---|---|")
print(f"| 1 % change set | {gm:.3f} ({min(x[0] for x in g):.3f}) | {cm:.3f} | {int(statistics.median(x[1] for x in g))} | {int(statistics.median(x[2] for x in g))} | {rm:.3f} ({min(r):.3f}) | {gm / rm:.2f}x, {cm / rm:.2f}x |")
PY

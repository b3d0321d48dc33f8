#!/usr/bin/env bash
# Point-in-time history on disk: a one-slot sandbox of the sample
# installation takes N checkpoints, each after a 1 % change set (edits,
# adds, deletes, chmods) on production; the standby keeps every one
# (retention: all for an hour). We report what the retained history costs
# on disk (increments + manifests) as a multiple of one full copy of the
# mirrored tree, and how long the oldest checkpoint takes to restore
# (export to /dev/null) against a plain tar of the live tree.
#
#   tests/bench/history_bench.sh [--size small|large] [--checkpoints N]
set -euo pipefail
size=large; n=100
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift 2;;
    --checkpoints) n=$2; shift 2;;
    *) echo "history_bench: unknown option $1" >&2; exit 2;;
  esac
done
name=history_bench
. "$(dirname "$0")/sandbox_common.sh"

"$G" sandbox up --dir "$W/sb" --slots 1 --size "$size" --manual >/dev/null
C="$W/sb/cli.json"
prod="$W/sb/gw1/production"
state="$W/sb/gw1/standby-state/replica/history"
first=$("$G" checkpoint create --wait --json --config "$C" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
t0=$(now)
for i in $(seq "$n"); do
  "$G" changeset --dir "$prod" --seed $((i + 100)) --percent 1 >/dev/null
  "$G" checkpoint create --wait --config "$C" >/dev/null
done
t1=$(now)
# Let the background compaction finish (no .raw left but the newest
# manifest's).
for _ in $(seq 600); do
  raws=$(find "$state/objects" -name '*.raw' | wc -l)
  [ "$raws" -le 1 ] && break
  sleep 0.5
done
retained=$("$G" checkpoints --json --config "$C" |
  python3 -c 'import json,sys; print(len(json.load(sys.stdin)["checkpoints"]))')
tree_bytes=$(du -sb --apparent-size "$W/sb/gw1/standby/opt" "$W/sb/gw1/standby/etc" |
  awk '{s+=$1} END {print s}')
hist_bytes=$(du -sb --apparent-size "$state" | awk '{print $1}')
hist_disk=$(du -sB1 "$state" | awk '{print $1}')
tree_disk=$(du -sB1 "$W/sb/gw1/standby/opt" "$W/sb/gw1/standby/etc" | awk '{s+=$1} END {print s}')
ts=$(now)
"$G" export --slot gw1 --checkpoint "$first" -o "$W/oldest.tar" --config "$C" >/dev/null
te=$(now)
tar -C "$W/sb/gw1/standby" -cf "$W/live.tar" opt etc
tt=$(now)
python3 - "$n" "$retained" "$tree_bytes" "$hist_bytes" "$tree_disk" "$hist_disk" \
  "$t0" "$t1" "$ts" "$te" "$tt" "$size" <<'PY'
import sys
n, retained, tb, hb, td, hd = map(int, sys.argv[1:7])
t0, t1, ts, te, tt = map(float, sys.argv[7:12])
print(f"history_bench: {sys.argv[12]} sample, {n} checkpoints of a 1 % change set each, {retained} retained")
print(f"  full copy of the tree: {tb/1e6:.1f} MB ({td/1e6:.1f} MB on disk)")
print(f"  retained history:      {hb/1e6:.1f} MB ({hd/1e6:.1f} MB on disk) = {hb/tb:.2f}x one full copy ({hd/td:.2f}x on disk)")
print(f"  checkpoints: {(t1-t0)/n:.2f} s each with the change set")
print(f"  restore of the oldest (export, all from increments): {te-ts:.2f} s; tar of the live tree: {tt-te:.2f} s ({(te-ts)/(tt-te):.1f}x)")
PY

#!/usr/bin/env bash
# A real metrics database dump through gwmirror: `sandbox up --databases`
# (MariaDB per site), N MiB of rows loaded into production's metrics_data,
# a checkpoint (mariadb-dump with gwmirror's options, pushed), then 1 % of
# the rows updated plus inserts and deletes that shift offsets, and a
# second checkpoint: bytes on the wire for that dump (from the source's
# log) as a share of the dump's size. Beside it, in the same run, rsync
# with its defaults sends the same two dumps to an rsync daemon on
# loopback (`--stats`: total bytes sent).
#
#   tests/bench/dump_bench.sh [--mib N]
set -euo pipefail
mib=256
while [ $# -gt 0 ]; do
  case "$1" in
    --mib) mib=$2; shift 2;;
    *) echo "dump_bench: unknown option $1" >&2; exit 2;;
  esac
done
name=dump_bench
. "$(dirname "$0")/sandbox_common.sh"
"$G" sandbox up --dir "$W/sb" --slots 1 --databases --manual >/dev/null
C="$W/sb/cli.json"
cnf="$W/sb/databases/production/mariadb/client.cnf"
sql() { mariadb --defaults-extra-file="$cnf" metrics "$@"; }
# ~170 bytes per dumped row.
rows=$((mib * 1024 * 1024 / 170))
sql -e "CREATE TABLE bench (id INT PRIMARY KEY, name VARCHAR(120), value BIGINT)"
awk -v n="$rows" 'BEGIN {
  for (i = 1; i <= n; i += 1000) {
    printf "INSERT INTO bench VALUES ";
    for (j = i; j < i + 1000 && j <= n; j++)
      printf "%s(%d,\"metric-%d-%s\",%d)", (j > i ? "," : ""), j, j,
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", j * 7;
    print ";";
  }
}' | sql
dumpfile="$W/sb/gw1/production/var/lib/gwmirror/dumps/metrics-mariadb.sql"
log="$W/sb/logs/gw1-production.log"
"$G" checkpoint create --wait --config "$C" >/dev/null
cp "$dumpfile" "$W/dump.v1"
# 1 % of the rows changed, scattered; 0.1 % deleted and as many inserted
# (offsets shift).
sql -e "UPDATE bench SET value = value + 1 WHERE id % 100 = 37;
        DELETE FROM bench WHERE id % 1000 = 501;
        INSERT INTO bench SELECT id + $rows, CONCAT(name, '-new'), value FROM bench WHERE id % 1000 = 502;"
from=$(stat -c %s "$log")
t0=$(date +%s.%N)
"$G" checkpoint create --wait --config "$C" >/dev/null
t1=$(date +%s.%N)
cp "$dumpfile" "$W/dump.v2"
size=$(stat -c %s "$dumpfile")
wire=$(tail -c +"$((from + 1))" "$log" | grep "staged:" | grep -o "[0-9]* wire bytes" | awk '{s += $1} END {print s}')

. "$top/tests/bench/rsyncd.sh"
mkdir -p "$W/src"
cp "$W/dump.v1" "$W/src/metrics.sql"
rsync -a "$W/src/" "rsync://127.0.0.1:$rport/standby/"
cp "$W/dump.v2" "$W/src/metrics.sql"
r0=$(date +%s.%N)
rsent=$(rsync -a --stats "$W/src/" "rsync://127.0.0.1:$rport/standby/" | awk -F': ' '/Total bytes sent/ {gsub(/,/, "", $2); print $2}')
r1=$(date +%s.%N)
python3 - "$size" "$wire" "$rsent" "$t0" "$t1" "$r0" "$r1" <<'PY'
import sys
size, wire, rsent = (int(x) for x in sys.argv[1:4])
t0, t1, r0, r1 = (float(x) for x in sys.argv[4:8])
print("| dump (mariadb-dump, gwmirror's options) | size bytes | gwmirror: bytes on the wire (share of the dump) | checkpoint s (dump, push, apply) | rsync defaults: bytes sent (share) | rsync s |")
print("|---|---|---|---|---|---|")
print(f"| 1 % rows updated, 0.1 % deleted and inserted | {size:,} | {wire:,} ({100 * wire / size:.2f} %) | {t1 - t0:.2f} | {rsent:,} ({100 * rsent / size:.1f} %) | {r1 - r0:.2f} |")
PY

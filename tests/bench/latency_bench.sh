#!/usr/bin/env bash
# Latency, idle cost and churn of continuous mirroring, beside lsyncd:
#   - change-to-standby latency of one small file, over N changes: gwmirror
#     (a one-slot sandbox following changes: the new content committed in
#     the standby tree) against lsyncd in rsync mode to an rsync daemon on
#     loopback (the content delivered), with delay 0 and with lsyncd's
#     default delay (fewer changes: each costs its 15 s);
#   - idle: CPU seconds of every gwmirror daemon while nothing changes;
#   - churn soak: R in-place edits per second over a pool of files for S
#     seconds; the coordinator's lag metric sampled twice a second (p50,
#     p99, max), the daemons' CPU, and how long after the last edit the
#     standby holds every file's last content.
# Every loop is bounded in count and time.
#
#   tests/bench/latency_bench.sh [--size small|large] [--changes N]
#       [--default-delay-changes N] [--idle-seconds S] [--soak-seconds S]
#       [--soak-rate R] [--wan SPEC]
#
# With --wan (root), the sandbox's sites sit on either end of a link of that
# shape, and lsyncd (production's namespace) reaches the rsync daemon
# across the same link (standby's).
set -euo pipefail
name=latency
size=small; changes=50; default_changes=3; idle=10; soak=60; rate=200; wan=
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift 2;;
    --changes) changes=$2; shift 2;;
    --default-delay-changes) default_changes=$2; shift 2;;
    --idle-seconds) idle=$2; shift 2;;
    --soak-seconds) soak=$2; shift 2;;
    --soak-rate) rate=$2; shift 2;;
    --wan) wan=$2; shift 2;;
    *) echo "latency_bench: unknown option $1" >&2; exit 2;;
  esac
done
. "$(dirname "$0")/sandbox_common.sh"
command -v lsyncd >/dev/null || { echo "latency_bench: lsyncd is not installed (scripts/setup.sh installs it)" >&2; exit 1; }

"$G" sandbox up --dir "$W/sb" --slots 1 --size "$size" ${wan:+--wan "$wan"} >"$W/sandbox.log" 2>&1 || {
  cat "$W/sandbox.log" >&2; exit 1; }
wan_json=${wan:+$W/sb/sandbox.json}
. "$top/tests/bench/rsyncd.sh"

# lsyncd's source: a copy of the same gateway conf directory.
prod=$(python3 -c "import json; print(json.load(open('$W/sb/sandbox.json'))['slots'][0]['production']['root'])")
conf="opt/Axway-7.7/apigateway/conf"
mkdir -p "$W/lsrc"
cp -a "$prod/$conf/." "$W/lsrc/"
lsyncd_start() {  # lsyncd_start DELAY ("" for its default)
  local delay_line=""
  [ -n "$1" ] && delay_line="delay = $1,"
  cat > "$W/lsyncd.lua" <<LUA
settings { nodaemon = true, logfile = "$W/lsyncd.log", insist = true }
sync { default.rsync, source = "$W/lsrc/", target = "rsync://$rsync_addr:$rport/standby/",
       $delay_line rsync = { archive = true } }
LUA
  rm -rf "$W/rsync-dest"; mkdir -p "$W/rsync-dest"
  ${in_p[@]+"${in_p[@]}"} lsyncd "$W/lsyncd.lua" >>"$W/lsyncd.out" 2>&1 &
  lsyncd_pid=$!
  # Its startup sync copies everything; wait for it.
  for _ in $(seq 600); do
    [ -e "$W/rsync-dest/envSettings.props" ] && break; sleep 0.05
  done
  [ -e "$W/rsync-dest/envSettings.props" ] || { echo "latency_bench: lsyncd did not start" >&2; cat "$W/lsyncd.log" >&2; exit 1; }
}
lsyncd_stop() { kill "$lsyncd_pid"; wait "$lsyncd_pid" 2>/dev/null || true; }

measure() {  # measure TOOL N SRC_FILE DST_FILE [PID...]
  python3 - "$W" "$@" <<'PY'
import os, random, sys, time
W, tool, n, src, dst = sys.argv[1:6]
pids = sys.argv[6:]
random.seed(7)
def ticks(stat_path):
    f = open(stat_path).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
def cpu():
    # Every thread's CPU (exited ones too), less the replica's drift
    # checker: its periodic re-scan of the whole standby tree (every 5 s in
    # the sandbox) costs the same with or without changes, and a few
    # seconds' idle rate cannot tell it apart (one scan more or less in the
    # window swung the per-change figure by tens of ms).
    t = 0
    for p in pids:
        t += ticks(f"/proc/{p}/stat")
        for tid in os.listdir(f"/proc/{p}/task"):
            try:
                if open(f"/proc/{p}/task/{tid}/comm").read().strip() == "gwm-drift":
                    t -= ticks(f"/proc/{p}/task/{tid}/stat")
            except OSError:
                pass
    return t / os.sysconf("SC_CLK_TCK")
# The processes' idle rate first, so the CPU a change costs can be told
# from what they spend anyway (drift checks, heartbeats).
i0, t0 = cpu(), time.monotonic()
time.sleep(3)
idle_rate = (cpu() - i0) / (time.monotonic() - t0)
c0, s0 = cpu(), time.monotonic()
lat = []
for i in range(int(n)):
    # Each change has another size: rsync's quick check (size and mtime to
    # the second) would skip a same-size edit within the same second, and
    # lsyncd would never deliver it (gwmirror hashes, so it would).
    body = f"latency.change={i:06d} {random.getrandbits(64):016x} {'#' * i}\n".encode()
    t0 = time.monotonic()
    deadline = t0 + 45
    with open(src, "wb") as f:
        f.write(body)
    while True:
        try:
            with open(dst, "rb") as f:
                if f.read() == body:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"latency_bench: {tool}: change {i} not delivered within 45 s")
        time.sleep(0.002)
    lat.append(time.monotonic() - t0)
    time.sleep(random.uniform(0.1, 0.3))
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
used = cpu() - c0
per_change_ms = max(0.0, used - idle_rate * (time.monotonic() - s0)) / len(lat) * 1000
print(f"{tool}\t{len(lat)}\t{q(0.5):.3f}\t{q(0.99):.3f}\t{lat[-1]:.3f}\t{used:.2f}\t{per_change_ms:.1f}")
PY
}

pids() { python3 - "$W" <<'PY'
import json, sys
sb = json.load(open(f"{sys.argv[1]}/sb/sandbox.json"))
print(sb["slots"][0]["production"]["pid"], sb["slots"][0]["standby"]["pid"], sb["coordinator_process"]["pid"])
PY
}
read -r src_pid rep_pid coord_pid <<<"$(pids)"
standby=$(python3 -c "import json; print(json.load(open('$W/sb/sandbox.json'))['slots'][0]['standby']['root'])")
results="$W/latency.tsv"; : >"$results"

echo "latency_bench: $changes single-file changes through gwmirror" >&2
measure "gwmirror (follow)" "$changes" "$prod/$conf/latency.props" "$standby/$conf/latency.props" \
  "$src_pid" "$rep_pid" "$coord_pid" >>"$results"
echo "latency_bench: $changes through lsyncd, delay 0" >&2
lsyncd_start 0
measure "lsyncd (delay 0)" "$changes" "$W/lsrc/latency.props" "$W/rsync-dest/latency.props" "$lsyncd_pid" >>"$results" || {
  tail -30 "$W/lsyncd.log" >&2; exit 1; }
lsyncd_stop
if [ "$default_changes" -gt 0 ]; then
  echo "latency_bench: $default_changes through lsyncd, default delay" >&2
  lsyncd_start ""
  measure "lsyncd (default delay)" "$default_changes" "$W/lsrc/latency.props" "$W/rsync-dest/latency.props" "$lsyncd_pid" >>"$results"
  lsyncd_stop
fi

echo "latency_bench: ${idle}s idle, then a ${soak}s soak at ${rate}/s" >&2
metrics=$(python3 -c "import json; print(json.load(open('$W/sb/sandbox.json'))['metrics_url'])")
python3 - "$W" "$idle" "$soak" "$rate" "$metrics" "$prod/$conf" "$standby/$conf" \
  "$src_pid" "$rep_pid" "$coord_pid" <<'PY' >>"$results"
import os, random, sys, time, urllib.request
W, idle, soak, rate, metrics, src, dst = sys.argv[1:8]
pids = sys.argv[8:]
idle, soak, rate = float(idle), float(soak), float(rate)
def cpu(p):
    f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
def rss(p):
    for line in open(f"/proc/{p}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
def lag():
    body = urllib.request.urlopen(metrics, timeout=2).read().decode()
    for line in body.splitlines():
        if line.startswith('gwmirror_slot_lag_seconds{slot="gw1"}'):
            return float(line.split()[-1])
    return 0.0
names = ["source", "replica", "coordinator"]
time.sleep(2)  # let the last latency checkpoint settle
c0 = [cpu(p) for p in pids]
time.sleep(idle)
c1 = [cpu(p) for p in pids]
print("idle\t" + "\t".join(f"{n}={b - a:.2f}" for n, a, b in zip(names, c0, c1)) + f"\t{idle:.0f}")
# The soak: in-place edits over a pool of 100 files, paced to `rate`.
random.seed(11)
os.makedirs(f"{src}/soak", exist_ok=True)
pool = [f"soak/f{i:03d}.props" for i in range(100)]
last = {}
samples = []
c0 = [cpu(p) for p in pids]
start = time.monotonic()
next_sample = start
i = 0
while True:
    now = time.monotonic()
    if now - start >= soak:
        break
    target = int((now - start) * rate)
    while i < target:
        f = pool[random.randrange(len(pool))]
        body = f"edit={i} {'x' * random.randrange(200, 3000)}\n".encode()
        with open(f"{src}/{f}", "wb") as h:
            h.write(body)
        last[f] = body
        i += 1
    if now >= next_sample:
        samples.append(lag())
        next_sample += 0.5
    time.sleep(0.002)
end = time.monotonic()
edits = i
# Drain: every file's last content on the standby (bounded: 120 s).
while time.monotonic() - end < 120:
    ok = True
    for f, body in last.items():
        try:
            with open(f"{dst}/{f}", "rb") as h:
                if h.read() != body:
                    ok = False
                    break
        except OSError:
            ok = False
            break
    if ok:
        break
    time.sleep(0.05)
else:
    sys.exit("latency_bench: the standby did not converge within 120 s of the soak")
drain = time.monotonic() - end
c1 = [cpu(p) for p in pids]
samples.sort()
q = lambda p: samples[min(len(samples) - 1, int(p * len(samples)))]
print(f"soak\t{edits}\t{end - start:.1f}\t{q(0.5):.3f}\t{q(0.99):.3f}\t{samples[-1]:.3f}\t{drain:.2f}\t"
      + " ".join(f"{n}={b - a:.1f}" for n, a, b in zip(names, c0, c1)) + "\t"
      + " ".join(f"{n}={rss(p):.0f}" for n, p in zip(names, pids)))
PY

python3 - "$results" "$changes" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
print("| latency of one small file | changes | p50 s | p99 s | max s | CPU s of the tool's processes | CPU ms per change (idle rate and the drift checker left out) |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    if r[0] not in ("idle", "soak"):
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]} | {r[6]} |")
for r in rows:
    if r[0] == "idle":
        print(f"\nidle {r[4]} s, CPU seconds: {', '.join(r[1:4])}")
    if r[0] == "soak":
        print(f"\n| churn soak | edits | seconds | lag p50 s | lag p99 s | lag max s | standby complete after the last edit s | CPU s | peak RSS MiB |")
        print("|---|---|---|---|---|---|---|---|---|")
        print(f"| gwmirror (follow) | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]} | {r[6]} | {r[7]} | {r[8]} |")
PY

#!/usr/bin/env bash
# A partition between the sites (issue 19): a one-slot sandbox across a
# shaped link, production changing a few times a second throughout; the
# link goes down for S seconds and comes back. Prints what status said
# during the partition (state, RPO), and how long after healing the
# standby held production's last content and RPO was under 5 s, with no
# operator action. With --prometheus, a real Prometheus scrapes the
# coordinator with the alert rules loaded, and the bench prints which
# alerts fired during the partition (after how long) and when they
# resolved (give --down-seconds 150 or more: the node-down rule waits 2 min).
# Root only; every loop is bounded.
#
#   tests/bench/partition_bench.sh [--wan SPEC] [--down-seconds S]
#       [--edits-per-second R] [--prometheus]
set -euo pipefail
name=partition_bench
wan="delay=40ms,jitter=5ms,rate=100mbit,loss=0.1%"; down=60; rate=5; prom=0
while [ $# -gt 0 ]; do
  case "$1" in
    --wan) wan=$2; shift 2;;
    --down-seconds) down=$2; shift 2;;
    --edits-per-second) rate=$2; shift 2;;
    --prometheus) prom=1; shift;;
    *) echo "$name: unknown option $1" >&2; exit 2;;
  esac
done
. "$(dirname "$0")/sandbox_common.sh"

"$G" sandbox up --dir "$W/sb" --slots 1 --wan "$wan" >"$W/sandbox.log" 2>&1 || {
  cat "$W/sandbox.log" >&2; exit 1; }
echo "partition_bench: link $wan, down for ${down}s, $rate edits/s"
prom_port=0
if [ "$prom" = 1 ]; then
  prom_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  python3 - "$W" "$top" <<'PY'
import json, sys
W, top = sys.argv[1:]
sb = json.load(open(f"{W}/sb/sandbox.json"))
json.dump({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
           "rule_files": [f"{top}/deploy/prometheus/gwmirror-alerts.yml"],
           "scrape_configs": [{"job_name": "gwmirror-coordinator", "static_configs": [
               {"targets": [sb["metrics_url"][len("http://"):-len("/metrics")]]}]}]},
          open(f"{W}/prometheus.yml", "w"))
PY
  prometheus --config.file="$W/prometheus.yml" --storage.tsdb.path="$W/tsdb" \
    --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$W/prometheus.log" 2>&1 &
  sleep 5
fi
python3 - "$W" "$G" "$down" "$rate" "$prom_port" <<'PY'
import json, subprocess, sys, time, urllib.request
W, G, down, rate = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
prom = int(sys.argv[5])
def firing():
    if not prom:
        return set()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{prom}/api/v1/alerts", timeout=5) as r:
            alerts = json.load(r)["data"]["alerts"]
        return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}
    except OSError:
        return set()
fired = {}   # alert -> seconds into the partition it was first seen firing
resolved = {}  # alert -> seconds after healing it stopped firing
sb = json.load(open(f"{W}/sb/sandbox.json"))
conf = "opt/Axway-7.7/apigateway/conf"
src = f'{sb["slots"][0]["production"]["root"]}/{conf}/partition.props'
dst = f'{sb["slots"][0]["standby"]["root"]}/{conf}/partition.props'
def status():
    r = subprocess.run([G, "status", "--json", "--config", sb["cli_config"]],
                       capture_output=True, text=True, timeout=30)
    return json.loads(r.stdout) if r.returncode == 0 else None
def link(how):
    subprocess.run([G, "sandbox", "link", how, "--dir", f"{W}/sb"], check=True,
                   capture_output=True, timeout=60)
i = 0
def edit():
    global i
    i += 1
    with open(src, "w") as f:
        f.write(f"edit={i}\n")
    return f"edit={i}\n"
# A quiet start, then the partition while production keeps changing.
for _ in range(int(5 * rate)):
    edit(); time.sleep(1 / rate)
link("down")
t0 = time.monotonic(); states = {}; rpo = []
next_look = t0
while time.monotonic() - t0 < down:
    last = edit()
    if time.monotonic() >= next_look:
        for a in firing():
            fired.setdefault(a, time.monotonic() - t0)
        s = status()
        if s:
            st = s["slots"][0]["state"]
            states[st] = states.get(st, 0) + 1
            rpo.append(int(s.get("rpo_ms", 0)) / 1000)
        next_look += 2
    time.sleep(1 / rate)
link("up")
healed = time.monotonic()
content_at = rpo_at = None
while time.monotonic() - healed < 120 and (content_at is None or rpo_at is None
                                           or (fired and len(resolved) < len(fired))):
    now = time.monotonic() - healed
    still = firing()
    for a in fired:
        if a not in still:
            resolved.setdefault(a, now)
    try:
        if content_at is None and open(dst).read() == last:
            content_at = now
    except OSError:
        pass
    if rpo_at is None:
        s = status()
        if s and int(s.get("rpo_ms", 10**9)) < 5000:
            rpo_at = now
    time.sleep(0.1)
print(f"| partition | edits | slot states seen while down (samples) | RPO at the end of it s | standby has the last edit after healing s | RPO under 5 s after healing s |")
print("|---|---|---|---|---|---|")
fmt = lambda v: "not within 120 s" if v is None else f"{v:.1f}"
print(f"| {down:.0f} s, {rate:g} edits/s | {i} | "
      + ", ".join(f"{k} ({v})" for k, v in sorted(states.items()))
      + f" | {rpo[-1] if rpo else 0:.1f} | {fmt(content_at)} | {fmt(rpo_at)} |")
if prom:
    print("\n| alert | firing after (s into the partition) | resolved (s after healing) |")
    print("|---|---|---|")
    for a in sorted(fired):
        print(f"| {a} | {fired[a]:.0f} | {fmt(resolved.get(a))} |")
    if not fired:
        print("| none fired | | |")
sys.exit(0 if content_at is not None and rpo_at is not None and rpo_at < 30 else 1)
PY

#!/usr/bin/env bash
# Monitoring, end to end, with a real Prometheus (Debian's package):
#   1. the alert rules pass `promtool check rules` and their unit tests
#      (`promtool test rules`), the example scrape config `promtool check
#      config`, and the Grafana dashboard is JSON whose queries name only
#      documented metrics;
#   2. a one-slot sandbox with its database servers runs; Prometheus
#      scrapes the coordinator and both nodes at the `metrics_url`s of
#      sandbox.json every second, with the alert rules loaded;
#   3. every daemon's gRPC health service says SERVING for itself and its
#      services (`gwmirror health`), and NOT_FOUND for a service it lacks;
#   4. through Prometheus's HTTP API: every target is up, the RPO and lag
#      series come back with samples over time, the RPO falls at a
#      checkpoint, the rules are loaded and healthy, and every metric in
#      docs/OPERATIONS.md's tables is in the scrape and every scraped
#      gwmirror_ metric is in those tables.
#
#   tests/deploy/prometheus_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
top=$(cd "$(dirname "$0")/../.." && pwd)
for tool in prometheus promtool python3; do
  command -v $tool >/dev/null || {
    echo "prometheus_test: $tool missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
W=$(mktemp -d /tmp/gwmirror-prom.XXXXXX)
G="$build/gwmirror"
prom_pid=""
cleanup() {
  [ -n "$prom_pid" ] && kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null || true
  "$G" sandbox down --dir "$W/sb" >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT

echo "== rules, config and dashboard"
promtool check rules "$top/deploy/prometheus/gwmirror-alerts.yml"
(cd "$top/deploy/prometheus" && promtool test rules gwmirror-alerts.test.yml)
promtool check config "$top/deploy/prometheus/prometheus.yml"
python3 - "$top" <<'PY'
import json, re, sys
top = sys.argv[1]
documented = set(re.findall(r"^\| `(gwmirror_[a-z_]+)`", open(f"{top}/docs/OPERATIONS.md").read(), re.M))
assert len(documented) > 20, f"docs/OPERATIONS.md lists only {len(documented)} metrics"
d = json.load(open(f"{top}/deploy/grafana/gwmirror-dashboard.json"))
used = set()
for p in d["panels"]:
    assert p["targets"], f"panel {p['title']} has no query"
    for t in p["targets"]:
        for m in re.findall(r"gwmirror_[a-z_]+", t["expr"]):
            used.add(re.sub(r"_(bucket|sum|count)$", "", m))
undocumented = used - documented
assert not undocumented, f"the dashboard queries undocumented metrics: {sorted(undocumented)}"
rules = open(f"{top}/deploy/prometheus/gwmirror-alerts.yml").read()
for m in set(re.findall(r"gwmirror_[a-z_]+", rules)) - documented:
    sys.exit(f"the alert rules use an undocumented metric: {m}")
print(f"dashboard: {len(d['panels'])} panels over {len(used)} documented metrics")
PY

echo "== sandbox"
timeout 300 "$G" sandbox up --dir "$W/sb" --slots 1 --databases >"$W/sandbox.log" 2>&1 || {
  cat "$W/sandbox.log" >&2; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 - "$W" "$top" <<'PY'
import json, sys
W, top = sys.argv[1:]
sb = json.load(open(f"{W}/sb/sandbox.json"))
def hostport(url):
    assert url.startswith("http://") and url.endswith("/metrics"), url
    return url[len("http://"):-len("/metrics")]
nodes = []
for slot in sb["slots"]:
    for site in ("production", "standby"):
        nodes.append({"targets": [hostport(slot[site]["metrics_url"])],
                      "labels": {"site": site, "slot": slot["name"]}})
cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
       "rule_files": [f"{top}/deploy/prometheus/gwmirror-alerts.yml"],
       "scrape_configs": [
           {"job_name": "gwmirror-coordinator",
            "static_configs": [{"targets": [hostport(sb["metrics_url"])]}]},
           {"job_name": "gwmirror-node", "static_configs": nodes}]}
json.dump(cfg, open(f"{W}/prometheus.yml", "w"))  # JSON is YAML
PY
promtool check config "$W/prometheus.yml" >/dev/null

echo "== gRPC health of every daemon"
export GWMIRROR_CONFIG="$W/sb/cli.json"
"$G" health --service gwmirror.v1.Control
python3 - "$W" >"$W/nodes" <<'PY'
import json, sys
sb = json.load(open(f"{sys.argv[1]}/sb/sandbox.json"))
for slot in sb["slots"]:
    for site in ("production", "standby"):
        print(f'{slot["name"]}-{site} {slot[site]["address"]}')
PY
while read -r name address; do
  for service in gwmirror.v1.Replica gwmirror.v1.Source; do
    "$G" health --address "$address" --name "$name" --service $service
  done
done <"$W/nodes"
if "$G" health --service no.such.Service 2>"$W/health.err"; then
  echo "prometheus_test: an unknown service was reported healthy" >&2; exit 1
fi
grep -q "service name unknown" "$W/health.err"
prometheus --config.file="$W/prometheus.yml" --storage.tsdb.path="$W/tsdb" \
  --web.listen-address="127.0.0.1:$port" --log.level=warn >"$W/prometheus.log" 2>&1 &
prom_pid=$!

echo "== prometheus on 127.0.0.1:$port"
# A change on production and a checkpoint while Prometheus watches, so the
# RPO series has a fall in it.
python3 - "$W" "$port" "$top" "$G" <<'PY'
import json, re, subprocess, sys, time, urllib.parse, urllib.request
W, port, top, G = sys.argv[1:]
api = f"http://127.0.0.1:{port}/api/v1"
def get(path, **params):
    url = f"{api}/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]
def query(q):
    return get("query", query=q)["result"]
def wait(what, check, seconds=30):
    deadline = time.time() + seconds
    while True:
        try:
            v = check()
            if v:
                return v
        except OSError:
            pass
        if time.time() > deadline:
            print(open(f"{W}/prometheus.log").read()[-3000:], file=sys.stderr)
            for t in get("targets")["activeTargets"]:
                print(t["scrapeUrl"], t["health"], t["lastError"], file=sys.stderr)
            sys.exit(f"prometheus_test: timed out waiting for {what}")
        time.sleep(0.5)

wait("Prometheus to be ready", lambda: urllib.request.urlopen(
    f"http://127.0.0.1:{port}/-/ready", timeout=2).status == 200)
up = wait("three targets up", lambda: (lambda r: r if len(r) == 3 and
          all(x["value"][1] == "1" for x in r) else None)(query("up")))
print("targets up:", sorted(f'{x["metric"]["job"]}/{x["metric"]["instance"]}' for x in up))

sb = json.load(open(f"{W}/sb/sandbox.json"))
env = {"GWMIRROR_CONFIG": sb["cli_config"], "PATH": "/usr/bin:/bin"}
time.sleep(5)  # RPO samples before the checkpoint
root = sb["slots"][0]["production"]["root"]
with open(f"{root}/{sb['slots'][0]['production']['paths'][0]}/conf/prometheus-test.txt", "w") as f:
    f.write("a change Prometheus sees mirrored\n")
out = subprocess.run([G, "checkpoint", "create", "--wait"], env=env,
                     capture_output=True, text=True, timeout=120)
assert out.returncode == 0, out.stderr
print("checkpoint:", out.stdout.strip())
time.sleep(5)  # and after it

now = time.time()
rng = get("query_range", query="gwmirror_rpo_seconds", start=now - 30, end=now, step=1)["result"]
assert len(rng) == 1, rng
values = [float(v) for _, v in rng[0]["values"]]
assert len(values) >= 6, f"only {len(values)} RPO samples"
falls = [b for a, b in zip(values, values[1:]) if b < a]
assert falls, f"the RPO never fell at the checkpoint: {values}"
print(f"RPO: {len(values)} samples over 30 s, {min(values):.2f}..{max(values):.2f} s, fell {len(falls)} time(s)")
lag = query('gwmirror_slot_lag_seconds{slot="gw1"}')
assert len(lag) == 1, lag
print("lag of gw1:", lag[0]["value"][1], "s")
files = query('gwmirror_replica_received_files_total{site="standby"}')
assert files and float(files[0]["value"][1]) > 0, files
dumps = query('gwmirror_dump_job_runs_total{outcome="ok",site="production"}')
assert len(dumps) >= 3 and all(float(d["value"][1]) >= 1 for d in dumps), dumps
print("dump jobs ok:", sorted(d["metric"]["dump"] for d in dumps))

# The sandbox's deployment connects to a billing database nothing dumps:
# one UNPROTECTED connection, and its alert pending (it fires after 10 m).
unprotected = query('gwmirror_external_connections{state="UNPROTECTED"}')
assert len(unprotected) == 1 and unprotected[0]["value"][1] == "1", unprotected
protected = query('gwmirror_external_connections{state="PROTECTED"}')
assert float(protected[0]["value"][1]) == 3, protected
pending = wait("the coverage alert to be pending", lambda: query(
    'ALERTS{alertname="GwmirrorExternalConnectionUnprotected",alertstate="pending"}'))
print("coverage: 1 connection UNPROTECTED, 3 PROTECTED; alert", pending[0]["metric"]["alertstate"])

groups = get("rules")["groups"]
rules = [r for g in groups for r in g["rules"]]
want = len(re.findall(r"^      - alert: ", open(f"{top}/deploy/prometheus/gwmirror-alerts.yml").read(), re.M))
assert len(rules) == want >= 14, f"{len(rules)} rules loaded of {want}"
bad = [r["name"] for r in rules if r["health"] != "ok"]
assert not bad, f"rules not healthy: {bad}"
firing = sorted({r["name"] for r in rules if r.get("state") == "firing"})
print("rules loaded and healthy:", len(rules), "firing:", firing or "none")
assert "GwmirrorNodeDown" not in firing and "GwmirrorDaemonUnreachable" not in firing

documented = set(re.findall(r"^\| `(gwmirror_[a-z_]+)`", open(f"{top}/docs/OPERATIONS.md").read(), re.M))
names = set(get("label/__name__/values"))
scraped = {re.sub(r"_(bucket|sum|count)$", "", n) for n in names if n.startswith("gwmirror_")}
missing = documented - scraped
assert not missing, f"documented but not scraped: {sorted(missing)}"
extra = scraped - documented
assert not extra, f"scraped but not documented in docs/OPERATIONS.md: {sorted(extra)}"
print(f"all {len(documented)} documented metrics scraped, none undocumented")
PY
echo "prometheus_test: passed"

#!/usr/bin/env bash
# The README's main command: a two-site mirror of sample gateway hosts on
# this machine. Production host i is a directory standing in for '/', with
# a generated Axway-style installation; its standby twin starts empty. Each
# standby host runs a real replica daemon (gwmirror-node serve) on a
# loopback port with mutual TLS; each production host pushes checkpoints
# to it (gwmirror-node push). Until the coordinator lands (issue 3), this
# script cuts and commits checkpoints slot by slot.
#
#   scripts/sandbox.sh up   [--dir DIR] [--slots N] [--size small|large]
#   scripts/sandbox.sh sync [--dir DIR]     # next checkpoint on every slot
#   scripts/sandbox.sh status [--dir DIR]
#   scripts/sandbox.sh down [--dir DIR]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-up}; shift || true
dir=/tmp/gwmirror-sandbox; slots=2; size=small
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2;;
    --slots) slots=$2; shift 2;;
    --size) size=$2; shift 2;;
    *) echo "sandbox: unknown option $1" >&2; exit 2;;
  esac
done
B=$top/build
G=$B/gwmirror; N=$B/gwmirror-node

build() {
  bash "$top/scripts/setup.sh"
  cmake -S "$top" -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$B" -j"$(nproc)" --target gwmirror gwmirror-node
}

start_replica() {  # slot index
  local i=$1
  rm -f "$dir/gw$i/replica.port"
  nohup "$N" serve --config "$dir/gw$i/replica.json" >>"$dir/gw$i/replica.log" 2>&1 &
  echo $! > "$dir/gw$i/replica.pid"
  for _ in $(seq 200); do [ -s "$dir/gw$i/replica.port" ] && break; sleep 0.05; done
  [ -s "$dir/gw$i/replica.port" ] || { echo "sandbox: replica gw$i did not start; see $dir/gw$i/replica.log" >&2; exit 1; }
  sed "s/PORT/$(cat "$dir/gw$i/replica.port")/" "$dir/gw$i/source.json.in" > "$dir/gw$i/source.json"
}

checkpoint() {  # cut the next checkpoint on every slot
  local n=$(( $(cat "$dir/checkpoint" 2>/dev/null || echo 0) + 1 ))
  for i in $(seq "$(cat "$dir/slots")"); do
    out=$("$N" push --config "$dir/gw$i/source.json" --checkpoint "$n" --commit)
    echo "gw$i: $out"
  done
  echo "$n" > "$dir/checkpoint"
}

status() {
  for i in $(seq "$(cat "$dir/slots")"); do
    p=$("$N" scan --config "$dir/gw$i/source.json" | sed -E 's/.*"manifest_digest": "([0-9a-f]+)".*/\1/')
    s=$("$N" scan --config "$dir/gw$i/standby.json" | sed -E 's/.*"manifest_digest": "([0-9a-f]+)".*/\1/')
    pid=$(cat "$dir/gw$i/replica.pid")
    alive=down; kill -0 "$pid" 2>/dev/null && alive="up (pid $pid, port $(cat "$dir/gw$i/replica.port"))"
    same=DIFFERENT; [ "$p" = "$s" ] && same=identical
    echo "gw$i: replica $alive; production ${p:0:16} standby ${s:0:16}: $same"
  done
  echo "last checkpoint: $(cat "$dir/checkpoint")"
}

case "$cmd" in
  up)
    build
    [ -e "$dir/slots" ] && { echo "sandbox: $dir is in use; run: $0 down --dir $dir" >&2; exit 1; }
    mkdir -p "$dir"; echo "$slots" > "$dir/slots"
    "$G" certs init --dir "$dir/pki" >/dev/null
    "$G" certs issue --dir "$dir/pki" --name operator >/dev/null
    for i in $(seq "$slots"); do
      "$G" certs issue --dir "$dir/pki" --name "replica-gw$i" >/dev/null
      "$G" certs issue --dir "$dir/pki" --name "source-gw$i" >/dev/null
      echo "gw$i production sample: $("$G" sample --dir "$dir/gw$i/production" --size "$size" --host "$i" --hosts "$slots")"
      mkdir -p "$dir/gw$i/standby"
      python3 - "$dir" "$i" <<'PY'
import json, sys
d, i = sys.argv[1], sys.argv[2]
p = "opt/Axway-7.7"
roots = [{"path": f"{p}/apigateway/conf"}, {"path": f"{p}/apigateway/groups"},
         {"path": f"{p}/apigateway/ext"},
         {"path": f"{p}/apigateway/system/conf", "include": ["nodemanager.xml"]},
         {"path": f"{p}/apigateway/messaging-shared"}, {"path": f"{p}/analytics/conf"},
         {"path": f"{p}/analytics/ext"}, {"path": "etc/init.d", "include": ["vshell-*"]}]
tls = lambda n: {"ca_file": f"{d}/pki/ca/ca.pem", "cert_file": f"{d}/pki/certs/{n}.pem",
                 "key_file": f"{d}/pki/certs/{n}.key"}
h = f"{d}/gw{i}"
json.dump({"slot": f"gw{i}", "host_root": f"{h}/standby", "state_dir": f"{h}/replica-state",
           "tls": tls(f"replica-gw{i}"), "roots": roots, "port_file": f"{h}/replica.port",
           "replica": {"source_identity": f"source-gw{i}",
                       "controller_identities": ["operator", f"source-gw{i}"],
                       "listen": "127.0.0.1:0"}}, open(f"{h}/replica.json", "w"), indent=1)
src = {"slot": f"gw{i}", "host_root": f"{h}/production", "state_dir": f"{h}/source-state",
       "tls": tls(f"source-gw{i}"), "roots": roots,
       "source": {"replica_address": "127.0.0.1:PORT", "replica_identity": f"replica-gw{i}"}}
json.dump(src, open(f"{h}/source.json.in", "w"), indent=1)
src["host_root"] = f"{h}/standby"
json.dump(src, open(f"{h}/standby.json", "w"), indent=1)
PY
      start_replica "$i"
    done
    checkpoint
    python3 - "$dir" "$slots" <<'PY'
import json, sys
d, n = sys.argv[1], int(sys.argv[2])
roots = ["opt/Axway-7.7/apigateway", "opt/Axway-7.7/analytics", "etc/init.d"]
out = {"slots": []}
for i in range(1, n + 1):
    h = f"{d}/gw{i}"
    out["slots"].append({"name": f"gw{i}",
        "production": {"root": f"{h}/production", "paths": roots,
                       "push": ["gwmirror-node", "push", "--config", f"{h}/source.json"]},
        "standby": {"address": "127.0.0.1:" + open(f"{h}/replica.port").read().strip(),
                    "root": f"{h}/standby", "paths": roots,
                    "pid": int(open(f"{h}/replica.pid").read()),
                    "argv": ["gwmirror-node", "serve", "--config", f"{h}/replica.json"]}})
json.dump(out, open(f"{d}/sandbox.json", "w"), indent=1)
PY
    echo; status
    echo; echo "sandbox up in $dir (description: $dir/sandbox.json)."
    echo "Change files under $dir/gw1/production, then: $0 sync --dir $dir"
    ;;
  sync) checkpoint; status;;
  status) status;;
  down)
    for f in "$dir"/gw*/replica.pid; do [ -e "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
    rm -rf "$dir"; echo "sandbox in $dir stopped and removed"
    ;;
  *) echo "sandbox: unknown command $cmd (up, sync, status, down)" >&2; exit 2;;
esac

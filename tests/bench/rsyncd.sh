# Sourced by the benchmarks: an rsync daemon on a free loopback port with
# one writable module "standby" at $W/rsync-dest, running in the background
# of the caller (its cleanup kills it). Sets $rport and $rsyncd_pid, and
# $rsync_sel: rsync's excludes for gwmirror's mirror set of a sample host.
# With $wan_json (the sandbox.json of a `sandbox up --wan`), it listens on
# the standby's address inside the standby's namespace; either way it sets
# $rsync_addr, and $in_p and $in_s, the command prefixes that run a
# command on production's and the standby's side (empty on loopback).
in_p=(); in_s=(); rsync_addr=127.0.0.1
if [ -n "${wan_json:-}" ]; then
  read -r ns_p ns_s rsync_addr < <(python3 -c 'import json, sys; w = json.load(open(sys.argv[1]))["wan"]; print(w["namespaces"]["production"], w["namespaces"]["standby"], w["addresses"]["standby"])' "$wan_json")
  in_p=(ip netns exec "$ns_p"); in_s=(ip netns exec "$ns_s")
fi
rport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$W/rsync-dest"
cat > "$W/rsyncd.conf" <<CONF
pid file = $W/rsyncd.pid
use chroot = no
# No DNS here: a reverse lookup of a client's address would stall each
# connection for seconds.
reverse lookup = no
[standby]
  path = $W/rsync-dest
  read only = false
  uid = root
  gid = root
CONF
${in_s[@]+"${in_s[@]}"} rsync --daemon --no-detach --address="$rsync_addr" --port=$rport --config="$W/rsyncd.conf" &
rsyncd_pid=$!
for _ in $(seq 100); do ${in_s[@]+"${in_s[@]}"} rsync "rsync://$rsync_addr:$rport/" >/dev/null 2>&1 && break; sleep 0.05; done
# The same file set as gwmirror's mirror set (default excludes, the
# roots' include rules) on a `gwmirror sample` host.
rsync_sel=(--exclude=opsdb.d/ --exclude=logs/ --exclude=trace/ --exclude=events/
  --exclude=groups/certs/private/temp/ --exclude='*.pid' --exclude='*.lock' --exclude=system/lib/
  --exclude=other-product-file.xml --exclude=/etc/init.d/cron)

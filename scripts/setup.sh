#!/usr/bin/env bash
# Installs the Debian 12 packages gwmirror needs, only those missing.
# Used by both README commands (scripts/test.sh and scripts/sandbox.sh).
set -euo pipefail
pkgs=(cmake g++ make ccache pkg-config
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
      libabsl-dev librsync-dev libb2-dev libxxhash-dev libssl-dev libzstd-dev libsqlite3-dev libexpat1-dev libzip-dev libgtest-dev libgmock-dev libcli11-dev libmicrohttpd-dev
      rsync rdiff python3 bc time
      mariadb-server mariadb-client postgresql postgresql-client slapd ldap-utils
      systemd prometheus dpkg-dev lsyncd iproute2 nftables etcd-server etcd-client "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

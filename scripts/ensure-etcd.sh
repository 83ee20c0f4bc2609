#!/usr/bin/env bash
# Makes sure the etcd binary is here for the tests of the etcd store (test/etcd.ts starts its
# own members on loopback ports with temporary data directories). Installs Debian's etcd-server
# when `etcd` is missing, without letting the package start a system etcd; never starts one.
# Idempotent, and silent when etcd is already in place.
set -euo pipefail

say() { printf 'ensure-etcd: %s\n' "$*" >&2; }

if command -v etcd >/dev/null 2>&1; then exit 0; fi

say "installing etcd-server"
export DEBIAN_FRONTEND=noninteractive
# The package must not start its service on this host (it would listen on 2379/2380 with a data
# directory of its own): a policy-rc.d that says no, for the time of the install, unless one is
# already there.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq >/dev/null
apt-get install -y -qq etcd-server >/dev/null

if ! command -v etcd >/dev/null 2>&1; then
  say "etcd-server installed but no etcd command on PATH"
  exit 1
fi

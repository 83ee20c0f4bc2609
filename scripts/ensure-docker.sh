#!/usr/bin/env bash
# Makes sure a Docker engine, busybox-static and redis-server (copied into the stateful
# example's database image, never run on the host) are here and dockerd answers.
# Idempotent, and silent when everything is already in place.
set -euo pipefail

SOCK=/var/run/docker.sock
say() { printf 'ensure-docker: %s\n' "$*" >&2; }

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
[ -x /bin/busybox ] || need+=(busybox-static)
[ -x /usr/bin/redis-server ] || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Packages must not start services on this host (redis-server would listen on 6379):
  # a policy-rc.d that says no, for the time of the install, unless one is already there.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

docker_ok() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if docker_ok; then exit 0; fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  say "starting dockerd"
  log=/var/log/orca-dockerd.log
  # setsid: the daemon must outlive the shell that started it.
  setsid nohup dockerd >"$log" 2>&1 < /dev/null &
fi

for _ in $(seq 1 120); do
  if [ -S "$SOCK" ] && docker_ok; then exit 0; fi
  sleep 0.5
done
say "dockerd did not answer on $SOCK within 60 s; see /var/log/orca-dockerd.log"
exit 1

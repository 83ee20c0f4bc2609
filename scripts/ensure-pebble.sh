#!/usr/bin/env bash
# Makes sure Debian's pebble (an ACME test CA) and pebble-challtestsrv are here for the tests of
# HTTPS at the edge (test/pebble.ts starts them on loopback ports with its own config and a
# throw-away CA for pebble's HTTPS). Installs the `pebble` package when missing; never starts
# anything. Idempotent, and silent when both commands are in place.
set -euo pipefail

say() { printf 'ensure-pebble: %s\n' "$*" >&2; }

if command -v pebble >/dev/null 2>&1 && command -v pebble-challtestsrv >/dev/null 2>&1; then exit 0; fi

say "installing pebble"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq pebble >/dev/null

if ! command -v pebble >/dev/null 2>&1 || ! command -v pebble-challtestsrv >/dev/null 2>&1; then
  say "pebble installed but pebble or pebble-challtestsrv is not on PATH"
  exit 1
fi

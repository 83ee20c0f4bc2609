#!/usr/bin/env bash
# Makes sure Debian's chromium is here for the dashboard's browser tests and bench
# (test/e2e/dashboard.test.ts, bench/dashboard.ts drive it with playwright-core, which downloads
# no browser of its own). Installs the `chromium` package when `chromium` is not on PATH; never
# starts anything. Idempotent; prints the browser's path.
set -euo pipefail

say() { printf 'ensure-chromium: %s\n' "$*" >&2; }

if ! command -v chromium >/dev/null 2>&1; then
  say "installing chromium (about a minute)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq chromium >/dev/null
  if ! command -v chromium >/dev/null 2>&1; then
    say "chromium installed but not on PATH"
    exit 1
  fi
fi
command -v chromium

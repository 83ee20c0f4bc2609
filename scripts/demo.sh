#!/usr/bin/env bash
# Orca's main job on a fresh machine: Docker up, Orca built, example images built locally,
# `orca server` on the embedded store, examples/web.toml applied, the service answering,
# a container killed and healed, and `orca status`.
#
#   bash scripts/demo.sh          # then keeps the server in the foreground (Ctrl-C stops it)
#   bash scripts/demo.sh --once   # stops the server when the demo is done
set -euo pipefail
cd "$(dirname "$0")/.."

once=false
[ "${1:-}" = "--once" ] && once=true

bash scripts/ensure-docker.sh
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build
node dist/examples/build-images.js

export ORCA_HOME="${ORCA_HOME:-$PWD/.orca}"
API_LISTEN="${ORCA_API_LISTEN:-127.0.0.1:6880}"
PROXY_LISTEN="${ORCA_PROXY_LISTEN:-127.0.0.1:8080}"
export ORCA_API="http://$API_LISTEN"
orca() { node bin/orca "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "starting orca server (data in $ORCA_HOME, log in $ORCA_HOME/server.log)"
mkdir -p "$ORCA_HOME"
node bin/orca server --api-listen "$API_LISTEN" --proxy-listen "$PROXY_LISTEN" --cluster-id demo >"$ORCA_HOME/server.log" 2>&1 &
server=$!
stop_server() { kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true; }
trap stop_server EXIT
for _ in $(seq 1 100); do
  curl -fs "$ORCA_API/healthz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$ORCA_HOME/server.log"; exit 1; }
  sleep 0.1
done

step "orca apply -f examples/web.toml"
orca apply -f examples/web.toml --wait --timeout 60

step "orca status"
orca status

step "the service answers through Orca's proxy: curl -H 'Host: web.localhost' http://$PROXY_LISTEN/"
curl -fsS -H 'Host: web.localhost' "http://$PROXY_LISTEN/"; echo

victim=$(orca status web -o json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).services[0].instances[0].containerId))')
step "kill -9 of one instance's main process (container ${victim:0:12})"
pid=$(docker inspect -f '{{.State.Pid}}' "$victim")
# A request loop through the proxy runs across the kill: no request may fail.
node -e '
const http = require("http"); const [host, port] = process.argv[1].split(":");
const agent = new http.Agent({ keepAlive: true }); let sent = 0, failed = 0; const end = Date.now() + 3000;
(function next() {
  if (Date.now() > end) { console.log(`requests through the proxy during the kill: ${sent} sent, ${failed} failed`); process.exit(0); }
  sent++;
  http.get({ host, port, path: "/", agent, headers: { host: "web.localhost" } }, (r) => { r.resume(); if (r.statusCode !== 200) failed++; r.on("end", next); })
    .on("error", () => { failed++; next(); });
})();' "$PROXY_LISTEN" &
loop=$!
sleep 0.5
t0=$(date +%s%N)
kill -9 "$pid"
until [ "$(orca status web -o json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const w=JSON.parse(s).services[0];console.log(w.replicas.ready===2&&w.instances.some(i=>i.restarts>0)?"yes":"no")})')" = yes ]; do sleep 0.05; done
t1=$(date +%s%N)
echo "healed: a replacement is ready $(( (t1 - t0) / 1000000 )) ms after the kill"
wait "$loop"

step "orca status (restarts and last exit shown)"
orca status

step "orca events --service web (the reconciliation log)"
orca events --service web | tail -n 8

if $once; then
  step "stopping the server (containers keep running; remove them with: orca delete web)"
  exit 0
fi
step "the server keeps running (Ctrl-C to stop it; containers keep running). Try: ORCA_HOME=$ORCA_HOME ORCA_API=$ORCA_API node bin/orca status"
trap - EXIT
wait "$server"

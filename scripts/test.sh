#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what is missing, builds, runs the unit and
# the real-Docker end-to-end suites, and ends with one line: `tests: N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-docker.sh || exit 1
bash scripts/ensure-etcd.sh || exit 1
bash scripts/ensure-pebble.sh || exit 1
bash scripts/ensure-chromium.sh >/dev/null || exit 1
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund || exit 1
fi
npm run --silent build || exit 1

out=$(mktemp -d)
status=0
for project in unit e2e; do
  npx vitest run --project "$project" --reporter=default --reporter=json --outputFile.json="$out/$project.json" "$@" || status=1
done

node -e '
const fs = require("fs");
let passed = 0, failed = 0, skipped = 0, files = 0;
for (const f of process.argv.slice(1)) {
  if (!fs.existsSync(f)) { failed++; console.error("no report: " + f); continue; }
  const r = JSON.parse(fs.readFileSync(f, "utf8"));
  passed += r.numPassedTests; failed += r.numFailedTests; skipped += r.numPendingTests + (r.numTodoTests || 0);
  for (const s of r.testResults) {
    if (s.status === "failed" && s.assertionResults.length === 0) { failed++; console.error("failed to load: " + s.name); }
    for (const a of s.assertionResults) if (a.status === "failed") {
      const why = String((a.failureMessages || [])[0] || "").split("\n")[0].slice(0, 300);
      console.error(`failed: ${s.name.replace(process.cwd() + "/", "")} > ${a.fullName}\n    ${why}`);
    }
  }
}
console.log(`tests: ${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$out/unit.json" "$out/e2e.json"
rm -rf "$out"
exit $status

#!/usr/bin/env bash
# Builds the AutoRTC web page into web/dist/ (served by the token server under /).
# Needs node >= 18 and the npm registry (or a warm npm cache) for `npm ci`.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
node build.mjs

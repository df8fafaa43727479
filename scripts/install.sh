#!/usr/bin/env bash
# Installs what AutoRTC needs on this machine, skipping what is already there:
#   Debian packages (chromium for the browser harness, espeak-ng for case WAVs),
#   the LiveKit server binary (built once from its Go module, cached in ~/.cache/autortc),
#   a virtualenv .venv with the Python deps (re-installed only when pyproject.toml changes),
#   the web page's npm deps and bundle.
# A second run installs nothing.
#   --check   install nothing; exit 0 when everything is in place, 1 when something is missing
#             (run_suite.sh uses it to say "first run: installing…" only when there is work to do).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
log() { printf '[install] %s\n' "$*" >&2; }

web_stale() {
  [ ! -f web/dist/.built ] || [ -n "$(find web/src web/package-lock.json web/build.mjs -newer web/dist/.built 2>/dev/null | head -1)" ]
}

if [ "${1:-}" = "--check" ]; then
  for p in chromium espeak-ng; do dpkg -s "$p" >/dev/null 2>&1 || exit 1; done
  [ -x .venv/bin/python ] || exit 1
  [ "$(cat .venv/.autortc-deps 2>/dev/null || true)" = "$(sha256sum pyproject.toml | cut -d' ' -f1)" ] || exit 1
  .venv/bin/python -c 'import sys; from system import livekit_server as s; sys.exit(0 if s.binary_path().exists() else 1)' 2>/dev/null || exit 1
  web_stale && exit 1
  exit 0
fi

# --- Debian packages ---------------------------------------------------------------------
APT_PKGS=(chromium espeak-ng)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Python virtualenv -------------------------------------------------------------------
PY="${PYTHON:-python3}"
VENV="$ROOT/.venv"
STAMP="$VENV/.autortc-deps"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]; then
  log "pip install -e .[dev] (first time: a few minutes)"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  "$VENV/bin/pip" install -q -e ".[dev]"
  echo "$want" > "$STAMP"
fi

# --- LiveKit server (Go) -----------------------------------------------------------------
"$VENV/bin/python" - <<'PY'
import logging, time
logging.basicConfig(level=logging.INFO, format="[install] %(message)s")
from system import livekit_server
t0 = time.monotonic()
cached = livekit_server.binary_path().exists()
b = livekit_server.ensure_binary()
print(f"[install] {livekit_server.binary_version(b)} at {b} ({'cached' if cached else f'built in {time.monotonic()-t0:.0f} s'})")
PY

# --- web page ----------------------------------------------------------------------------
if web_stale; then
  log "building web/ (npm ci + esbuild)"
  bash web/build.sh >/dev/null
  touch web/dist/.built
fi
log "ready"

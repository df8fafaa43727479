#!/usr/bin/env bash
# The main job: install what is missing, bring the stack up, run the fast suite, bring it down.
# Exit code: 0 all gates pass, 1 a gate failed, 2 the harness failed. Extra args go to `autortc run`
# (e.g. ./run_suite.sh --suite nightly --turns 20, ./run_suite.sh --jobs 2).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")" && pwd)"
cd "$ROOT"
bash scripts/install.sh || exit 2
AUTORTC="$ROOT/.venv/bin/autortc"
"$AUTORTC" stack up || { "$AUTORTC" stack down; exit 2; }
trap '"$AUTORTC" stack down' EXIT INT TERM
"$AUTORTC" run --suite fast "$@"

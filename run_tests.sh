#!/usr/bin/env bash
# The tests: same install step as run_suite.sh, then pytest. End-to-end tests (marked e2e)
# start the real stack themselves through a session fixture and stop it at the end.
# Extra args go to pytest (e.g. ./run_tests.sh -m unit).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")" && pwd)"
cd "$ROOT"
bash scripts/install.sh || exit 2
"$ROOT/.venv/bin/python" -m pytest "$@"
code=$?
[ "$code" -eq 5 ] && { echo "pytest collected no tests" >&2; exit 1; }
exit "$code"

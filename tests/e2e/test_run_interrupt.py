"""Ctrl-C during `autortc run` keeps every finished case and names the cut ones (exit 2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_sigint_keeps_finished_cases_and_names_the_cut(stack, tmp_path):
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "autortc.cli", "run", "--only", "endpoint_short_hello", "--only", "content_weather",
         "--only", "endpoint_numbers", "--no-progress", "--out", str(runs), "--run-id", "ctrlc"],
        cwd=ROOT, env={**os.environ, "AUTORTC_LOG_LEVEL": "WARNING"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # as a terminal starts it: a test runner launched in the background by a non-interactive shell
        # inherits SIGINT *ignored*, and so would the run, which then never sees the Ctrl-C we send
        preexec_fn=_sigint_default)
    first = runs / "ctrlc" / "endpoint_short_hello" / "result.json"
    deadline = time.monotonic() + 120
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)  # polling a file another process writes
    assert first.exists(), proc.communicate(timeout=30)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    print(out[-1500:], err[-1500:])
    assert proc.returncode == 2
    summary = json.loads((runs / "ctrlc" / "summary.json").read_text())
    done = {c["case_id"] for c in summary["cases"]}
    assert "endpoint_short_hello" in done
    assert set(summary["extra"]["cut"]) | done == {"endpoint_short_hello", "content_weather", "endpoint_numbers"}
    assert summary["extra"]["cut"], "nothing was reported as cut"
    assert json.loads(first.read_text())["turns"], "the finished case lost its turns"
    assert "cut (not finished)" in err

"""``autortc run --via browser``: the page's USER_KPI against the probe, in summary.json, the report and
the terminal, through the runner's own code (``_analyze``, ``_write_summary``, ``report.render``)."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from rich.console import Console

from autortc.artifacts import TRACE_FILE, BrowserBlock, read_trace, write_trace
from autortc.bots.target import Target
from autortc.console import ConsoleReporter
from autortc.gates import judge_case
from autortc.report import render
from autortc.results import CaseResult
from autortc.runner import analysis
from autortc.runner.suite import RunOptions, SuiteRunner
from autortc.testing.faults import make_speech, write_turn_folder

pytestmark = pytest.mark.unit

SR = 16000
OFFSET_MS = {"a": 31.0, "b": 27.0, "c": None}  # c: the page measured nothing (probe only)


class _NoSTT:
    def transcribe(self, samples, sr):
        return ""


@pytest.fixture(autouse=True)
def _no_whisper(monkeypatch):
    monkeypatch.setattr(analysis, "_TRANSCRIBER", _NoSTT())


def _case_file(tmp_path: Path) -> Path:
    sf.write(str(tmp_path / "u.wav"), np.zeros(SR, dtype=np.float32), SR, subtype="PCM_16")
    seg = [{"wav": "u.wav", "after": "start", "expect": "respond", "speech_start_ms": 100, "speech_end_ms": 900}]
    doc = {"v": 1, "suites": {"quick": {"mode": "per_case", "cases": list(OFFSET_MS)}},
           "cases": [{"id": c, "p_level": "P0", "description": "reply", "segments": seg} for c in OFFSET_MS]}
    p = tmp_path / "cases.json"
    p.write_text(json.dumps(doc))
    return p


async def _run(tmp_path: Path, via: str):
    s = make_speech(SR, seed=7, sentences=1)
    opts = RunOptions(target=Target(livekit_url="ws://127.0.0.1:1", api_key="k", api_secret="s"),
                      cases_path=_case_file(tmp_path), suite="quick", out_root=tmp_path / "runs", run_id=f"r-{via}",
                      progress=False, via=via, token_url="http://127.0.0.1:1")
    runner = SuiteRunner(opts)
    runner.run_dir.mkdir(parents=True)
    for n, (cid, off) in enumerate(OFFSET_MS.items()):
        d = runner.run_dir / cid / "t0"
        truth = write_turn_folder(d, pre=s.samples, sr=SR, case_id=cid, trace_id="t0", delay_ms=500.0 + 100.0 * n)
        if via == "browser":
            art = read_trace(d / TRACE_FILE)
            kpi = None if off is None else truth["eot_to_first_audio_ms"] + off
            art.browser = BrowserBlock(user_kpi_raw_ms=kpi, user_kpi_ms=kpi, clock_sync_rtt_ms=1.0 + n)
            write_trace(d, art)
        turn = await runner._analyze(runner.case_file.case(cid), d, cid)
        res = CaseResult(case_id=cid, turns=[turn])
        res.verdict = judge_case(res)
        runner.results[cid] = res
    summary = await runner._write_summary(final=True)
    render(summary, list(runner.results.values()), runner.run_dir)
    return runner, summary


async def test_browser_run_states_bias_and_spread_of_the_two_receivers(tmp_path):
    runner, summary = await _run(tmp_path, "browser")
    r = json.loads((runner.run_dir / "summary.json").read_text())["extra"]["receivers"]
    assert (r["turns"], r["paired"], r["probe_only"], r["browser_only"]) == (3, 2, 1, 0)
    assert r["bias_ms"] == pytest.approx(29.0, abs=2.5) and r["min_ms"] < r["max_ms"]
    assert r["sync_error_max_ms"] == pytest.approx(1.0)  # the paired turns' worst RTT (2.0) / 2
    md = (runner.run_dir / "report.md").read_text()
    assert "Two receivers: browser USER_KPI vs probe" in md and "| 2/3 | 1 | 0 | 0 |" in md
    buf = io.StringIO()
    ConsoleReporter(console=Console(file=buf, width=200, color_system=None), total=3).run_finished(summary, None, 0)
    assert "Two receivers" in buf.getvalue() and "2 paired of 3 turns" in buf.getvalue()


async def test_bots_run_has_no_second_receiver(tmp_path):
    runner, summary = await _run(tmp_path, "bots")
    assert "receivers" not in summary.extra
    assert "Two receivers" not in (runner.run_dir / "report.md").read_text()

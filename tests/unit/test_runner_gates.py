"""The runner's gates: a case's override holds at run level, and the report shows the run's own gates.

Turn folders are written by the fault writer with a planted dropout; metrics, verdicts,
summary and report go through the runner's own code (``SuiteRunner._analyze``,
``_write_summary``, ``report.render``) with a scripted transcriber instead of whisper.
"""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autortc.bots.target import Target
from autortc.report import render, write_report
from autortc.runner import analysis
from autortc.runner.suite import RunOptions, SuiteRunner
from autortc.testing.faults import dropout, make_speech, write_turn_folder

pytestmark = pytest.mark.unit

SR = 16000


class _NoSTT:
    def transcribe(self, samples, sr):
        return ""


def _case_file(tmp_path: Path, lenient_gates: dict) -> Path:
    sf.write(str(tmp_path / "u.wav"), np.zeros(SR, dtype=np.float32) + 0.0, SR, subtype="PCM_16")
    seg = [{"wav": "u.wav", "after": "start", "expect": "respond", "speech_start_ms": 100, "speech_end_ms": 900}]
    doc = {"v": 1, "suites": {"quick": {"mode": "per_case", "cases": ["plain", "lenient"]}},
           "cases": [{"id": "plain", "p_level": "P0", "description": "clean reply", "segments": seg},
                     {"id": "lenient", "p_level": "P0", "description": "reply with a planted 250 ms hole",
                      "segments": seg, "gates": lenient_gates}]}
    p = tmp_path / "cases.json"
    p.write_text(json.dumps(doc))
    return p


async def _run(tmp_path: Path, lenient_gates: dict, gates_file: Path | None):
    s = make_speech(SR, seed=7, sentences=2, words_per_sentence=(3, 4))
    at = s.fault_points_ms(250, 1)[0]
    holed, fault = dropout(s.samples, SR, at, 250)
    opts = RunOptions(target=Target(livekit_url="ws://127.0.0.1:1", api_key="k", api_secret="s"),
                      cases_path=_case_file(tmp_path, lenient_gates), suite="quick", out_root=tmp_path / "runs",
                      run_id="gates", gates_path=gates_file, progress=False)
    runner = SuiteRunner(opts)
    runner.run_dir.mkdir(parents=True)
    for cid, post in (("plain", s.samples), ("lenient", holed)):
        d = runner.run_dir / cid / "t0"
        write_turn_folder(d, pre=s.samples, post=post, sr=SR, case_id=cid, trace_id="t0",
                          expected_silence_ms=s.expected_silence_ms)
        turn = await runner._analyze(runner.case_file.case(cid), d, cid)
        from autortc.gates import judge_case
        from autortc.results import CaseResult

        res = CaseResult(case_id=cid, turns=[turn])
        res.verdict = judge_case(res)
        runner.results[cid] = res
    summary = await runner._write_summary(final=True)
    render(summary, list(runner.results.values()), runner.run_dir)
    return runner, summary, fault


@pytest.fixture(autouse=True)
def _no_whisper(monkeypatch):
    monkeypatch.setattr(analysis, "_TRANSCRIBER", _NoSTT())


def _gate(summary, name):
    return next(v for v in summary.gates if v.gate == name)


async def test_case_override_is_honoured_at_run_level(tmp_path):
    runner, summary, fault = await _run(tmp_path, {"max_gap": 400.0, "audible_dropout": 1.0}, None)
    lenient = runner.results["lenient"].turns[0]
    # the planted hole is measured (the override is what passes it, not a blind metric)
    assert lenient.continuity.max_gap_ms == pytest.approx(fault.value, abs=25)
    assert lenient.continuity.audible_dropouts == 1
    assert lenient.verdict == "PASS" and runner.results["lenient"].verdict == "PASS"
    assert _gate(summary, "max_gap").status == "PASS" and _gate(summary, "audible_dropout").status == "PASS"
    assert summary.verdict == "PASS", [(g.gate, g.status, g.message) for g in summary.gates]
    on_disk = json.loads((runner.run_dir / "summary.json").read_text())
    assert {g["name"]: g["fail"] for g in on_disk["case_gates"]["lenient"]} == {"max_gap": 400.0, "audible_dropout": 1.0}
    md = (runner.run_dir / "report.md").read_text()
    assert "## Per-case gate overrides" in md and "| lenient | max gap in reply (ms) | < 400 | < 200 |" in md
    cases = {tc.get("name"): tc for tc in ET.parse(runner.run_dir / "junit.xml").getroot().iter("testcase")}
    assert cases["lenient"].find("failure") is None


async def test_without_the_override_the_same_run_fails(tmp_path):
    runner, summary, _ = await _run(tmp_path, {}, None)
    assert runner.results["lenient"].verdict == "FAIL"
    assert _gate(summary, "max_gap").status == "FAIL" and _gate(summary, "max_gap").case_id == "lenient"
    assert summary.verdict == "FAIL"


async def test_report_shows_the_gates_file_thresholds(tmp_path):
    gates_file = tmp_path / "ci_gates.toml"
    gates_file.write_text('[gates.eot_to_first_audio]\nfail = 777.0\ntitle = "EoT to first audio, CI limit"\n'
                          '[gates.max_gap]\nfail = 321.0\n')
    runner, summary, _ = await _run(tmp_path, {"audible_dropout": 1.0}, gates_file)
    assert _gate(summary, "max_gap").status == "PASS" and _gate(summary, "max_gap").threshold == 321.0
    for name in ("report.md", "report.html"):
        text = (runner.run_dir / name).read_text()
        assert "EoT to first audio, CI limit" in text and "<= 777" in text.replace("&lt;", "<"), name
        assert "< 321" in text.replace("&lt;", "<") and str(gates_file) in text, name
        assert "<= 650" not in text.replace("&lt;", "<"), name
    # re-rendered from disk (autortc report): the same gates, not the defaults
    write_report(runner.run_dir)
    assert "<= 777" in (runner.run_dir / "report.md").read_text()


async def test_the_report_says_which_cases_were_judged_by_their_override(tmp_path):
    runner, _, _ = await _run(tmp_path, {"max_gap": 400.0, "audible_dropout": 1.0}, None)
    row = next(line for line in (runner.run_dir / "report.md").read_text().splitlines()
               if line.startswith("| max gap in reply (ms) |"))
    assert "| PASS |" in row and "lenient judged by their override < 400.0: PASS" in row

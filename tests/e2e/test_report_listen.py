"""The report you can listen to, opened in real headless Chromium: after a real run (a plain turn and
a barge-in turn against the bundled agent), every turn section has four players (what the user
said, what the agent's input received, what the agent sent, what the user heard) whose Ogg/Opus
audio Chromium decodes to the duration of the turn folder's WAV, and a timeline with the user's
speech, the reply heard, the user EoT and first-audio markers (and the barge-in onset where the
case has one)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import soundfile as sf

from autortc.report.check import inspect_report
from autortc.results import CaseResult, read_json
from autortc.runner.suite import RunOptions, SuiteRunner

pytestmark = pytest.mark.e2e

CASES = Path(__file__).resolve().parents[2] / "cases" / "all_cases.json"
WAV = ["user.wav", "agent_input.wav", "pre_rtc.wav", "post_rtc_reply.wav"]  # the bundled agent sends its input copy


def test_every_turn_has_players_and_a_timeline_in_chromium(stack, tmp_path, caplog):
    caplog.set_level(logging.INFO)  # the CLI sets the root logger to INFO (autortc.console); pytest leaves WARNING
    cases = ("content_weather", "turn_barge_in_stop")
    opts = RunOptions(target=stack.target, cases_path=CASES, suite="fast", only=cases, out_root=tmp_path,
                      run_id="e2e-listen", progress=False)
    outcome = asyncio.run(SuiteRunner(opts).run())
    html = outcome.run_dir / "report.html"
    assert (outcome.run_dir / "autortc.log").stat().st_size > 0, "the run log was not written"
    turns = inspect_report(html, screenshot=tmp_path / "report.png")
    expected = {(c, t.trace_id) for c in cases
                for t in read_json(outcome.run_dir / c / "result.json", CaseResult).turns}
    assert {(t["case_id"], t["trace_id"]) for t in turns} == expected and len(turns) == 2
    for t in turns:
        d = outcome.run_dir / t["case_id"] / t["trace_id"]
        assert [p["file"] for p in t["players"]] == WAV, t
        for p in t["players"]:
            # ground truth: the WAV the harness recorded; the player's audio was re-encoded (16 kHz Opus)
            info = sf.info(str(d / p["file"]))
            assert p["decoded"], f"{t['trace_id']}: Chromium could not decode the {p['file']} player ({p['error']})"
            assert abs(p["duration"] - info.frames / info.samplerate) < 0.1, (p, info.duration)
        assert t["timeline"] and t["timeline_px"][0] > 500, t
        assert t["bars"].get("user", 0) >= 1 and t["bars"].get("heard", 0) >= 1, t
        assert t["marks"].get("eot") == 1 and t["marks"].get("first_audio") == 1, t
        assert t["gates"] >= 5, t
    barge = next(t for t in turns if t["case_id"] == "turn_barge_in_stop")
    assert barge["bars"].get("barge", 0) >= 1 and barge["marks"].get("onset", 0) >= 1, barge
    size = html.stat().st_size
    print(f"report.html: {size} bytes for {len(turns)} turns")
    assert size < 400_000 * len(turns), f"report too heavy: {size} bytes for {len(turns)} turns"

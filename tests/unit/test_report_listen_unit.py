"""The listenable report on planted turn folders, read back from headless Chromium: every turn has
three players Chromium decodes to the WAVs' durations, and its timeline puts first audio after the
user's EoT by the planted delay; a gap planted in what the user heard is drawn and blamed on the path.
(tests/e2e/test_report_listen.py does the same on a real run.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autortc.gates import RunGates, judge_case, judge_run
from autortc.report import render
from autortc.report.check import inspect_report
from autortc.results import CaseResult
from autortc.runner.analysis import analyze_turn
from autortc.testing.faults import insert_gap, make_speech, write_turn_folder

pytestmark = pytest.mark.unit


def _run(tmp_path: Path) -> tuple[Path, dict]:
    rg = RunGates.load(None)
    run = tmp_path / "run"
    truth, cases = {}, []
    plans = {"clean_300": (300.0, None), "gap_700": (700.0, (900.0, 250.0))}
    for i, (cid, (delay, gap)) in enumerate(plans.items()):
        pre = make_speech(48000, seed=10 + i, sentences=2).samples
        post = pre if gap is None else insert_gap(pre, 48000, *gap)[0]
        d = run / cid / f"{cid}-t00"
        truth[cid] = write_turn_folder(d, pre=pre, post=post, sr=48000, delay_ms=delay, case_id=cid,
                                       trace_id=d.name, seed=i)
        res = analyze_turn(d, rg.for_case(cid))
        c = CaseResult(case_id=cid, p_level="P0", turns=[res], attempts=1)
        c.verdict = judge_case(c)
        cases.append(c)
    summary = judge_run("run", cases, rg, suite="unit")
    render(summary, cases, run)
    return run, truth


def test_players_and_timeline_in_chromium(tmp_path):
    run, truth = _run(tmp_path)
    turns = inspect_report(run / "report.html")
    assert sorted(t["case_id"] for t in turns) == ["clean_300", "gap_700"]
    for t in turns:
        d = run / t["case_id"] / t["trace_id"]
        assert [p["file"] for p in t["players"]] == ["user.wav", "pre_rtc.wav", "post_rtc_reply.wav"]
        for p in t["players"]:
            info = sf.info(str(d / p["file"]))
            assert p["decoded"] and abs(p["duration"] - info.frames / info.samplerate) < 0.1, (p, info)
        (x0, s0), (x1, s1) = t["ticks"][0], t["ticks"][-1]
        px_per_s = (x1 - x0) / (s1 - s0)
        eot_to_audio_s = (t["marks_x"]["first_audio"][0] - t["marks_x"]["eot"][0]) / px_per_s
        planted = truth[t["case_id"]]["eot_to_first_audio_ms"] / 1000
        assert eot_to_audio_s == pytest.approx(planted, abs=0.03), (t["case_id"], eot_to_audio_s, planted)
        assert t["bars"].get("user") == 1 and t["bars"].get("heard", 0) >= 1
    gap = next(t for t in turns if t["case_id"] == "gap_700")
    clean = next(t for t in turns if t["case_id"] == "clean_300")
    assert gap["bars"].get("gap", 0) >= 1 and not clean["bars"].get("gap")
    html = (run / "report.html").read_text()
    assert "path: 1 gap(s) in what the user heard" in html


def test_attribution_of_a_talk_over_turn_has_no_latency_split():
    """A premature reply has a first audible sample but no EoT latency: the report must still render
    (it crashed the whole listen section on a real fast-suite run)."""
    from types import SimpleNamespace

    from autortc.report.listen import _attribution
    from autortc.results import LatencyMetrics, TurnResult

    t = TurnResult(case_id="stutter_long_pause", trace_id="t1")
    t.latency = LatencyMetrics(eot_to_first_audio_ms=None, first_audio_t=12.0, premature=True)
    art = SimpleNamespace(agent=SimpleNamespace(stages={"first_frame_published": 12.5}),
                          user=SimpleNamespace(t_user_eot=12.3))
    assert not any("EoT → first audio" in line for line in _attribution(t, art))
    t.latency = LatencyMetrics(eot_to_first_audio_ms=700.0, first_audio_t=13.0)
    assert any("agent 200 ms" in line for line in _attribution(t, art))


def test_attribution_names_the_agent_and_never_excuses_its_faults():
    """Issue 18 item 4: booms, repeats and long silences in the agent's own copy are judged and
    attributed to the agent; the text must not call them excused (it said "gaps of the agent's own
    audio are excused")."""
    from types import SimpleNamespace

    from autortc.report.listen import _attribution
    from autortc.results import Interval, TurnResult

    art = SimpleNamespace(agent=SimpleNamespace(stages={}, reply_text=None), user=SimpleNamespace(t_user_eot=None))
    t = TurnResult(case_id="c", trace_id="t")
    t.continuity.gaps = [Interval(1000.0, 1700.0), Interval(2500.0, 2560.0)]
    t.continuity.agent_gaps = [Interval(1005.0, 1690.0)]
    t.continuity.excused_gaps = [Interval(400.0, 650.0)]
    t.continuity.max_gap_ms = 700.0
    t.fingerprints.peak_spike_count = 1
    t.fingerprints.repeat_count = 2
    t.origin = {"max_gap": "agent", "peak_spike": "agent", "repeats": "agent+path"}
    lines = _attribution(t, art)
    text = "\n".join(lines)
    assert "path: 1 gap(s) in what the user heard" in text and "(max 60 ms)" in text
    assert any(line.startswith("agent: 1 silence(s) longer than a sentence pause") and "attributed to the agent" in line
               for line in lines), lines
    assert any(line.startswith("agent: 1 spike(s)") and "the agent produced them" in line for line in lines), lines
    assert any(line.startswith("agent+path: 2 repeated chunk(s)") for line in lines), lines
    assert not any("excused" in line for line in lines if not line.startswith("excused:")), lines
    assert any(line.startswith("excused: 1 pause(s) the agent meant") for line in lines)

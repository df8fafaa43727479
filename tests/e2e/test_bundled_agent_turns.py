"""Real turns against the bundled agent through the runner: weather reply, barge-in, backchannel."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autortc.runner.suite import RunOptions, SuiteRunner
from autortc.artifacts import read_trace

pytestmark = pytest.mark.e2e

CASES = Path(__file__).resolve().parents[2] / "cases" / "all_cases.json"


def _run(stack, tmp_path, *case_ids: str):
    opts = RunOptions(target=stack.target, cases_path=CASES, suite="fast", only=case_ids, out_root=tmp_path,
                      run_id="e2e-" + "-".join(c[:6] for c in case_ids), progress=False)
    return SuiteRunner(opts)


def _turn(run_dir: Path, case_id: str) -> tuple[dict, dict, Path]:
    res = json.loads((run_dir / case_id / "result.json").read_text())
    assert res["turns"], f"{case_id}: no turn recorded ({res.get('error')})"
    turn = res["turns"][0]
    d = run_dir / case_id / turn["trace_id"]
    return turn, read_trace(d / "trace.json").model_dump(mode="json"), d


@pytest.fixture(scope="module")
def weather_run(stack, tmp_path_factory):
    import asyncio

    runner = _run(stack, tmp_path_factory.mktemp("weather"), "content_weather")
    outcome = asyncio.run(runner.run())
    return outcome


def test_weather_reply_is_heard_and_says_the_scripted_words(weather_run):
    from system.agent.stt_whisper import WhisperTranscriber

    turn, trace, d = _turn(weather_run.run_dir, "content_weather")
    assert turn["capture_status"] == "OK"
    reply, sr = sf.read(d / "post_rtc_reply.wav", dtype="float32")
    heard = WhisperTranscriber().transcribe(reply, sr).lower()
    scripted = trace["agent"]["reply_text"].lower()
    assert "sunny" in scripted  # the rule that answers the weather question
    words = [w for w in re.findall(r"[a-z]+", scripted) if len(w) > 3]
    found = [w for w in words if w in heard]
    print(f"scripted: {scripted!r}\nheard:    {heard!r}\nwords found {len(found)}/{len(words)}")
    assert len(found) >= 0.6 * len(words), (heard, words)


def test_reply_slice_starts_at_the_first_audible_sample(weather_run):
    turn, trace, d = _turn(weather_run.run_dir, "content_weather")
    full, sr = sf.read(d / "post_rtc_full.wav", dtype="float32")
    start, _end = trace["probe"]["reply_slice"]
    evt = trace["probe"]["replies"][0]["start_sample"]
    x = np.abs(full[evt:])
    first = evt + int(np.flatnonzero(x >= 0.01)[0])  # first non-silent sample after reply_start
    print(f"reply_start at {evt}, slice starts {start}, first non-silent {first} ({(first - start) / sr * 1000:.1f} ms)")
    assert abs(first - start) <= 0.050 * sr


def test_latency_is_measured_from_both_clocks(weather_run):
    turn, trace, _ = _turn(weather_run.run_dir, "content_weather")
    lat = turn["latency"]
    assert 0 < lat["eot_to_first_audio_ms"] < 5000
    assert trace["agent"]["stages"]["first_frame_published"] > trace["agent"]["stages"]["end_of_turn"]
    print(json.dumps(lat, indent=1))


def test_barge_in_stops_the_agent_and_backchannel_does_not(stack, tmp_path):
    import asyncio

    runner = _run(stack, tmp_path, "turn_barge_in_stop", "turn_backchannel_ignore")
    outcome = asyncio.run(runner.run())
    stop, stop_trace, _ = _turn(outcome.run_dir, "turn_barge_in_stop")
    ignore, _, _ = _turn(outcome.run_dir, "turn_backchannel_ignore")
    st = stop["turntaking"]["stop_time_ms"]
    print(f"stop time {st} ms; backchannel false yields {ignore['turntaking']['false_yields']}")
    # the story reply runs ~11 s: an agent that did not yield would be heard for ~10 s after the
    # barge-in; the bundled one pauses after 0.40 s of voiced speech (~0.7 s here). Its stop-time
    # figures come from scripts/bench_turntaking.py, not from this bound.
    assert st is not None and 0 < st < 4000
    assert any(r["interrupted"] for r in stop_trace["probe"]["replies"])
    assert ignore["turntaking"]["false_yields"] == 0

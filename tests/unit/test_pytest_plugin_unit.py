"""The plugin's Turn: gate failures read like an assertion a person can act on; missing audio is inf."""

from __future__ import annotations

from pathlib import Path

import pytest

from autortc.pytest_plugin import GateFailure, Turn
from autortc.results import GateVerdict, TurnResult

pytestmark = pytest.mark.unit


def _turn(**over) -> Turn:
    t = TurnResult(case_id="content_weather", trace_id="content_weather-t00-abc123", verdict="FAIL")
    t.latency.eot_to_first_audio_ms = over.get("eot", 1012.4)
    t.content.transcript = "It is Sunny and 22 degrees."
    t.verdicts = [GateVerdict(gate="max_gap", status="FAIL", measured=244.0, threshold=200.0, op="<",
                              metric="continuity.max_gap_ms"),
                  GateVerdict(gate="clipping", status="PASS", measured=0.0, threshold=0.001, op="<",
                              metric="level.clipping_ratio")]
    return Turn(result=t, dir=Path("/tmp/run/test_x/content_weather-t00-abc123"))


def test_gate_failure_names_gate_value_threshold_and_folder():
    turn = _turn()
    with pytest.raises(GateFailure) as ei:
        turn.assert_gates()
    msg = str(ei.value)
    assert "max_gap 244 ms (< 200 ms)" in msg and "clipping" not in msg
    assert "/tmp/run/test_x/content_weather-t00-abc123" in msg
    assert turn.heard_text == "it is sunny and 22 degrees." and "sunny" in turn.heard_text
    assert "EoT→first audio 1012 ms" in repr(turn)
    assert turn.gate("clipping").status == "PASS"
    with pytest.raises(KeyError, match="max_gap, clipping"):
        turn.gate("nope")


def test_no_audio_is_infinite_latency_not_a_type_error():
    turn = _turn(eot=None)
    assert turn.eot_to_first_audio_ms == float("inf")
    assert not (turn.eot_to_first_audio_ms < 800)

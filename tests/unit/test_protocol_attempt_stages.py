"""The trace's LLM/TTS stages are those of the attempt the user heard, not of a discarded one.

Planted: a preemptive attempt (LLM + TTS on a preflight transcript) that LiveKit Agents discards
when the user goes on, then the attempt whose first chunk is published, then the reply's second
sentence. Times are written here, in the order the agent marks them.
"""

import pytest

from autortc.protocol.livekit_agents import _TurnTrace

pytestmark = pytest.mark.unit


def _mark_all(trace: _TurnTrace, marks: list[tuple[str, float]]) -> None:
    for name, t in sorted(marks, key=lambda m: m[1]):
        trace.stage(name, t)


def test_a_discarded_preemptive_attempt_does_not_date_the_heard_reply():
    tr = _TurnTrace("t")
    _mark_all(tr, [
        # discarded: preflight at 10.0 s, the user went on
        ("llm_request", 10.00), ("llm_first_token", 10.01), ("llm_done", 10.02),
        ("tts_request", 10.03), ("tts_first_chunk", 10.15),
        # heard: preflight at 12.0 s, committed; its first chunk is published 12 ms later
        ("llm_request", 12.00), ("llm_first_token", 12.01), ("llm_done", 12.02),
        ("tts_request", 12.05), ("tts_first_chunk", 12.20), ("first_frame_published", 12.212),
        # the reply's second sentence, requested once the first one is synthesized
        ("tts_request", 12.40), ("tts_first_chunk", 12.55),
    ])
    s = tr.stages
    assert s["tts_first_chunk"] == 12.20 and s["tts_request"] == 12.05
    assert s["llm_first_token"] == 12.01 and s["llm_request"] == 12.00 and s["llm_done"] == 12.02
    assert s["first_frame_published"] - s["tts_first_chunk"] == pytest.approx(0.012)
    assert tr.attempts["tts_request"] == [10.03, 12.05, 12.40]


def test_one_attempt_keeps_its_marks_and_unmatched_stages_keep_their_first_time():
    tr = _TurnTrace("t")
    _mark_all(tr, [("llm_request", 5.0), ("llm_first_token", 5.01), ("tts_request", 5.02),
                   ("tts_first_chunk", 5.10), ("first_frame_published", 5.11), ("llm_done", 5.3)])
    assert tr.stages["tts_first_chunk"] == 5.10 and tr.stages["llm_request"] == 5.0
    assert "llm_done" in tr.stages and tr.stages["llm_done"] == 5.3  # marked after the publish
    tr2 = _TurnTrace("u")  # no reply published: first of name, as before
    _mark_all(tr2, [("tts_request", 1.0), ("tts_first_chunk", 1.1), ("tts_request", 2.0)])
    assert tr2.stages["tts_request"] == 1.0

"""The bundled STT drops a whisper decoding loop (system.agent.stt_ct2.drop_looped_restart).

Truth is planted: transcripts written by hand with the audio length they came from.
"""

from __future__ import annotations

import pytest

from system.agent.stt_ct2 import drop_looped_restart

pytestmark = pytest.mark.unit


def test_the_recorded_loop_keeps_its_first_sentence() -> None:
    # decoded twice from noise_background (2.48 s of audio): 15 words, the opening repeated
    text = "Can you recommend that go for 3? Can you request a vendor go for"
    assert drop_looped_restart(text, 2.48) == "Can you recommend that go for 3?"


@pytest.mark.parametrize(("text", "duration_s"), [
    # the same words at a speech rate: a user may well say it twice
    ("Can you recommend that go for 3? Can you request a vendor go for", 4.0),
    # the fastest bundled speaker, 8 words in 1.9 s of audio
    ("What is the fastest animal in the world?", 1.9),
    # fast, but nothing restarts
    ("Hello there. I want to check my balance and my last payment please.", 2.2),
])
def test_speech_is_left_as_it_is(text: str, duration_s: float) -> None:
    assert drop_looped_restart(text, duration_s) == text


def test_a_later_restart_cuts_there() -> None:
    text = "How do I make tea? Boil the water. How do I make tea? How do I"
    assert drop_looped_restart(text, 2.0) == "How do I make tea? Boil the water."

"""The bundled STT reads a held first utterance the same wherever the agent's VAD cuts it.

Audio: what the agent really received in suite run r1j1 (session 24, ``agent_input.wav``) around
the first utterance of endpoint_pause_in_turn, "I have a question." then 500 ms of the user's
pause (``data/pause_in_turn_first_half_r1j1.wav``, 16 kHz mono, case time 0 at 0.25 s: the turn's
measured uplink delay placed the case WAV on the agent's input). Truth is the case script: the
words said, and that the turn goes on after the pause, so the agent's end-of-turn hold must read
it as unfinished. With greedy decoding 3 of these 15 cuts read "I can request you" (a finished
sentence: the agent answered in the pause, a talk-over, in run r1j2).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import soundfile as sf

from system.agent.stt_ct2 import ShortWindowTranscriber
from system.agent.turn_text import hold_reason

pytestmark = pytest.mark.unit

CLIP = Path(__file__).parent / "data" / "pause_in_turn_first_half_r1j1.wav"
SPEECH_S = (0.25 + 0.300, 0.25 + 1.306)  # the case's speech start and the pause's start, in the clip
# where the agent cuts an utterance: its VAD's 0.5 s prefix padding (less when the onset is dated
# late) to 50-250 ms after the speech (its preflight after 64 ms of level silence ... its final
# after the VAD's 200 ms silence window)
PRE_S = (0.3, 0.4, 0.5)
POST_S = (0.05, 0.1, 0.15, 0.2, 0.25)


@pytest.fixture(scope="module")
def decoded() -> dict[tuple[float, float], str]:
    x, sr = sf.read(str(CLIP), dtype="float32")
    stt = ShortWindowTranscriber()
    return {(pre, post): stt.transcribe(x[int((SPEECH_S[0] - pre) * sr):int((SPEECH_S[1] + post) * sr)], sr)
            for pre, post in itertools.product(PRE_S, POST_S)}


def test_every_cut_reads_the_words_said(decoded: dict[tuple[float, float], str]) -> None:
    wrong = {cut: text for cut, text in decoded.items() if "question" not in text.lower()}
    assert not wrong, f"cuts (pre s, post s) misread 'I have a question.': {wrong}"


def test_every_cut_holds_the_turn(decoded: dict[tuple[float, float], str]) -> None:
    answered = {cut: text for cut, text in decoded.items() if hold_reason(text) is None}
    assert not answered, f"cuts read as a finished turn (the agent would answer in the pause): {answered}"

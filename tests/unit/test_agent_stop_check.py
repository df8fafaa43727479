"""The barge-in word check's short window still hears the stop word, and only there.

Truth is the case WAVs' own transcripts ("Wait, please stop talking.", "Uh-huh."), decoded after an
Opus round trip from 0.5 s before their onset (the VAD's padding) to 0.2 s of speech.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autortc.testing.opus import opus_roundtrip
from system.agent.stt_ct2 import ShortWindowTranscriber

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
STOP = {"wait", "stop", "enough"}


def _onset_clip(wav: str, voiced_s: float) -> tuple[np.ndarray, int]:
    seg = next(s for c in json.loads((ROOT / "cases" / "all_cases.json").read_text())["cases"]
               for s in c["segments"] if s["wav"] == wav)
    x, sr = sf.read(str(ROOT / "cases" / wav), dtype="float32")
    x, sr = opus_roundtrip(x.mean(axis=1) if x.ndim > 1 else x, sr)
    on = int(seg["speech_start_ms"] * sr / 1000)
    pad = np.zeros(max(0, int(0.5 * sr) - on), np.float32)
    return np.concatenate([pad, x[max(0, on - int(0.5 * sr)):on + int(voiced_s * sr)]]), sr


@pytest.fixture(scope="module")
def stt() -> ShortWindowTranscriber:
    return ShortWindowTranscriber()


@pytest.mark.parametrize("voiced_s", [0.2, 0.3])
def test_the_check_hears_wait_in_the_barge_in(stt: ShortWindowTranscriber, voiced_s: float) -> None:
    x, sr = _onset_clip("wavs/turn_barge_in_stop__2.wav", voiced_s)
    assert set(re.findall(r"[a-z]+", stt.transcribe(x, sr, check=True).lower())) & STOP


@pytest.mark.parametrize("wav", ["wavs/turn_backchannel_ignore__2.wav", "wavs/content_weather.wav",
                                 "wavs/endpoint_pause_in_turn.wav", "wavs/rate_fast_speaker.wav"])
def test_the_check_hears_no_stop_word_elsewhere(stt: ShortWindowTranscriber, wav: str) -> None:
    x, sr = _onset_clip(wav, 0.3)
    assert not set(re.findall(r"[a-z]+", stt.transcribe(x, sr, check=True).lower())) & STOP


def test_the_check_window_is_shorter_than_a_finals(stt: ShortWindowTranscriber) -> None:
    assert stt.window_s(0.8, check=True) < stt.window_s(0.8)

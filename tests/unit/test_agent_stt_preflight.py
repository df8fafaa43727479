"""The bundled STT decodes the whole utterance when sound follows the preflight's cut
(system.agent.stt_whisper.sounds_after_cut): a final consonant the VAD counted as silence.

Truth: the case WAVs' annotated end of speech (cases/all_cases.json), and bursts planted into
their silence tails."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from system.agent.stt_whisper import sounds_after_cut

pytestmark = pytest.mark.unit

CASES = Path(__file__).resolve().parents[2] / "cases"


def _utterance(case_id: str, tail_s: float = 0.2) -> tuple[np.ndarray, int, int]:
    """(pcm up to the end of speech + the VAD's silence tail, sr, end-of-speech sample). Most WAVs
    end with the speech; the tail is then what the mic sends after it: room tone at -65 dBFS."""
    cases = json.loads((CASES / "all_cases.json").read_text())["cases"]
    seg = next(c for c in cases if c["id"] == case_id)["segments"][0]
    x, sr = sf.read(CASES / seg["wav"], dtype="float32")
    x = x if x.ndim == 1 else x[:, 0]
    end = int(seg["speech_end_ms"] * sr / 1000)
    n = end + int(tail_s * sr)
    if x.size < n:
        tone = np.random.default_rng(0).standard_normal(n - x.size) * 10 ** (-65 / 20)
        x = np.concatenate([x, tone.astype(np.float32)])
    return x[:n], sr, end


def test_a_cut_before_the_final_k_burst_has_sound_after_it():
    x, sr, end = _utterance("endpoint_trailing_silence")  # "... tell me a joke": the /k/ ends at the end
    assert sounds_after_cut(x, sr, end - int(0.060 * sr))


@pytest.mark.parametrize("case_id", ["endpoint_trailing_silence", "endpoint_short_hello", "level_quiet_speaker",
                                     "rate_slow_speaker", "noise_background"])
def test_room_tone_or_steady_noise_after_the_end_is_no_sound(case_id):
    x, sr, end = _utterance(case_id)
    assert not sounds_after_cut(x, sr, end + int(0.064 * sr))


def test_a_planted_burst_in_the_tail_is_found_and_its_absence_is_not():
    x, sr, end = _utterance("endpoint_short_hello")
    cut = end + int(0.064 * sr)
    assert not sounds_after_cut(x, sr, cut)
    y = x.copy()
    speech_rms = float(np.sqrt(np.mean(x[end - sr // 2:end] ** 2)))
    rng = np.random.default_rng(3)
    burst = rng.standard_normal(int(0.02 * sr)) * speech_rms * 10 ** (-15 / 20)  # 15 dB under the speech
    at = cut + int(0.05 * sr)
    y[at:at + burst.size] += burst.astype(np.float32)
    assert sounds_after_cut(y, sr, cut)
    # the agent hands int16 frames
    assert sounds_after_cut((y * 32767).astype(np.int16), sr, cut)
    assert not sounds_after_cut((x * 32767).astype(np.int16), sr, cut)


def test_speech_that_goes_on_after_a_short_pause_is_sound_however_long():
    # planted: the user pauses 64 ms (a level preflight cuts there), then speaks 0.4 s more and stops
    # (0.1 s of room tone): the tail is mostly speech, yet the preflight missed all of it
    x, sr, end = _utterance("endpoint_short_hello", tail_s=0.064)
    more = x[end - int(0.4 * sr):end]
    tone = (np.random.default_rng(4).standard_normal(int(0.1 * sr)) * 10 ** (-65 / 20)).astype(np.float32)
    y = np.concatenate([x, more, tone])
    assert sounds_after_cut(y, sr, x.size)
    assert not sounds_after_cut(np.concatenate([x, tone]), sr, x.size)  # the pause alone goes on: no sound


def test_nothing_to_compare_is_no_sound():
    x = np.zeros(16000, np.float32)
    assert not sounds_after_cut(x, 16000, 0)
    assert not sounds_after_cut(x, 16000, x.size)

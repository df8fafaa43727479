"""Piper sentences start with at most ``max_lead_ms`` of silence (system.tts.piper_engine).

Ground truth is planted: a known number of silent (or -75 dBFS noise) samples before a tone, or
piper's own output with the cap off, whose first frame above the floor the test finds itself.
"""

from __future__ import annotations

import numpy as np
import pytest

from system.tts import load_engine
from system.tts.piper_engine import cap_leading_silence

pytestmark = pytest.mark.unit

SR = 22050
FRAME = SR // 100  # 10 ms
KEEP = round(SR * 50 / 1000)  # samples in the 50 ms cap


def _tone(ms: float, dbfs: float = -20.0) -> np.ndarray:
    t = np.arange(int(SR * ms / 1000)) / SR
    return (10 ** (dbfs / 20) * 32767 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)


def _floor(n: int, dbfs: float | None) -> np.ndarray:
    if dbfs is None:
        return np.zeros(n, np.int16)
    return (np.random.default_rng(1).standard_normal(n) * 10 ** (dbfs / 20) * 32767).astype(np.int16)


@pytest.mark.parametrize("noise_dbfs", [None, -75.0])
@pytest.mark.parametrize("lead_frames", [44, 20, 6])
def test_a_long_lead_is_cut_to_the_cap(lead_frames: int, noise_dbfs: float | None) -> None:
    lead = lead_frames * FRAME  # on the 10 ms grid, so the onset frame is exact
    pcm = np.concatenate([_floor(lead, noise_dbfs), _tone(300)])
    out = cap_leading_silence(pcm, SR, 50.0)
    assert pcm.size - out.size == lead - KEEP  # 50 ms kept
    assert np.array_equal(out[-_tone(300).size:], _tone(300))  # the sound itself is untouched


@pytest.mark.parametrize("lead_ms", [0, 30, 50])
def test_a_short_lead_is_kept(lead_ms: int) -> None:
    pcm = np.concatenate([np.zeros(lead_ms * FRAME // 10, np.int16), _tone(200)])
    assert cap_leading_silence(pcm, SR, 50.0).size == pcm.size


def test_all_silent_or_empty_audio_is_returned_as_is() -> None:
    quiet = _floor(SR, -80.0)
    assert cap_leading_silence(quiet, SR, 50.0) is quiet
    empty = np.zeros(0, np.int16)
    assert cap_leading_silence(empty, SR, 50.0).size == 0


def test_a_weak_onset_above_minus_60_dbfs_is_not_cut() -> None:
    """A fricative rising through -55 dBFS before the vowel: the cut stops before it."""
    pcm = np.concatenate([np.zeros(40 * FRAME, np.int16), _tone(30, -55.0), _tone(200, -10.0)])
    out = cap_leading_silence(pcm, SR, 0.0)
    assert out.size == pcm.size - 40 * FRAME


def _first_frame_above(pcm: np.ndarray, dbfs: float) -> int:
    n = SR // 100
    for i in range(pcm.size // n):
        f = pcm[i * n:(i + 1) * n].astype(np.float64) / 32768.0
        if np.sqrt(np.mean(f * f)) >= 10 ** (dbfs / 20):
            return i * n
    raise AssertionError("no frame above the floor")


def test_piper_fastest_sentence_starts_within_the_cap() -> None:
    """The bundled voice puts ~420 ms of silence before "fastest ..."; with the cap 50 ms remain."""
    raw = load_engine("piper").synthesize("fastest animal on land.")  # the default keeps piper's lead
    capped = load_engine("piper", max_lead_ms=50.0).synthesize("fastest animal on land.")
    onset = _first_frame_above(raw, -60.0)
    assert onset > SR * 300 // 1000  # the artefact is there without the cap
    assert np.array_equal(capped, raw[onset - KEEP:])

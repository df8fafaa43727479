"""The one energy/onset module: named thresholds match their sources, and energy computed once
gives every detector the same answer as computing it inside."""

import re
from pathlib import Path

import numpy as np
import pytest

from autortc.audio import energy as E
from autortc.metrics.continuity import detect_gaps
from autortc.metrics.latency import first_onset
from autortc.metrics.turntaking import activity_intervals
from autortc.testing.faults import dropout, make_speech

pytestmark = pytest.mark.unit

SR = 16000
WORKLET = Path(__file__).resolve().parents[2] / "web" / "src" / "detector-worklet.js"


def test_browser_thresholds_equal_the_page_worklet():
    js = WORKLET.read_text()
    assert float(re.search(r"o\.threshold \?\? ([0-9.]+)", js).group(1)) == E.BROWSER_DETECTOR_RMS
    assert float(re.search(r"o\.silenceMs \?\? ([0-9.]+)", js).group(1)) == E.BROWSER_SILENCE_MS
    assert float(re.search(r"o\.windowMs \?\? ([0-9.]+)", js).group(1)) == E.BROWSER_WINDOW_MS
    from autobrowser.detect import DetectorConfig

    assert DetectorConfig().threshold_rms == E.BROWSER_DETECTOR_RMS and DetectorConfig().silence_ms == E.BROWSER_SILENCE_MS


def test_every_detector_takes_its_threshold_from_the_module():
    from autortc.bots import probe_bot
    from autortc.metrics import level

    assert probe_bot.AUDIBLE_RMS is E.AUDIBLE_RMS and level.AUDIO_VALID_RMS is E.AUDIBLE_RMS
    import autortc.cases as cases

    assert cases.measure_speech_span is E.measure_speech_span


def test_rms_of_int16_and_float_agree():
    x = (np.sin(np.arange(480) / 7.0) * 0.3).astype(np.float32)
    pcm = np.round(x * 32767).astype(np.int16)
    assert E.rms(pcm) == pytest.approx(E.rms(x), rel=1e-3)
    assert E.rms(x) == pytest.approx(0.3 / np.sqrt(2), rel=0.02)
    assert E.rms(np.zeros(0, np.int16)) == 0.0


def test_energy_computed_once_gives_the_same_answers():
    s = make_speech(SR, seed=11, sentences=2, words_per_sentence=(3, 4), lead_ms=400.0)
    at = s.fault_points_ms(120, 1)[0]
    x, fault = dropout(s.samples, SR, at, 120)
    en = E.signal_energy(x, SR)
    assert en.threshold == E.silence_threshold(E.frame_rms(x, SR)[0])
    on = first_onset(x, SR, energy=en)
    assert on == first_onset(x, SR)
    assert abs(on / SR * 1000 - 400.0) < 5.0  # the planted lead-in
    a, b = detect_gaps(x, SR, energy=en), detect_gaps(x, SR)
    assert a.max_gap_ms == b.max_gap_ms and a.threshold == b.threshold
    assert a.max_gap_ms == pytest.approx(fault.value, abs=25)  # the planted hole
    t = lambda i: i / SR
    assert activity_intervals(x, SR, t, energy=en) == activity_intervals(x, SR, t)


def test_energy_of_another_signal_is_refused():
    x = np.zeros(SR, np.float32)
    en = E.signal_energy(x[: SR // 2], SR)
    with pytest.raises(ValueError, match="8000-sample signal"):
        first_onset(x, SR, energy=en)
    with pytest.raises(ValueError, match="frame"):
        detect_gaps(x, SR, energy=E.signal_energy(x, SR), frame_ms=20.0)

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


def test_sound_onset_is_the_first_30ms_run_at_minus_50_dbfs_whatever_the_chunking():
    from autortc.audio.energy import SoundOnset, first_sound_ms

    sr = 16000
    x = np.zeros(sr, np.int16)
    x[3200:3360] = 1000  # 10 ms at -30 dBFS: too short to count (a click, a breath)
    x[4800:4960] = 50  # 10 ms at -56 dBFS: too quiet
    x[8000:12000] = (3000 * np.sin(np.arange(4000) / 5)).astype(np.int16)  # from 500 ms on
    assert first_sound_ms(x, sr) == 500.0
    for chunk in (1, 160, 333, 16000):
        det = SoundOnset(sr)
        hits = [det.push(x[i:i + chunk], t_last=(i + min(chunk, x.size - i) - 1) / sr) for i in range(0, x.size, chunk)]
        got = [h for h in hits if h is not None]
        assert got == [pytest.approx(0.5, abs=1e-9)] and det.onset_sample == 8000
    assert first_sound_ms(np.zeros(sr, np.int16), sr) is None


def test_plan_gives_premature_the_case_wavs_first_sound_to_eot():
    from pathlib import Path

    from autortc.cases import load_cases
    from autortc.faultbench.plan import BenchCase, make_plan

    cases = {c.id: c for c in load_cases(Path(__file__).parents[2] / "cases" / "all_cases.json")}
    quiet = BenchCase.from_case(cases["level_quiet_speaker"])  # speech 300-2668 ms, first -50 dBFS run at 370 ms
    noise = BenchCase.from_case(cases["noise_background"])  # noise bed from 0 ms, speech ends at 2270 ms
    assert quiet.user_sound_to_eot_ms == 2668 - 370 and noise.user_sound_to_eot_ms == 2270
    plan = make_plan([quiet], seed=1, k=1, clean=0, delay_pairs=0, faults=["premature_500"])
    assert plan.items[0].spec["user_sound_to_eot_ms"] == 2298

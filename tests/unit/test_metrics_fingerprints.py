import numpy as np
import pytest

from autortc.metrics.fingerprints import (detect_repeats, detect_spikes, drift_ratio, hf_energy_ratio,
                                          hf_ratio_drop, peak_derivative_max)
from autortc.testing.faults import boom, hf_loss, make_speech, speed_drift, stutter

pytestmark = pytest.mark.unit

SR = 16000


@pytest.fixture(scope="module")
def speeches():
    return [make_speech(SR, seed=s) for s in (10, 11)]


def test_clean_has_no_spikes_and_no_repeats(speeches):
    for s in speeches:
        assert detect_spikes(s.samples, SR) == []
        assert detect_repeats(s.samples, SR) == []


@pytest.mark.parametrize("i", [0, 1])
def test_boom_20ms_found(speeches, i):
    s = speeches[i]
    at = s.speech_points_ms(1, rng_seed=i)[0]
    y, f = boom(s.samples, SR, at, 20.0)
    sp = detect_spikes(y, SR)
    assert len(sp) == 1, sp
    assert abs(sp[0].start_ms - f.start_ms) <= 10 and abs(sp[0].end_ms - f.end_ms) <= 10
    # the onset is a step of about the boom amplitude (0.95) minus the speech under it
    assert peak_derivative_max(y) >= 0.8


def test_boom_in_silence_found(speeches):
    """A first-frame pop before any speech (missing fade-in)."""
    s = speeches[0]
    y, f = boom(s.samples, SR, 50.0, 20.0)
    sp = detect_spikes(y, SR)
    assert len(sp) == 1 and abs(sp[0].start_ms - 50.0) <= 10 and abs(sp[0].end_ms - 70.0) <= 10


@pytest.mark.parametrize("ratio", [1.03, 0.97])
def test_speed_drift_within_10_percent(speeches, ratio):
    s = speeches[0]
    y, f = speed_drift(s.samples, SR, ratio)
    got = drift_ratio(s.samples, y, SR)
    assert got - 1 == pytest.approx(f.value - 1, rel=0.10)
    assert drift_ratio(s.samples, s.samples, SR) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("gain", [0.0, 0.5])
def test_hf_loss_within_10_percent(speeches, gain):
    s = speeches[1]
    y, f = hf_loss(s.samples, SR, gain=gain)
    got = hf_ratio_drop(s.samples, y, SR)
    assert got == pytest.approx(f.value, rel=0.10)
    assert abs(hf_ratio_drop(s.samples, s.samples, SR)) < 0.01
    assert hf_energy_ratio(s.samples, SR) > 0.01  # the corpus really has 4-8 kHz energy


def test_hf_ratio_across_sample_rates(speeches):
    from autortc.audio import resample

    s = speeches[1]
    up = resample(s.samples, SR, 48000)
    assert abs(hf_ratio_drop(s.samples, up, SR, 48000)) < 0.05
    assert hf_energy_ratio(np.zeros(8000), 8000) is None  # band above Nyquist


@pytest.mark.parametrize("chunk_ms,repeats", [(60, 2), (120, 1)])
def test_stutter_found(speeches, chunk_ms, repeats):
    s = speeches[0]
    at = s.fault_points_ms(chunk_ms, 1, rng_seed=chunk_ms)[0]
    y, f = stutter(s.samples, SR, at, chunk_ms, repeats)
    r = detect_repeats(y, SR)
    assert len(r) == 1, r
    assert abs(r[0].start_ms - f.start_ms) <= 10 and abs(r[0].end_ms - f.end_ms) <= 10, (r, f)
    assert r[0].period_ms == pytest.approx(chunk_ms, rel=0.10)

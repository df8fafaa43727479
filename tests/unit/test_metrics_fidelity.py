import numpy as np
import pytest

from autortc.metrics.fidelity import align, mel_distance
from autortc.testing.faults import hf_loss, make_speech

pytestmark = pytest.mark.unit

SR = 16000


@pytest.fixture(scope="module")
def speech():
    return make_speech(SR, seed=21, sentences=2).samples


@pytest.mark.parametrize("lag_ms", [0.0, 37.5, 250.0, -12.0])
def test_align_finds_lag(speech, lag_ms):
    k = int(round(lag_ms * SR / 1000))
    post = np.concatenate([np.zeros(k, np.float32), speech]) if k >= 0 else speech[-k:]
    al = align(speech, post, SR)
    assert al.lag_samples == k
    assert al.lag_ms == pytest.approx(k / SR * 1000)
    assert al.peak_corr > 0.95


def test_mel_distance_orders_degradations(speech):
    post = np.concatenate([np.zeros(800, np.float32), speech])
    d0 = mel_distance(speech, post, SR)
    assert d0 < 0.5  # identical after alignment
    muffled, _ = hf_loss(speech, SR, gain=0.1)
    rng = np.random.default_rng(0)
    noisy = speech + rng.normal(0, 0.03, speech.shape).astype(np.float32)
    d_muf = mel_distance(speech, muffled, SR)
    d_noise = mel_distance(speech, noisy, SR)
    assert d_muf > d0 + 1.0
    assert d_noise > d0 + 1.0


def test_mel_distance_any_rate(speech):
    from autortc.audio import resample

    up = resample(speech, SR, 48000)
    d = mel_distance(up, up, 48000)
    assert d == pytest.approx(0.0, abs=1e-6)

import numpy as np
import pytest

from autortc.metrics.level import CaptureStatus, audio_valid, capture_status, clipping_ratio, rms
from autortc.testing.faults import clip, make_speech

pytestmark = pytest.mark.unit

SR = 16000


@pytest.fixture(scope="module")
def speech():
    return make_speech(SR, seed=4)


def test_clean_has_no_clipping(speech):
    assert clipping_ratio(speech.samples) == 0.0


@pytest.mark.parametrize("fraction", [0.0005, 0.01])
def test_clipping_ratio_within_10_percent(speech, fraction):
    y, f = clip(speech.samples, fraction)
    # through int16 like a real WAV
    y16 = (np.clip(y, -1, 32767 / 32768) * 32768).astype(np.int16).astype(np.float32) / 32768
    got = clipping_ratio(y16)
    assert got == pytest.approx(fraction, rel=0.10)
    assert got == pytest.approx(f.value, rel=0.10)
    # the seed gate: < 0.1 %
    assert (got < 0.001) == (fraction < 0.001)


def test_rms_of_sine():
    x = np.sin(2 * np.pi * 100 * np.arange(SR) / SR) * 0.5
    assert rms(x) == pytest.approx(0.5 / np.sqrt(2), rel=1e-3)
    assert rms(np.zeros(0)) == 0.0


@pytest.mark.parametrize(
    "pre,post,want",
    [
        (0.05, 0.05, CaptureStatus.OK),
        (0.05, 0.001, CaptureStatus.POST_SILENT),
        (None, 0.05, CaptureStatus.PRE_MISSING),
        (0.05, None, CaptureStatus.POST_MISSING),
        (0.001, 0.05, CaptureStatus.PRE_SILENT),
        (0.01, 0.01, CaptureStatus.OK),  # threshold is inclusive
    ],
)
def test_capture_status(pre, post, want):
    assert capture_status(pre, post) == want


def test_audio_valid_uses_max_of_reply_and_full():
    assert audio_valid(0.0, 0.02) is True  # bad slice, real audio in the full capture (seed D9 fix)
    assert audio_valid(0.009, 0.009) is False
    assert audio_valid(None, None) is False
    assert audio_valid(0.01, None) is True

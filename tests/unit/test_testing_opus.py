"""The libopus round trip with lost packets (autortc.testing.opus): the ground truth for
concealment detectors.  Lossless decoding through libopus directly equals PyAV's decoder; a lost
packet changes the audio only from the samples it carried on (after it the decoder's state differs
for a while: up to 0.1 full scale 60 ms later on piper speech, as a real receiver's would), and each
concealment does what it says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autortc.testing import opus

pytestmark = pytest.mark.unit

GOLD = Path(__file__).resolve().parents[2] / "cases" / "tts" / "gold"


@pytest.fixture(scope="module")
def speech():
    pytest.importorskip("av")
    x, sr = sf.read(GOLD / "long_01.wav", dtype="float32")
    return x, sr


def test_lossless_libopus_decode_equals_pyav(speech):
    x, sr = speech
    pkts, skip, n = opus._encode(x, sr, 32000)
    direct = opus._decode(pkts, set(), "plc").astype(np.float32)[skip:skip + n] / 32768.0
    assert np.array_equal(direct, opus.opus_roundtrip(x, sr)[0])


@pytest.mark.parametrize("conceal", ["plc", "repeat", "zero"])
def test_a_lost_packet_changes_the_audio_only_from_what_it_carried(speech, conceal):
    x, sr = speech
    clean = opus.opus_roundtrip(x, sr)[0]
    k = 120
    y = opus.opus_roundtrip(x, sr, lost=[k], conceal=conceal)[0]
    a, b = opus.lost_span(k)
    changed = np.flatnonzero(np.abs(y - clean) > 1e-3)
    assert changed.size and changed[0] >= a - 48 and changed[0] < b, (changed[:3], a, b)
    if conceal == "zero":
        assert np.all(y[a:b] == 0)
    if conceal == "repeat":
        assert np.array_equal(y[a:b], y[a - opus.FRAME_48K:b - opus.FRAME_48K])
    if conceal == "plc":
        assert np.sqrt(np.mean(y[a:b] ** 2)) > 0.1 * np.sqrt(np.mean(clean[a:b] ** 2))  # filled, not silent

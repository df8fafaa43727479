"""ViSQOL MOS-LQO: one batch of short clips through the process pool.

The project installs visqol-python's lattice mapping (ai-edge-litert): measured here, identical
real speech 4.56 and 6 dB SNR white noise 1.38 (the fallback polynomial gave 4.2 for the noise).
Identical audio does not reach 5.0 with the lattice; the bounds below come from those figures.
"""

import numpy as np
import pytest

from autortc.metrics.perceptual import score_many
from autortc.testing.faults import make_speech

pytestmark = pytest.mark.unit


def test_identical_scores_high_and_noise_scores_low():
    s = make_speech(16000, seed=30, sentences=1, words_per_sentence=(3, 3), lead_ms=100, tail_ms=100).samples
    rng = np.random.default_rng(1)
    p_sig = float(np.mean(s ** 2))
    noisy = s + rng.normal(0, np.sqrt(p_sig / 10 ** (6 / 10)), s.shape).astype(np.float32)  # 6 dB SNR
    res = score_many([(s, s, 16000), (s, noisy, 16000), (s[:4000], s[:4000], 16000)], max_workers=2)
    assert res[0].mos_lqo is not None and res[0].mos_lqo > 4.0, res[0]
    assert res[1].mos_lqo is not None and res[1].mos_lqo < 2.5 and res[1].mos_lqo < res[0].mos_lqo - 1.5, res[1]
    assert res[2].mos_lqo is None and "too short" in res[2].error

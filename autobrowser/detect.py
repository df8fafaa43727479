"""The page's segment detector (web/src/detector-worklet.js) as a pure numpy function.

Both implement, for float samples ``x`` (shape (n,), full scale 1.0) at ``sr`` Hz:

- ``rms[n] = sqrt(sum(x[n-W+1..n]**2) / W)``, a trailing window of ``W = window_ms`` samples
  (samples before 0 count as zeros);
- ``active[n] = rms[n] >= threshold_rms``;
- a segment's onset is the first sample ``k`` in ``(n0-W, n0]`` with ``|x[k]| >= threshold``,
  ``n0`` its first active sample; its end (EoT) is the last sample ``k <= n1`` with
  ``|x[k]| >= threshold``, ``n1`` its last active sample;
- active runs separated by at most ``silence_ms`` samples (``next_active - last_active``)
  belong to the same segment.

Thresholds: 0.015 RMS and a 400 ms silence window are the seed's (devlog D13, ``monitorMic``).
The tests check the browser's segments against this function on the same file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autortc.audio.energy import BROWSER_DETECTOR_RMS, BROWSER_SILENCE_MS, BROWSER_WINDOW_MS


@dataclass(frozen=True)
class DetectorConfig:
    threshold_rms: float = BROWSER_DETECTOR_RMS
    silence_ms: float = BROWSER_SILENCE_MS
    window_ms: float = BROWSER_WINDOW_MS

    def window_samples(self, sr: int) -> int:
        return max(1, round(self.window_ms * sr / 1000))

    def silence_samples(self, sr: int) -> int:
        return max(1, round(self.silence_ms * sr / 1000))


@dataclass(frozen=True)
class Segment:
    """A speech (or playout) segment, sample indices into the analysed signal, end inclusive."""

    onset: int
    end: int


def detect_segments(x: np.ndarray, sr: int, cfg: DetectorConfig = DetectorConfig()) -> list[Segment]:
    """Segments of ``x`` (float, shape (n,)) exactly as the page's worklet finds them.

    A segment still active at the end of ``x`` is returned too (the worklet's ``flush``).
    Raises ValueError for a non-1-D input or a non-positive rate.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"detect_segments wants a 1-D signal, got shape {x.shape}")
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    if x.size == 0:
        return []
    w = cfg.window_samples(sr)
    s = cfg.silence_samples(sr)
    thr2 = cfg.threshold_rms**2
    sq = x * x
    csum = np.concatenate([[0.0], np.cumsum(sq)])
    idx = np.arange(x.size)
    win = csum[idx + 1] - csum[np.maximum(idx + 1 - w, 0)]
    active = win >= thr2 * w
    loud = sq >= thr2
    act_idx = np.flatnonzero(active)
    if act_idx.size == 0:
        return []
    # Split active samples into segments where the gap exceeds the silence window.
    breaks = np.flatnonzero(np.diff(act_idx) > s)
    starts = np.concatenate([[act_idx[0]], act_idx[breaks + 1]])
    ends = np.concatenate([act_idx[breaks], [act_idx[-1]]])
    loud_idx = np.flatnonzero(loud)
    out: list[Segment] = []
    for n0, n1 in zip(starts, ends):
        lo = max(0, n0 - w + 1)
        i = np.searchsorted(loud_idx, lo, side="left")
        onset = int(loud_idx[i]) if i < loud_idx.size and loud_idx[i] <= n0 else int(n0)
        j = np.searchsorted(loud_idx, n1, side="right") - 1
        end = int(loud_idx[j]) if j >= 0 else int(n1)
        out.append(Segment(onset=onset, end=end))
    return out

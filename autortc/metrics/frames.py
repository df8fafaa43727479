"""Energy framing shared by the detectors (10 ms frames, 5 ms hop unless told)."""

from __future__ import annotations

import numpy as np

SEED_SILENCE_FLOOR = 0.005
"""Lowest silence threshold (frame RMS, full scale 1.0); seed devlog D8 ("自适应静音阈值")."""
SEED_SILENCE_P10_FACTOR = 0.6
"""Factor on the 10th percentile of frame RMS; seed devlog D8: max(0.005, p10 * 0.6)."""


def frame_rms(x: np.ndarray, sr: int, *, frame_ms: float = 10.0, hop_ms: float = 5.0) -> tuple[np.ndarray, int, int]:
    """RMS of frames of ``x`` (shape ``(n,)``).

    Returns ``(rms, hop, frame)``: ``rms[i]`` covers samples ``[i*hop, i*hop+frame)``;
    a signal shorter than one frame gives one frame over all of it.
    """
    frame = max(1, int(round(frame_ms * sr / 1000.0)))
    hop = max(1, int(round(hop_ms * sr / 1000.0)))
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] <= frame:
        return np.array([np.sqrt(np.mean(x ** 2)) if x.size else 0.0]), hop, max(frame, x.shape[0])
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    starts = np.arange(0, x.shape[0] - frame + 1, hop)
    e = (c[starts + frame] - c[starts]) / frame
    return np.sqrt(np.maximum(e, 0.0)), hop, frame


def silence_threshold(rms: np.ndarray) -> float:
    """Seed adaptive silence threshold on frame RMS: ``max(0.005, p10(rms) * 0.6)``."""
    if rms.size == 0:
        return SEED_SILENCE_FLOOR
    return float(max(SEED_SILENCE_FLOOR, np.percentile(rms, 10) * SEED_SILENCE_P10_FACTOR))


def short_rms(x: np.ndarray, sr: int, *, win_ms: float = 2.0) -> np.ndarray:
    """RMS in a centred ``win_ms`` window at every sample (shape ``(n,)``)."""
    w = max(1, int(round(win_ms * sr / 1000.0)))
    x = np.asarray(x, dtype=np.float64)
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    n = x.shape[0]
    lo = np.clip(np.arange(n) - w // 2, 0, n)
    hi = np.clip(lo + w, 0, n)
    return np.sqrt(np.maximum((c[hi] - c[lo]) / np.maximum(hi - lo, 1), 0.0))


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` index runs where ``mask`` is true."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))

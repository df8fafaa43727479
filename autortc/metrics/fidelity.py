"""Fidelity of post-RTC audio to the pre-RTC audio: time alignment and mel distance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Alignment", "align", "mel_distance"]

MEL_SR = 16000
"""Rate (Hz) at which mel distance is computed; both signals are resampled to it with soxr."""


@dataclass(frozen=True)
class Alignment:
    """``lag_samples`` = index in post - index in reference of the same content (positive: post is late)."""

    lag_samples: int
    lag_ms: float
    peak_corr: float


def align(reference: np.ndarray, post: np.ndarray, sr: int, *, max_lag_ms: float | None = None) -> Alignment:
    """Align ``post`` to ``reference`` (both mono, same ``sr``) by FFT cross-correlation.

    Args:
        max_lag_ms: only consider ``|lag| <= max_lag_ms`` (``None``: any lag).

    Returns:
        :class:`Alignment`; ``peak_corr`` is the normalised correlation (0..1) at the lag.
    """
    from scipy.signal import correlate, correlation_lags

    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(post, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return Alignment(0, 0.0, 0.0)
    cc = correlate(b, a, mode="full", method="fft")
    lags = correlation_lags(b.size, a.size, mode="full")
    if max_lag_ms is not None:
        m = np.abs(lags) <= max_lag_ms * sr / 1000.0
        cc, lags = cc[m], lags[m]
    k = int(np.argmax(cc))
    norm = float(np.sqrt(np.sum(a * a) * np.sum(b * b))) or 1.0
    lag = int(lags[k])
    return Alignment(lag, lag / sr * 1000.0, float(cc[k] / norm))


def _overlap(reference: np.ndarray, post: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    if lag >= 0:
        b = post[lag:]
        a = reference
    else:
        a = reference[-lag:]
        b = post
    n = min(a.shape[0], b.shape[0])
    return a[:n], b[:n]


def mel_distance(reference: np.ndarray, post: np.ndarray, sr: int, *, lag_samples: int | None = None,
                 n_mels: int = 64, top_db: float = 80.0) -> float:
    """Mean absolute difference (dB) of log-mel spectrograms after alignment.

    Both signals are aligned (``lag_samples`` or :func:`align`), cut to their
    overlap, resampled to 16 kHz (soxr) and turned into 64-band mel power spectrograms
    (librosa, 25 ms / 10 ms); frames where both are more than ``top_db`` below the
    reference peak are ignored.  0.0 for identical audio; larger is worse.
    """
    import librosa

    from autortc.audio import resample

    lag = align(reference, post, sr).lag_samples if lag_samples is None else lag_samples
    a, b = _overlap(np.asarray(reference, np.float32), np.asarray(post, np.float32), lag)
    a = resample(a, sr, MEL_SR)
    b = resample(b, sr, MEL_SR)
    if a.size < 400:
        return float("nan")
    kw = dict(sr=MEL_SR, n_fft=400, hop_length=160, n_mels=n_mels, fmax=MEL_SR / 2)
    ma = librosa.feature.melspectrogram(y=a, **kw)
    mb = librosa.feature.melspectrogram(y=b, **kw)
    ref = float(max(ma.max(), 1e-10))
    da = librosa.power_to_db(ma, ref=ref, top_db=None)
    db = librosa.power_to_db(mb, ref=ref, top_db=None)
    da = np.maximum(da, -top_db)
    db = np.maximum(db, -top_db)
    active = (da.max(axis=0) > -top_db + 1) | (db.max(axis=0) > -top_db + 1)
    if not active.any():
        return 0.0
    return float(np.mean(np.abs(da[:, active] - db[:, active])))

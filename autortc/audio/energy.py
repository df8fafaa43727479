"""Energy and onset: the one place where AutoRTC decides what is sound and what is silence.

Every detector (the probe's live onset, the metrics' onsets, gaps and activity, the case
loader's speech span, the browser page's segment detector) takes its frame RMS and its
threshold from here.  The thresholds differ because they answer different questions, each
named with its source:

==========================  ========  =======================================================
name                        value     used by / why
==========================  ========  =======================================================
SEED_SILENCE_FLOOR          0.005     adaptive silence threshold ``max(0.005, p10 * 0.6)`` of a
SEED_SILENCE_P10_FACTOR     0.6       signal's 10 ms frames (seed devlog D8): reply onsets, gaps,
                                      activity, dropout reference, fingerprint spans.  Adapts to
                                      the capture's own noise floor, so a codec's comfort noise
                                      is silence.
AUDIBLE_RMS                 0.01      fixed "is there audio at all" level (seed devlog D9,
                                      capture_status / audio_valid): the probe's live onset
                                      anchor, the runner's reply slicing, the level metrics.
                                      Fixed, because the probe decides on single 10 ms frames
                                      before a whole signal exists to adapt to.
BROWSER_DETECTOR_RMS        0.015     the page's mic/playout segment detector
BROWSER_SILENCE_MS          400       (web/src/detector-worklet.js, seed devlog D13
BROWSER_WINDOW_MS           10        ``monitorMic``); must equal the JS, which the browser
                                      tests check sample by sample.
SPEECH_*                    see below a case WAV's speech span (the annotation's definition):
                                      frame RMS above ``max(-50 dBFS, floor + 12 dB)``, floor =
                                      the quietest 50 ms; runs >= 30 ms.  Relative to the file's
                                      own floor because case WAVs carry planted noise.
SOUND_DBFS, SOUND_RUN_MS    -50, 30   first sound of a stream (``SoundOnset``): the first run
                                      of >= 30 ms of 10 ms blocks at >= -50 dBFS, blocks on the
                                      stream's own grid.  The premature fault's anchor: the
                                      bench finds it in the case WAV, the agent in the audio it
                                      receives, so both name the same sample (the user's mic
                                      sends digital silence before a segment; a WAV's noise
                                      bed counts as sound, on both sides alike).
==========================  ========  =======================================================

Shapes: ``x`` is mono float (full scale 1.0), shape ``(n,)``; ``sr`` in Hz; frame indices
count hops.  Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "SEED_SILENCE_FLOOR", "SEED_SILENCE_P10_FACTOR", "AUDIBLE_RMS", "BROWSER_DETECTOR_RMS", "BROWSER_SILENCE_MS",
    "BROWSER_WINDOW_MS", "SPEECH_FRAME_MS", "SPEECH_MIN_RUN_MS", "SPEECH_FLOOR_DBFS", "SPEECH_ABOVE_NOISE_DB",
    "SPEECH_FLOOR_WINDOW_MS", "FRAME_MS", "HOP_MS", "SignalEnergy", "signal_energy", "rms", "frame_rms",
    "silence_threshold", "short_rms", "runs", "measure_speech_span", "SOUND_DBFS", "SOUND_RUN_MS", "SOUND_BLOCK_MS",
    "SoundOnset", "first_sound_ms",
]

SEED_SILENCE_FLOOR = 0.005
"""Lowest adaptive silence threshold (frame RMS); seed devlog D8 ("自适应静音阈值")."""
SEED_SILENCE_P10_FACTOR = 0.6
"""Factor on the 10th percentile of frame RMS; seed devlog D8: ``max(0.005, p10 * 0.6)``."""
AUDIBLE_RMS = 0.01
"""Fixed audibility level (RMS); seed devlog D9 (P0-4 capture_status, ``audio_valid``)."""
BROWSER_DETECTOR_RMS = 0.015
"""Trailing-window RMS of the page's segment detector; seed devlog D13 (``monitorMic``)."""
BROWSER_SILENCE_MS = 400.0
"""Silence that ends a page segment; seed devlog D13."""
BROWSER_WINDOW_MS = 10.0
"""Trailing RMS window of the page's detector (web/src/detector-worklet.js)."""

SPEECH_FRAME_MS = 10
SPEECH_MIN_RUN_MS = 30
SPEECH_FLOOR_DBFS = -50.0
SPEECH_ABOVE_NOISE_DB = 12.0
SPEECH_FLOOR_WINDOW_MS = 50

# The first-sound rule is shared with agents (the premature fault anchors on it), so it lives in
# the protocol package, which agents may import; re-exported here with the other thresholds.
from autortc.protocol.sound import SOUND_BLOCK_MS, SOUND_DBFS, SOUND_RUN_MS, SoundOnset, first_sound_ms  # noqa: E402

FRAME_MS = 10.0
HOP_MS = 5.0
"""Frames of the metrics' detectors: 10 ms, 5 ms hop."""


def rms(x: np.ndarray) -> float:
    """Root mean square of ``x`` (float full scale 1.0, or int16 scaled by 1/32768); 0.0 when empty."""
    x = np.asarray(x)
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32768.0
    x = x.astype(np.float64, copy=False)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def frame_rms(x: np.ndarray, sr: int, *, frame_ms: float = FRAME_MS, hop_ms: float = HOP_MS) -> tuple[np.ndarray, int, int]:
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


def silence_threshold(frame_levels: np.ndarray) -> float:
    """Seed adaptive silence threshold on frame RMS: ``max(0.005, p10(rms) * 0.6)``."""
    if frame_levels.size == 0:
        return SEED_SILENCE_FLOOR
    return float(max(SEED_SILENCE_FLOOR, np.percentile(frame_levels, 10) * SEED_SILENCE_P10_FACTOR))


@dataclass(frozen=True)
class SignalEnergy:
    """A signal's frame RMS and adaptive silence threshold, computed once and shared by the
    detectors that look at the same signal (pass it as ``energy=``).

    ``rms[i]`` covers samples ``[i*hop, i*hop+frame)``; ``threshold`` is
    :func:`silence_threshold` of ``rms``; ``n`` and ``sr`` identify the signal.
    """

    rms: np.ndarray
    hop: int
    frame: int
    threshold: float
    n: int
    sr: int

    def check(self, x: np.ndarray, sr: int, frame: int | None = None, hop: int | None = None) -> None:
        """Raise ``ValueError`` when this energy was not computed for ``x`` at ``sr`` (and these frames)."""
        if np.asarray(x).shape[0] != self.n or sr != self.sr or (frame is not None and frame != self.frame) \
                or (hop is not None and hop != self.hop):
            raise ValueError(f"energy of a {self.n}-sample signal at {self.sr} Hz (frame {self.frame}, hop {self.hop}) "
                             f"passed for a {np.asarray(x).shape[0]}-sample signal at {sr} Hz")


def signal_energy(x: np.ndarray, sr: int, *, frame_ms: float = FRAME_MS, hop_ms: float = HOP_MS) -> SignalEnergy:
    """:class:`SignalEnergy` of ``x``: frame RMS (``frame_ms``/``hop_ms``) and its seed silence threshold."""
    levels, hop, frame = frame_rms(x, sr, frame_ms=frame_ms, hop_ms=hop_ms)
    return SignalEnergy(levels, hop, frame, silence_threshold(levels), int(np.asarray(x).shape[0]), int(sr))


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


def measure_speech_span(samples: np.ndarray, sr: int) -> tuple[int, int] | None:
    """First and last speech sample of a mono signal, in ms: ``(start_ms, end_ms)``.

    Args:
        samples: shape ``(n,)`` float (full scale 1.0) or int16.
        sr: sample rate in Hz.

    A 10 ms frame is speech when its RMS exceeds ``max(-50 dBFS, floor + 12 dB)`` where
    ``floor`` is the level of the quietest 50 ms of the signal;
    only runs of >= 30 ms of speech frames count, so a lone click or boom is not speech.
    Inside the first/last run the boundary is refined to the first/last sample whose
    magnitude exceeds the frame threshold.  Returns ``None`` when no run qualifies.
    ``end_ms`` is the time just after the last speech sample (``(index + 1) / sr``).

    Raises:
        ValueError: ``samples`` is not 1-D.
    """
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"expected mono samples of shape (n,), got shape {x.shape}")
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32768.0
    x = x.astype(np.float64, copy=False)
    hop = max(1, int(round(sr * SPEECH_FRAME_MS / 1000)))
    n_frames = x.shape[0] // hop
    if n_frames == 0:
        return None
    frames = x[: n_frames * hop].reshape(n_frames, hop)
    levels = np.sqrt(np.mean(frames * frames, axis=1))
    level_db = 20.0 * np.log10(np.maximum(levels, 1e-10))
    # Noise floor: the quietest 50 ms stretch (works when a file has only a few tens
    # of ms of lead-in, where a percentile of frames would land on speech).
    win = min(SPEECH_FLOOR_WINDOW_MS // SPEECH_FRAME_MS, n_frames)
    power = np.convolve(levels * levels, np.ones(win) / win, mode="valid")
    floor_db = 10.0 * float(np.log10(max(float(power.min()), 1e-20)))
    thr_db = max(SPEECH_FLOOR_DBFS, floor_db + SPEECH_ABOVE_NOISE_DB)
    active = level_db > thr_db
    min_run = max(1, SPEECH_MIN_RUN_MS // SPEECH_FRAME_MS)
    # runs of consecutive active frames
    edges = np.diff(np.concatenate(([0], active.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)  # exclusive
    keep = (ends - starts) >= min_run
    if not np.any(keep):
        return None
    first, last = int(starts[keep][0]), int(ends[keep][-1])
    thr_amp = 10.0 ** (thr_db / 20.0)
    seg = np.abs(frames[first])
    i0 = first * hop + int(np.flatnonzero(seg > thr_amp)[0]) if np.any(seg > thr_amp) else first * hop
    seg = np.abs(frames[last - 1])
    i1 = (last - 1) * hop + int(np.flatnonzero(seg > thr_amp)[-1]) if np.any(seg > thr_amp) else last * hop - 1
    return int(round(i0 * 1000 / sr)), int(round((i1 + 1) * 1000 / sr))

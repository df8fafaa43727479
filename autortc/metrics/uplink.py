"""The uplink: did the user's speech reach the agent whole, and how late?

The agent's audio input is copied by the protocol helper (``agent_input.wav``: what its VAD
and STT got, docs/protocol.md); ``user.wav`` is what the user side published. Each spoken
segment of ``user.wav`` is found in the copy by cross-correlation near where the two clocks
put it, which gives

* the **uplink delay**: monotonic time the agent received a sample minus the time the user
  side handed it over (user side -> SFU -> the agent's jitter buffer and decoder);
* the **speech lost on the way**: runs of the copy's 10 ms frames at least :data:`LOST_DROP_DB`
  under the user's same frames (after the copy's overall gain), where the user's audio has sound
  (:func:`lost_spans`).

Why: a "clean" turn is only clean if the agent heard what the case says; when the agent
answers "Sorry, I did not catch that", this tells the agent's STT mishearing intact speech
("in the agent") from speech damaged before it ("on the way"), and the instrument's own
stalls from the agent's faults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from autortc.audio import resample
from autortc.audio.energy import frame_rms, runs, silence_threshold
from autortc.metrics import continuity
from autortc.metrics.fidelity import align

__all__ = ["SegmentUplink", "segment_uplink", "lost_spans", "SEARCH_MS", "LOST_DROP_DB"]

LOST_DROP_DB = 20.0
"""A frame of the user's speech is lost when the copy's is this much quieter (beyond the copy's
overall gain). Source: a libopus round trip (autortc.testing.opus, 20 ms frames) of the 18 case
WAVs lowers frames above the silence threshold by at most 10.0 dB (rate_slow_speaker; a stop
closure at -40 dBFS squashed to -50), and a lost packet the receiver leaves silent by > 40 dB."""

SEARCH_MS = (-100.0, 1500.0)
"""Uplink delays searched (ms, relative to where the two monotonic clocks put the segment): the
WebRTC path on loopback measured 110-250 ms up + down; 1.5 s leaves room for a jitter buffer
grown under a network profile. A negative bound absorbs the copy's first-frame stamp (it is
the frame's receipt minus its duration, so a late first read moves the whole copy early)."""


@dataclass(frozen=True)
class SegmentUplink:
    """One user segment found in the agent's copy.

    ``delay_ms``: agent receipt - user hand-over of the same audio; ``corr``: normalised
    correlation (0..1) at that lag; ``lost``: gaps of the copy inside the segment's speech,
    ms in ``user.wav``; ``lost_ms``: their total.
    """

    delay_ms: float
    corr: float
    lost: list[continuity.Gap] = field(default_factory=list)

    @property
    def lost_ms(self) -> float:
        return float(sum(g.duration_ms for g in self.lost))


def segment_uplink(user: np.ndarray, user_sr: int, t_user0: float, speech: tuple[int, int],
                   agent_in: np.ndarray, in_sr: int, t_in0: float, *,
                   search_ms: tuple[float, float] = SEARCH_MS, min_lost_ms: float = 20.0) -> SegmentUplink | None:
    """Find ``user[speech[0]:speech[1]]`` in the agent's copy and measure what reached it.

    Args:
        user: ``(n,)`` float32 at ``user_sr`` Hz, what the user side published; sample 0 left it at
            monotonic ``t_user0`` s.
        speech: ``[start, end)`` samples of the segment's speech in ``user``.
        agent_in: ``(m,)`` float32 at ``in_sr`` Hz, the agent's input copy; its sample 0 reached the
            agent at monotonic ``t_in0`` s (same clock as ``t_user0``).
        search_ms: delays searched, ms (:data:`SEARCH_MS`).
        min_lost_ms: shorter gaps are not counted (one codec frame is 20 ms).

    Returns:
        :class:`SegmentUplink`, or ``None`` when the copy does not cover the searched span or the
        segment holds no audio.
    """
    s, e = int(speech[0]), int(speech[1])
    if e <= s or s < 0 or e > user.shape[0]:
        return None
    ref = np.asarray(user[s:e], dtype=np.float32)
    if user_sr != in_sr:
        ref = resample(ref, user_sr, in_sr).astype(np.float32)
    if not np.any(ref):
        return None
    x = np.asarray(agent_in, dtype=np.float32)
    # where the segment's first sample would be in the copy with no delay at all
    at0 = (t_user0 + s / user_sr - t_in0) * in_sr
    w0 = int(np.floor(at0 + search_ms[0] * in_sr / 1000.0))
    w1 = int(np.ceil(at0 + search_ms[1] * in_sr / 1000.0)) + ref.shape[0]
    if w0 < 0 or w1 > x.shape[0]:
        w0, w1 = max(0, w0), min(x.shape[0], w1)
        if w1 - w0 < ref.shape[0]:
            return None
    win = x[w0:w1]
    a = align(ref, win, in_sr)
    lo, hi = (at0 - w0) + search_ms[0] * in_sr / 1000.0, (at0 - w0) + search_ms[1] * in_sr / 1000.0
    if not lo - 1 <= a.lag_samples <= hi + 1:
        return None
    delay_ms = (w0 + a.lag_samples - at0) / in_sr * 1000.0
    got = win[a.lag_samples: a.lag_samples + ref.shape[0]] if a.lag_samples >= 0 else win[: ref.shape[0]]
    lost: list[continuity.Gap] = []
    if got.shape[0] == ref.shape[0]:
        off = s / user_sr * 1000.0
        lost = [continuity.Gap(g.start_ms + off, g.end_ms + off) for g in lost_spans(ref, got, in_sr, min_lost_ms=min_lost_ms)]
    return SegmentUplink(delay_ms=float(delay_ms), corr=float(a.peak_corr), lost=lost)


def lost_spans(ref: np.ndarray, got: np.ndarray, sr: int, *, drop_db: float = LOST_DROP_DB,
               min_lost_ms: float = 20.0) -> list[continuity.Gap]:
    """Where ``got`` lost ``ref``'s sound: runs of 10 ms frames (5 ms hop) of ``ref`` above its
    silence threshold whose level in ``got`` is ``drop_db`` or more under ``ref``'s plus the copy's
    gain (median level difference over those frames), lasting ``min_lost_ms`` or more.

    ``ref``, ``got``: ``(n,)`` float32 at ``sr`` Hz, already aligned sample to sample (same length).
    Returns the spans in ms from ``ref``'s sample 0 (a run of k frames spans (k - 1) hops + 1 frame).
    """
    rr, hop, frame = frame_rms(np.asarray(ref, dtype=np.float32), sr)
    gg, _, _ = frame_rms(np.asarray(got, dtype=np.float32), sr)
    n = min(rr.shape[0], gg.shape[0])
    rr, gg = rr[:n], gg[:n]
    sound = rr >= silence_threshold(rr)
    if not np.any(sound):
        return []
    r_db = 20.0 * np.log10(np.maximum(rr, 1e-9))
    g_db = 20.0 * np.log10(np.maximum(gg, 1e-9))
    gain = float(np.median(g_db[sound] - r_db[sound]))
    lost = sound & (g_db < r_db + gain - drop_db)
    out = []
    for a, b in runs(lost):
        start, end = a * hop / sr * 1000.0, ((b - 1) * hop + frame) / sr * 1000.0
        if end - start >= min_lost_ms:
            out.append(continuity.Gap(start, end))
    return out

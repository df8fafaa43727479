"""The uplink: did the user's speech reach the agent whole, and how late?

The agent's audio input is copied by the protocol helper (``agent_input.wav``: what its VAD
and STT got, docs/protocol.md); ``user.wav`` is what the user side published. Each spoken
segment of ``user.wav`` is found in the copy by cross-correlation near where the two clocks
put it, which gives

* the **uplink delay**: monotonic time the agent received a sample minus the time the user
  side handed it over (user side -> SFU -> the agent's jitter buffer and decoder), followed
  window by window (:func:`local_lags`), reported at the segment's end of speech, and how much
  the receiver compressed the segment in time (its start's delay minus its end's);
* the **speech lost on the way**: runs of the copy's 10 ms frames at least :data:`LOST_DROP_DB`
  under the user's same frames (after the copy's overall gain), inside the user's speech
  (:func:`lost_spans`).

Why: a "clean" turn is only clean if the agent heard what the case says; when the agent
answers "Sorry, I did not catch that", this tells the agent's STT mishearing intact speech
("in the agent") from speech damaged before it ("on the way"), and the instrument's own
stalls from the agent's faults.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from autortc.audio import resample
from autortc.audio.energy import SignalEnergy, frame_rms, runs, signal_energy
from autortc.metrics import continuity
from autortc.metrics.fidelity import align

__all__ = ["SegmentUplink", "segment_uplink", "local_lags", "lost_spans", "SEARCH_MS", "LOST_DROP_DB"]

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


SPEECH_RANGE_DB = 25.0
"""Frames of the user's audio more than this under its 90th-percentile level are not counted as
speech that can be lost (as the bundled agent's LevelTrack). Run u1j1: the slow speaker's breath
at -40 dBFS (20 dB under its vowels) came out of the Opus uplink at -60 dBFS: 20 ms "lost"."""

LAG_TOLERANCE_MS = 10.0
"""Where the followed lag may be off (at an onset after silence, with the receiver stretching
time between two windows): a frame is lost only if the copy is quiet within +-10 ms of where the
lag puts it. So a loss shows when the copy is silent for ~30 ms or more (one lost 20 ms packet the
receiver leaves silent does not; its concealment would not be silent either). Run u1j1: with
0 ms, three clean turns showed 20-30 ms "lost" at onsets and ends that were 10 ms misplacements."""

EDGE_MS = 20.0
"""A loss counts only inside speech: the user's audio has speech for 20 ms on both sides of it.
Run u1j1 (16 clean turns, 1-core cgroup): the two losses left after :data:`LAG_TOLERANCE_MS` were at
an onset after digital silence (distortion_sibilant, the local lag moving 36 ms in 400 ms) and at
the utterance's last 30 ms (endpoint_short_hello): where the lag is least sure."""

LOCAL_WIN_MS, LOCAL_HOP_MS, LOCAL_SEARCH_MS = 200.0, 100.0, 80.0
"""Local alignment: 200 ms windows of the user's speech every 100 ms, each found within +-80 ms of
the segment's overall lag. The receiver time-stretches speech: session 23's first live copies
(run u1j1, 16 turns) had the start of an utterance up to 39 ms later than its end (the jitter
buffer catching up after a late burst), which one lag for the whole segment read as 20-65 ms of
"lost" speech at the pauses' edges on 10 of 16 clean turns."""


@dataclass(frozen=True)
class SegmentUplink:
    """One user segment found in the agent's copy.

    ``delay_ms``: agent receipt - user hand-over of the segment's last speech (its EoT);
    ``delay_start_ms``: the same for its first speech (``delay_start_ms - delay_ms`` = how much
    the receiver compressed the segment in time); ``corr``: normalised correlation (0..1) of
    the whole segment at its overall lag; ``lost``: spans of the user's speech that reached the
    agent as silence, ms in ``user.wav``.
    """

    delay_ms: float
    delay_start_ms: float
    corr: float
    lost: list[continuity.Gap] = field(default_factory=list)

    @property
    def lost_ms(self) -> float:
        return float(sum(g.duration_ms for g in self.lost))

    @property
    def warp_ms(self) -> float:
        return self.delay_start_ms - self.delay_ms


def segment_uplink(user: np.ndarray, user_sr: int, t_user0: float, speech: tuple[int, int],
                   agent_in: np.ndarray, in_sr: int, t_in0: float, *,
                   search_ms: tuple[float, float] = SEARCH_MS, min_lost_ms: float = 20.0) -> SegmentUplink | None:
    """Find ``user[speech[0]:speech[1]]`` in the agent's copy and measure what reached it.

    The segment is placed by cross-correlation of the whole of it, then each 200 ms window
    again near that (:data:`LOCAL_WIN_MS`): the lag followed through the segment.

    Args:
        user: ``(n,)`` float32 at ``user_sr`` Hz, what the user side published; sample 0 left it at
            monotonic ``t_user0`` s.
        speech: ``[start, end)`` samples of the segment's speech in ``user``.
        agent_in: ``(m,)`` float32 at ``in_sr`` Hz, the agent's input copy; its sample 0 reached the
            agent at monotonic ``t_in0`` s (same clock as ``t_user0``).
        search_ms: delays searched, ms (:data:`SEARCH_MS`).
        min_lost_ms: shorter losses are not counted (one codec frame is 20 ms).

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
    energy = signal_energy(ref, in_sr)  # the user segment's frame levels, shared by the three steps below
    centers, lags = local_lags(ref, win, in_sr, a.lag_samples, energy=energy)
    first, last = _sound_edges(energy, ref.shape[0])

    def lag_at(i: np.ndarray | float) -> np.ndarray:
        return np.interp(i, centers, lags) if centers.size else np.full(np.shape(i), float(a.lag_samples))

    def to_ms(lag: np.ndarray) -> float:
        return float((w0 + lag - at0) / in_sr * 1000.0)

    off = s / user_sr * 1000.0
    lost = [continuity.Gap(g.start_ms + off, g.end_ms + off)
            for g in lost_spans(ref, win, in_sr, lag_at, min_lost_ms=min_lost_ms, energy=energy)]
    return SegmentUplink(delay_ms=to_ms(lag_at(last)), delay_start_ms=to_ms(lag_at(first)),
                         corr=float(a.peak_corr), lost=lost)


def _sound_edges(energy: SignalEnergy, n: int) -> tuple[int, int]:
    """First and last sample of the frames above the silence threshold of an ``n``-sample signal
    whose ``energy`` this is (``(0, n)`` if none)."""
    on = np.flatnonzero(energy.rms >= energy.threshold)
    if not on.size:
        return 0, n
    return int(on[0] * energy.hop), int(min(n, on[-1] * energy.hop + energy.frame))


def local_lags(ref: np.ndarray, win: np.ndarray, sr: int, lag: int, *, min_corr: float = 0.3,
               energy: SignalEnergy | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The lag (index in ``win`` - index in ``ref``) of each :data:`LOCAL_WIN_MS` window of ``ref``
    that holds sound, found within ``LOCAL_SEARCH_MS`` of ``lag``; windows whose best correlation
    is under ``min_corr`` are left out. Returns (window centres in ``ref`` samples, lags), both
    ``(k,)``; empty when no window qualifies. ``energy``: :func:`signal_energy` of ``ref`` if already computed."""
    n, h, r = int(LOCAL_WIN_MS * sr / 1000), int(LOCAL_HOP_MS * sr / 1000), int(LOCAL_SEARCH_MS * sr / 1000)
    thr = (energy or signal_energy(ref, sr)).threshold
    centers, lags = [], []
    starts = list(range(0, max(1, ref.shape[0] - n + 1), h))
    if ref.shape[0] > n and starts[-1] != ref.shape[0] - n:
        starts.append(ref.shape[0] - n)  # a window ending at the segment's end (the EoT's own lag)
    for k in starts:
        w = ref[k:k + n]
        if w.size < n // 2 or float(np.sqrt(np.mean(w.astype(np.float64) ** 2))) < thr:
            continue
        a0 = lag + k - r
        seg = win[max(0, a0): lag + k + n + r]
        if seg.size < w.size:
            continue
        al = align(w, seg, sr)
        if al.peak_corr < min_corr:
            continue
        centers.append(k + w.size / 2.0)
        lags.append(float(max(0, a0) + al.lag_samples - k))
    return np.asarray(centers), np.asarray(lags)


def lost_spans(ref: np.ndarray, win: np.ndarray, sr: int, lag_at: Callable[[np.ndarray], np.ndarray], *,
               drop_db: float = LOST_DROP_DB, min_lost_ms: float = 20.0, tolerance_ms: float = LAG_TOLERANCE_MS,
               energy: SignalEnergy | None = None) -> list[continuity.Gap]:
    """Where the copy lost ``ref``'s speech: runs of 10 ms frames (5 ms hop) of ``ref`` above its
    silence threshold and within :data:`SPEECH_RANGE_DB` of its 90th-percentile level whose level in the copy is ``drop_db`` or more under ``ref``'s plus the copy's
    gain (median level difference over those frames), lasting ``min_lost_ms`` or more.

    ``ref``: ``(n,)`` float32 at ``sr`` Hz; ``win``: the copy (same ``sr``); ``lag_at(i)``: the lags
    (index in ``win`` - index in ``ref``) at the ``ref`` samples ``i`` (an array); ``energy``:
    :func:`signal_energy` of ``ref`` if already computed. A frame's level in the copy is the
    loudest of its frames within ``tolerance_ms`` of where the lag puts it (the lag is followed per
    window, not per frame: :data:`LAG_TOLERANCE_MS`), and a found run is widened by
    ``tolerance_ms`` on each side (what the neighbourhood took off it). Returns the spans in ms
    from ``ref``'s sample 0 (k frames span (k - 1) hops + 1 frame, plus the widening).
    """
    en = energy or signal_energy(ref, sr)
    rr, hop, frame = en.rms, en.hop, en.frame
    gg, _, _ = frame_rms(np.asarray(win, dtype=np.float32), sr)
    r_db = 20.0 * np.log10(np.maximum(rr, 1e-9))
    sound = (rr >= en.threshold) & (r_db >= np.percentile(r_db, 90) - SPEECH_RANGE_DB)
    if not np.any(sound) or not gg.size:
        return []
    from scipy.ndimage import maximum_filter1d

    tol = max(0, int(round(tolerance_ms * sr / 1000 / hop)))
    # the copy's loudest frame within +-tol of where the lag puts each user frame (0 outside the copy)
    pos = np.arange(rr.shape[0]) * hop
    j = np.rint((pos + lag_at(pos + frame / 2)) / hop).astype(np.int64)
    near = maximum_filter1d(np.pad(gg, tol), size=2 * tol + 1, mode="constant", cval=0.0)
    k = j + tol
    got = np.where((k >= 0) & (k < near.shape[0]), near[np.clip(k, 0, near.shape[0] - 1)], 0.0)
    g_db = 20.0 * np.log10(np.maximum(got, 1e-9))
    gain = float(np.median(g_db[sound] - r_db[sound]))
    lost = sound & (g_db < r_db + gain - drop_db)
    out = []
    edge = max(1, int(round(EDGE_MS * sr / 1000 / hop)))
    for a, b in runs(lost):
        if not (a - edge >= 0 and b + edge <= rr.shape[0] and sound[a - edge:a].all() and sound[b:b + edge].all()):
            continue  # not inside speech: at an onset or an end, where a misplaced lag reads as a loss
        start = max(0.0, a * hop / sr * 1000.0 - tol * hop / sr * 1000.0)
        end = ((b - 1) * hop + frame) / sr * 1000.0 + tol * hop / sr * 1000.0
        if end - start >= min_lost_ms:
            out.append(continuity.Gap(start, end))
    return out

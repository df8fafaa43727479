"""Continuity: silent gaps inside speech and audible dropouts.

Gap detection (seed D8): frame RMS over 10 ms frames (5 ms hop), silence where
RMS < ``max(0.005, p10 * 0.6)``; a gap is a silent run of at least ``min_gap_ms``
with sound on both sides (leading/trailing silence is not a gap).  Gap edges are
refined to ~1 ms with a 2 ms RMS.  Gaps lying mostly (>= 80 %) inside a declared
``expected_silence`` span (widened by ``expected_tolerance_ms``) are excluded.

An **audible dropout** is a gap the listener hears inside speech:

* with the pre-RTC reference: a post-RTC gap whose aligned span in the reference
  holds at least ``min_dropout_ms`` of sound (10 ms frames wholly inside the span;
  the agent published audio there, the listener got silence);
  the alignment is local (log-RMS envelope of the 400 ms of post audio just before
  the gap), so stalls and clock drift earlier in the reply do not shift it;
* without a reference: an *abrupt* cut with speech on both sides, i.e. on each side
  the 10 ms next to the gap are at least ``abrupt_ratio`` of the median speech level
  (RMS) and reach at least ``steady_ratio`` of the peak of the 20 ms beyond them
  (speech was steady, not decaying); natural pauses decay into silence and fail this test.  Codec packet-loss
  concealment that fades out is not a cut: use the reference rule where you can.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from autortc.audio.energy import SignalEnergy, frame_rms, runs, short_rms, silence_threshold

__all__ = ["Gap", "GapReport", "detect_gaps", "audible_dropouts", "expected_silence_coverage"]


@dataclass(frozen=True)
class Gap:
    """A silent span in ms from sample 0 of the analysed signal."""

    start_ms: float
    end_ms: float

    @property
    def duration_ms(self) -> float:
        return self.end_ms - self.start_ms


@dataclass(frozen=True)
class GapReport:
    """Result of :func:`detect_gaps`.

    ``gaps``: gaps not excused by expected silence (they set ``max_gap_ms``);
    ``excused``: gaps inside expected silence; ``threshold``: silence threshold (frame RMS);
    ``speech_level``: median frame RMS of the non-silent frames.
    """

    gaps: list[Gap]
    excused: list[Gap]
    threshold: float
    speech_level: float
    max_gap_ms: float = 0.0
    first_sound_ms: float | None = None
    last_sound_ms: float | None = None
    silence_mask: np.ndarray = field(default_factory=lambda: np.zeros(0, bool), repr=False)
    hop: int = 0
    frame: int = 0


def _refine_edges(x: np.ndarray, sr: int, s: int, e: int, thr: float, search: int) -> tuple[int, int]:
    """Move gap edges ``[s, e)`` to where the 2 ms RMS crosses ``thr`` (within ``search`` samples)."""
    n = x.shape[0]
    lo = max(0, s - search)
    seg = short_rms(x[lo:min(n, s + search)], sr)
    loud = np.flatnonzero(seg[: s + search - lo] >= thr)
    loud = loud[loud < (s - lo) + search // 2]
    s2 = lo + int(loud[-1]) + 1 if loud.size else s
    hi = min(n, e + search)
    lo2 = max(0, e - search)
    seg = short_rms(x[lo2:hi], sr)
    loud = np.flatnonzero(seg >= thr)
    loud = loud[loud > (e - lo2) - search // 2]
    e2 = lo2 + int(loud[0]) if loud.size else e
    return min(s2, e2), max(s2, e2)


def detect_gaps(
    x: np.ndarray,
    sr: int,
    *,
    expected_silence_ms: Sequence[Sequence[float]] = (),
    min_gap_ms: float = 20.0,
    frame_ms: float = 10.0,
    hop_ms: float = 5.0,
    expected_tolerance_ms: float = 30.0,
    threshold: float | None = None,
    energy: SignalEnergy | None = None,
) -> GapReport:
    """Find silent gaps inside the sound of ``x``.

    Args:
        x: mono float32 samples, shape ``(n,)``.
        sr: sample rate (Hz).
        expected_silence_ms: ``[start_ms, end_ms]`` spans (ms from sample 0) where
            silence is intended (sentence pauses the agent meant); a gap 80 % inside one
            of them (overlapping spans merged, separate ones not added up) is reported in
            ``excused`` instead of ``gaps``.
        min_gap_ms: shortest silent run reported.
        threshold: frame-RMS silence threshold; default is the seed's adaptive one.
        energy: :func:`autortc.audio.energy.signal_energy` of ``x`` with these
            ``frame_ms``/``hop_ms``, when the caller has it (computed once per signal).

    Returns:
        :class:`GapReport`; ``max_gap_ms`` is the longest non-excused gap (0 if none).
    """
    x = np.asarray(x, dtype=np.float32)
    if energy is not None:
        energy.check(x, sr, frame=max(1, int(round(frame_ms * sr / 1000.0))), hop=max(1, int(round(hop_ms * sr / 1000.0))))
        rms, hop, frame = energy.rms, energy.hop, energy.frame
        thr = energy.threshold if threshold is None else float(threshold)
    else:
        rms, hop, frame = frame_rms(x, sr, frame_ms=frame_ms, hop_ms=hop_ms)
        thr = silence_threshold(rms) if threshold is None else float(threshold)
    silent = rms < thr
    loud_frames = np.flatnonzero(~silent)
    speech_level = float(np.median(rms[~silent])) if loud_frames.size else 0.0
    if loud_frames.size == 0:
        return GapReport([], [], thr, 0.0, 0.0, None, None, silent, hop, frame)
    first, last = int(loud_frames[0]), int(loud_frames[-1])
    first_ms = first * hop / sr * 1000.0
    last_ms = (last * hop + frame) / sr * 1000.0
    gaps: list[Gap] = []
    excused: list[Gap] = []
    # overlapping spans are one intended silence; separate ones are not summed (below)
    exp: list[tuple[float, float]] = []
    for a, b in sorted((float(a) - expected_tolerance_ms, float(b) + expected_tolerance_ms) for a, b in expected_silence_ms):
        if exp and a <= exp[-1][1]:
            exp[-1] = (exp[-1][0], max(exp[-1][1], b))
        else:
            exp.append((a, b))
    for a, b in runs(silent):
        if a <= first or b > last:
            continue  # leading / trailing silence
        # the gap starts in ((a-1)*hop, a*hop] and ends in [(b-1)*hop+frame, b*hop+frame)
        s = a * hop
        e = b * hop + frame // 2
        s, e = _refine_edges(x, sr, s, e, thr, frame)
        dur_ms = (e - s) / sr * 1000.0
        if dur_ms < min_gap_ms:
            continue
        g = Gap(s / sr * 1000.0, e / sr * 1000.0)
        # excused when one intended silence covers it: a stall inserted at a sentence pause
        # shifts the copy's later pauses (mapped with the lag from before it) into the heard
        # silence, and their sum covered a 706 ms hole around a ~200 ms pause (fb-bots-s12 b103)
        inside = max((max(0.0, min(g.end_ms, eb) - max(g.start_ms, ea)) for ea, eb in exp), default=0.0)
        (excused if inside >= 0.8 * g.duration_ms else gaps).append(g)
    max_gap = max((g.duration_ms for g in gaps), default=0.0)
    return GapReport(gaps, excused, thr, speech_level, float(max_gap), first_ms, last_ms, silent, hop, frame)


def _envelope(x: np.ndarray, sr: int, hop_ms: float = 2.0) -> tuple[np.ndarray, int]:
    rms, hop, _ = frame_rms(x, sr, frame_ms=2 * hop_ms, hop_ms=hop_ms)
    return np.log10(rms + 1e-4), hop


def _local_lag(post: np.ndarray, ref: np.ndarray, end: int, sr: int, prior_lag: int,
               *, context_ms: float = 400.0, search_ms: float = 400.0) -> int | None:
    """Lag (post index - ref index) of the ``context_ms`` of ``post`` ending at ``end``.

    Matches log-RMS envelopes (2 ms hop), not waveforms, so a pitch shift (a clock-rate
    drift resamples the audio) does not break it; precision is one hop.

    After its last sample the reference is silence (the agent published nothing more), so a
    context past the copy's end is matched against the copy's end followed by silence: an
    interrupted reply's copy stops mid-word, and the heard audio after a stretched pause still
    holds that word's start (suite run rs15a, turn_barge_in_stop: the search then hit its edge,
    +404 ms, instead of the stretch, +102 ms). ``None`` when the context lies wholly after the copy.
    """
    c = int(context_ms * sr / 1000)
    w = int(search_ms * sr / 1000)
    a = max(0, end - c)
    seg = post[a:end]
    if seg.size < c // 4 or float(np.sqrt(np.mean(seg.astype(np.float64) ** 2))) < 1e-3:
        return None
    r0 = max(0, a - prior_lag - w)
    r1 = end - prior_lag + w
    if r1 - r0 <= seg.size or r0 >= ref.shape[0]:
        return None
    window = ref[r0:r1]
    if window.shape[0] < r1 - r0:
        window = np.concatenate([window, np.zeros(r1 - r0 - window.shape[0], dtype=window.dtype)])
    es, hop = _envelope(seg, sr)
    er, _ = _envelope(window, sr)
    m = es.shape[0]
    if er.shape[0] <= m or m < 8:
        return None
    es = es - es.mean()
    win = np.lib.stride_tricks.sliding_window_view(er, m)
    wz = win - win.mean(axis=1, keepdims=True)
    num = wz @ es
    den = np.sqrt((wz * wz).sum(axis=1) * float(es @ es)) + 1e-12
    k = int(np.argmax(num / den))
    return a - (r0 + k * hop)


def audible_dropouts(
    post: np.ndarray,
    sr: int,
    *,
    gaps: GapReport | None = None,
    reference: np.ndarray | None = None,
    reference_lag: int | None = None,
    expected_silence_ms: Sequence[Sequence[float]] = (),
    min_dropout_ms: float = 20.0,
    abrupt_ratio: float = 0.25,
    steady_ratio: float = 0.6,
) -> list[Gap]:
    """Gaps of ``post`` that a listener hears as dropouts (see module doc).

    Args:
        post: received audio, mono float32 ``(n,)``.
        sr: sample rate of ``post`` and ``reference`` (resample first).
        gaps: a :func:`detect_gaps` result for ``post`` (computed when ``None``).
        reference: the pre-RTC audio the agent published, same ``sr``; enables
            the reference rule.
        reference_lag: global lag in samples (post index - reference index) from
            :func:`autortc.metrics.fidelity.align`; computed when ``None``.
        min_dropout_ms: shorter gaps are not counted.
        abrupt_ratio: no-reference rule, level of the 10 ms at each edge / median speech level.
        steady_ratio: no-reference rule, peak of the 10 ms at an edge / peak of the
            20 ms beyond it, on both sides; a natural pause decays into silence (and
            rises out of it) so this is low.  On the synthetic corpus natural pauses
            reach at most 0.52 and injected cuts at least 0.68.

    Returns:
        The dropouts (ms in ``post``), in time order.
    """
    post = np.asarray(post, dtype=np.float32)
    rep = gaps or detect_gaps(post, sr, expected_silence_ms=expected_silence_ms)
    out: list[Gap] = []
    if reference is not None:
        from autortc.metrics.fidelity import align

        ref = np.asarray(reference, dtype=np.float32)
        lag = reference_lag if reference_lag is not None else align(ref, post, sr).lag_samples
        rrms, rhop, rframe = frame_rms(ref, sr)
        rthr = silence_threshold(rrms)
        for g in rep.gaps:
            if g.duration_ms < min_dropout_ms:
                continue
            s = int(g.start_ms * sr / 1000)
            e = int(g.end_ms * sr / 1000)
            local = _local_lag(post, ref, s, sr, lag)
            use = lag if local is None else local
            rs, re_ = s - use, e - use
            if re_ <= 0 or rs >= ref.shape[0]:
                continue
            i0 = max(0, rs // rhop)
            i1 = min(rrms.shape[0], max(i0 + 1, (re_ - rframe) // rhop + 1))
            if i1 <= i0:
                continue
            missing_ms = float(np.sum(rrms[i0:i1] >= rthr)) * rhop / sr * 1000.0
            if missing_ms >= min_dropout_ms:
                out.append(g)
        return out
    if rep.speech_level <= 0:
        return out
    ms = sr / 1000.0

    def lvl(a: float, b: float) -> float:
        seg = post[max(0, int(a * ms)):max(0, min(post.shape[0], int(b * ms)))].astype(np.float64)
        return float(np.sqrt(np.mean(seg ** 2))) if seg.size else 0.0

    def peak(a: float, b: float) -> float:
        seg = post[max(0, int(a * ms)):max(0, min(post.shape[0], int(b * ms)))]
        return float(np.max(np.abs(seg))) if seg.size else 0.0

    for g in rep.gaps:
        if g.duration_ms < min_dropout_ms:
            continue
        s, e = g.start_ms, g.end_ms
        # 10 ms next to each edge (1 ms kept clear of the refined edge) vs the 20 ms beyond;
        # peaks, not RMS, because a 10 ms window holds only 1-2 pitch periods
        lb, la = lvl(s - 10, s), lvl(e, e + 10)
        sb = peak(s - 10, s - 1) / max(peak(s - 30, s - 10), 1e-9)
        sa = peak(e + 1, e + 10) / max(peak(e + 10, e + 30), 1e-9)
        if min(lb, la) >= abrupt_ratio * rep.speech_level and min(sb, sa) >= steady_ratio:
            out.append(g)
    return out


def expected_silence_coverage(rep: GapReport, sr: int, expected_silence_ms: Sequence[Sequence[float]]) -> float | None:
    """Share (0..1) of the declared expected-silence time that is silent in the signal.

    ``None`` when nothing is declared.  A planned pause that the agent filled with
    audio (or that the capture lost) lowers it (seed P1 ``stutter_long_pause``).
    """
    spans = [(float(a), float(b)) for a, b in expected_silence_ms if b > a]
    if not spans:
        return None
    hop_ms = rep.hop / sr * 1000.0
    frame_ms = rep.frame / sr * 1000.0
    total = 0.0
    silent = 0.0
    for a, b in spans:
        total += b - a
        # frame centres inside the span
        idx = np.arange(rep.silence_mask.shape[0])
        centres = idx * hop_ms + frame_ms / 2
        sel = (centres >= a) & (centres < b)
        if sel.any():
            silent += float(np.mean(rep.silence_mask[sel])) * (b - a)
    return silent / total if total > 0 else None

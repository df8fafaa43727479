"""P1 fault fingerprints (seed D9/D10): spikes (boom), speed drift, 4-8 kHz loss, stutter.

* ``detect_spikes`` / ``peak_derivative_max``: a boom is a short (<= 80 ms) burst far
  above the speech around it, with a sharp onset (missing first-frame fade-in).
* ``drift_ratio``: duration of the audible span of post over that of pre (1.0 = none).
* ``hf_energy_ratio`` / ``hf_ratio_drop``: 4-8 kHz energy share and its relative drop.
* ``detect_repeats``: a chunk of 20-200 ms played again right after itself (stutter).
* ``detect_frame_repeats``: one 20 ms codec frame played again (a receiver concealing a lost packet
  by repeating the previous frame); ``all_repeats`` = both, as the ``repeats`` gate counts them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autortc.audio.energy import frame_rms, runs, silence_threshold

__all__ = ["Spike", "Repeat", "detect_spikes", "peak_derivative_max", "audible_span", "drift_ratio",
           "hf_energy_ratio", "hf_ratio_drop", "detect_repeats", "detect_frame_repeats", "all_repeats", "codec_crossings",
           "copy_repeats_heard", "copy_span_delivered", "FRAME_REPEAT_NCC"]

FRAME_REPEAT_MS = 20.0
FRAME_REPEAT_NCC = 0.99
FRAME_REPEAT_LEVEL_DB = 1.0
FRAME_REPEAT_LOUD_DBFS = -40.0
"""A repeated 20 ms frame: NCC of the 20 ms before ``t`` with the 20 ms from ``t`` >= 0.99, both at
>= -40 dBFS and within 1 dB of each other (a copy, not a vowel swelling or fading), at 16 kHz.
Measured by ``scripts/concealment_bench.py`` (docs/faultbench.md, "Concealment"): 24/24 repeated
frames found in piper replies through libopus, 0 hits on their clean round trips and 0 false
alarms on the 96 heard clean replies of fb-bots-1802 and fb-bots-1702 (real path: jitter buffer,
time stretch).  Periods of 20 ms are kept out of ``detect_repeats`` (a steady vowel correlates to
0.99 at 21-29 ms); the exact frame length plus the level match is what keeps vowels out here."""


@dataclass(frozen=True)
class Spike:
    start_ms: float
    end_ms: float
    peak: float
    ratio: float  # peak / local speech peak level


@dataclass(frozen=True)
class Repeat:
    start_ms: float  # start of the repeated copies
    end_ms: float
    period_ms: float
    ncc: float


def peak_derivative_max(x: np.ndarray) -> float:
    """Largest sample-to-sample step ``max |x[n+1] - x[n]|`` (full scale 1.0; depends on sr)."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.max(np.abs(np.diff(x)))) if x.size > 1 else 0.0


def detect_spikes(x: np.ndarray, sr: int, *, abs_min: float = 0.3, factor: float = 1.6,
                  max_ms: float = 80.0, context_ms: float = 500.0, pct: float = 90.0) -> list[Spike]:
    """Short loud bursts (booms, pops) in ``x``.

    A candidate is a run of samples with ``|x| >= abs_min`` (runs closer than 5 ms
    merged); it is a spike when it lasts at most ``max_ms`` and its peak is at least
    ``factor`` times the local speech peak level (``pct`` percentile of 10 ms frame
    peaks over the ``context_ms`` either side, the candidate itself excluded, silent
    frames ignored; the whole signal when fewer than 10 such frames).  Edges are where
    ``|x|`` crosses halfway between that level and the peak.  On the synthetic corpus
    (8 seeds) speech reaches a ratio of 1.47 at most and 20 ms booms 1.79 at least.
    """
    x = np.asarray(x, dtype=np.float64)
    ax = np.abs(x)
    n = x.shape[0]
    f = max(1, int(0.010 * sr))
    nf = n // f
    if nf == 0:
        return []
    peaks = ax[: nf * f].reshape(nf, f).max(axis=1)
    rms, _, _ = frame_rms(x, sr, frame_ms=10, hop_ms=10)
    thr = silence_threshold(rms)
    loud_frame = np.zeros(nf, bool)
    loud_frame[: min(nf, rms.shape[0])] = rms[:nf] >= thr
    merge = int(0.005 * sr)
    cand = np.flatnonzero(ax >= abs_min)
    if cand.size == 0:
        return []
    groups: list[tuple[int, int]] = []
    s = p = int(cand[0])
    for i in cand[1:]:
        i = int(i)
        if i - p > merge:
            groups.append((s, p + 1))
            s = i
        p = i
    groups.append((s, p + 1))
    out: list[Spike] = []
    ctx = int(context_ms / 10)
    for a, b in groups:
        fa, fb = a // f, (b - 1) // f + 1
        lo, hi = max(0, fa - ctx), min(nf, fb + ctx)
        sel = np.r_[np.arange(lo, max(lo, fa - 2)), np.arange(min(hi, fb + 2), hi)].astype(int)
        sel = sel[loud_frame[sel]] if sel.size else sel
        # too little speech around (a long gap, the file edge): fall back to the whole signal
        ref_frames = sel if sel.size >= 10 else np.flatnonzero(loud_frame)
        ref_frames = ref_frames[(ref_frames < fa - 2) | (ref_frames >= fb + 2)]
        local = float(np.percentile(peaks[ref_frames], pct)) if ref_frames.size >= 3 else 0.0
        pk = float(ax[a:b].max())
        ratio = pk / local if local > 0 else float("inf")
        if ratio < factor:
            continue
        edge = 0.5 * (local + pk) if local > 0 else 0.5 * pk
        idx = np.flatnonzero(ax[max(0, a - merge):min(n, b + merge)] >= edge) + max(0, a - merge)
        if idx.size == 0:
            continue
        s2, e2 = int(idx[0]), int(idx[-1]) + 1
        if (e2 - s2) / sr * 1000 > max_ms:
            continue
        out.append(Spike(s2 / sr * 1000, e2 / sr * 1000, pk, ratio))
    return out


def audible_span(x: np.ndarray, sr: int) -> tuple[int, int] | None:
    """``(first, last+1)`` sample of the audible part (frame RMS above the seed threshold), 1 ms precise."""
    from autortc.audio.energy import short_rms

    rms, hop, frame = frame_rms(x, sr)
    thr = silence_threshold(rms)
    loud = np.flatnonzero(rms >= thr)
    if loud.size == 0:
        return None
    a = int(loud[0]) * hop
    b = int(loud[-1]) * hop + frame
    sr2 = short_rms(np.asarray(x[max(0, a - frame):b + frame]), sr, win_ms=1.0)
    on = np.flatnonzero(sr2 >= thr)
    if on.size:
        a2 = max(0, a - frame) + int(on[0])
        b2 = max(0, a - frame) + int(on[-1]) + 1
        return a2, b2
    return a, b


def drift_ratio(pre: np.ndarray, post: np.ndarray, sr: int) -> float | None:
    """Duration of post's audible span over pre's (same ``sr``): 1.03 = played 3 % slow."""
    a = audible_span(pre, sr)
    b = audible_span(post, sr)
    if a is None or b is None or a[1] <= a[0]:
        return None
    return (b[1] - b[0]) / (a[1] - a[0])


def hf_energy_ratio(x: np.ndarray, sr: int, *, lo_hz: float = 4000.0, hi_hz: float = 8000.0) -> float | None:
    """Share (0..1) of the signal's energy in ``lo_hz``-``hi_hz`` (Welch PSD); ``None`` if ``sr/2 < hi_hz``."""
    from scipy.signal import welch

    if sr / 2 < hi_hz or np.asarray(x).size < 256:
        return None
    f, p = welch(np.asarray(x, dtype=np.float64), fs=sr, nperseg=1024 if np.asarray(x).size >= 1024 else 256)
    tot = float(np.sum(p[(f >= 50)]))
    if tot <= 0:
        return None
    return float(np.sum(p[(f >= lo_hz) & (f <= hi_hz)]) / tot)


def hf_ratio_drop(pre: np.ndarray, post: np.ndarray, sr_pre: int, sr_post: int | None = None) -> float | None:
    """Relative drop of the 4-8 kHz energy share from pre to post: ``1 - post_ratio / pre_ratio``.

    0 = unchanged, 1 = band gone, negative = post has more HF (noise, distortion).
    """
    a = hf_energy_ratio(pre, sr_pre)
    b = hf_energy_ratio(post, sr_post or sr_pre)
    if a is None or b is None or a <= 0:
        return None
    return 1.0 - b / a


def _both_loud(e1: np.ndarray, e2: np.ndarray, thr: float, L: int) -> np.ndarray:
    """Both ``L``-sample chunks (energies ``e1``, ``e2``) at RMS >= 2 x the silence threshold ``thr``."""
    return (e1 >= thr * thr * L * 4) & (e2 >= thr * thr * L * 4)


def _gate_energy(cx: np.ndarray, r: float, n: int) -> np.ndarray:
    """The cumulative energy ``cx`` of a signal at ``r`` times the rate of an ``n``-sample one, read at that
    one's sample boundaries and scaled to its samples: ``(n + 1,)``, usable as :func:`_ncc_by_period`'s gate."""
    at = np.minimum(np.round(np.arange(n + 1) * r).astype(np.int64), cx.shape[0] - 1)
    return cx[at] / r


def _ncc_by_period(y: np.ndarray, periods, thr: float, keep: float, gate: np.ndarray | None = None):
    """Yield ``(L, ncc)`` for periods whose NCC of ``y[t:t+L]`` vs ``y[t+L:t+2L]`` reaches ``keep`` somewhere.

    ``gate``: ``(len(y) + 1,)`` cumulative energy the loudness test (:func:`_both_loud`) reads instead of
    ``y``'s own (:func:`_gate_energy` of the full-band signal ``y`` was resampled from)."""
    n = y.shape[0]
    c2 = np.concatenate([[0.0], np.cumsum(y * y)])
    g = c2 if gate is None else gate
    for L in periods:
        if 2 * L >= n:
            break
        cp = np.concatenate([[0.0], np.cumsum(y[:-L] * y[L:])])
        m = n - 2 * L + 1
        num = cp[L:L + m] - cp[:m]
        e1 = c2[L:L + m] - c2[:m]
        e2 = c2[2 * L:2 * L + m] - c2[L:L + m]
        loud = _both_loud(g[L:L + m] - g[:m], g[2 * L:2 * L + m] - g[L:L + m], thr, L)
        ncc = np.where(loud, num / np.sqrt(np.maximum(e1 * e2, 1e-20)), 0.0)
        if ncc.max() >= keep:
            yield L, ncc


REPEAT_NCC = 0.98
"""NCC at which a chunk played right after itself is a repeat (``detect_repeats``, ``codec_crossings``)."""


def detect_repeats(x: np.ndarray, sr: int, *, min_period_ms: float = 35.0, max_period_ms: float = 200.0,
                   min_ncc: float = REPEAT_NCC, analysis_sr: int = 8000, coarse_ncc: float = 0.8,
                   full_band_gate: bool = False) -> list[Repeat]:
    """Chunks replayed right after themselves: ``x[t:t+L] ~ x[t+L:t+2L]`` with NCC >= ``min_ncc``.

    Searched for every period ``L`` (one sample at ``analysis_sr``) in
    ``[min_period_ms, max_period_ms]``; only windows louder than the seed silence
    threshold count.  Voiced speech is periodic at its pitch period, and a steady vowel
    correlates to 0.99 over 2-3 periods (measured on the synthetic corpus: up to 0.997
    at 21-29 ms, at most 0.95 from 35 ms on), so periods shorter than 35 ms are not
    searched and the NCC must reach 0.98.  A coarse pass at ``analysis_sr / 2`` (NCC >=
    ``coarse_ncc``) picks the periods checked sample by sample.  The reported span is
    the repeated copies.

    ``full_band_gate``: the loudness test reads ``x`` at ``sr``, not its band under ``analysis_sr / 2``: an
    unvoiced stretch (a fricative) can be -27...-35 dBFS in full band and under the gate below 4 kHz, so a
    chunk replayed there was not searched (browser faultbench fb-browser-s16 b009: the agent's 40 ms repeat
    at 1020 ms, NCC 0.998 at 8 kHz, band level under -40 dBFS). Used for the agent's copy
    (:func:`copy_repeats_heard`), where a replayed chunk is the agent's and the heard side confirms it.
    """
    from autortc.audio import resample

    y = resample(np.asarray(x, np.float32), sr, analysis_sr).astype(np.float64) if sr != analysis_sr \
        else np.asarray(x, np.float64)
    lo = int(min_period_ms * analysis_sr / 1000)
    hi = int(max_period_ms * analysis_sr / 1000)
    # coarse pass at half the rate keeps only the periods worth checking sample by sample
    half = analysis_sr // 2
    yc = resample(y.astype(np.float32), analysis_sr, half).astype(np.float64)
    gate = gate_half = None
    if full_band_gate and sr != analysis_sr:
        xf = np.asarray(x, np.float64)
        rms, _, _ = frame_rms(xf, sr)
        cx = np.concatenate([[0.0], np.cumsum(xf * xf)])
        gate, gate_half = _gate_energy(cx, sr / analysis_sr, y.shape[0]), _gate_energy(cx, sr / half, yc.shape[0])
    else:
        rms, _, _ = frame_rms(y, analysis_sr)
    thr = silence_threshold(rms)
    coarse = [L for L, _ in _ncc_by_period(yc, range(lo // 2, hi // 2 + 1), thr, coarse_ncc, gate_half)]
    cand = sorted({2 * L + d for L in coarse for d in (-1, 0, 1)} & set(range(lo, hi + 1)))
    hits: list[tuple[int, int, int, float]] = []
    for L, ncc in _ncc_by_period(y, cand, thr, min_ncc, gate):
        for a, b in runs(ncc >= min_ncc):
            hits.append((a, b, L, float(ncc[a:b].max())))
    if not hits:
        return []
    # keep, per overlapping cluster, the period with the highest NCC
    hits.sort(key=lambda h: -h[3])
    chosen: list[tuple[int, int, int, float]] = []
    for h in hits:
        s, e = h[0] + h[2], h[1] - 1 + 2 * h[2]
        if all(e <= c[0] + c[2] or s >= c[1] - 1 + 2 * c[2] for c in chosen):
            chosen.append(h)
    chosen.sort()
    return [Repeat((a + L) / analysis_sr * 1000, (b - 1 + 2 * L) / analysis_sr * 1000, L / analysis_sr * 1000, v)
            for a, b, L, v in chosen]


def _lag_ncc(x: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every ``t``: NCC of ``x[t:t+lag]`` with ``x[t+lag:t+2*lag]`` and both windows' energies."""
    n = x.shape[0] - 2 * lag + 1
    if n <= 0:
        z = np.zeros(0)
        return z, z, z
    c2 = np.concatenate([[0.0], np.cumsum(x * x)])
    cp = np.concatenate([[0.0], np.cumsum(x[:-lag] * x[lag:])])
    num = cp[lag:lag + n] - cp[:n]
    e1 = c2[lag:lag + n] - c2[:n]
    e2 = c2[2 * lag:2 * lag + n] - c2[lag:lag + n]
    return num / np.sqrt(np.maximum(e1 * e2, 1e-20)), e1, e2


def detect_frame_repeats(x: np.ndarray, sr: int, *, frame_ms: float = FRAME_REPEAT_MS,
                         min_ncc: float = FRAME_REPEAT_NCC, level_db: float = FRAME_REPEAT_LEVEL_DB,
                         loud_dbfs: float = FRAME_REPEAT_LOUD_DBFS, analysis_sr: int = 16000) -> list[Repeat]:
    """``frame_ms`` of audio played again right after itself (constants above; the span is the copy)."""
    from autortc.audio import resample

    y = resample(np.asarray(x, np.float32), sr, analysis_sr).astype(np.float64) if sr != analysis_sr \
        else np.asarray(x, np.float64)
    w = int(round(frame_ms * analysis_sr / 1000))
    ncc, e1, e2 = _lag_ncc(y, w)
    if not ncc.size:
        return []
    loud = 10.0 ** (loud_dbfs / 10.0) * w
    ratio_db = 10.0 * np.log10(np.maximum(e2, 1e-20) / np.maximum(e1, 1e-20))
    ok = (ncc >= min_ncc) & (e1 >= loud) & (e2 >= loud) & (np.abs(ratio_db) <= level_db)
    out = []
    for a, b in runs(ok):
        t = a + int(np.argmax(ncc[a:b]))
        out.append(Repeat((t + w) / analysis_sr * 1000, (t + 2 * w) / analysis_sr * 1000, frame_ms, float(ncc[t])))
    return out


REPEAT_SOURCE_MARGIN = 0.015
"""How far under the heard NCC the agent's copy may be at the same place and period for a heard chunk
repeat to be the content, not a copy (``codec_crossings``). Source: run rs1 (2026-12-03, clean clone,
``endpoint_pause_in_turn``): a steady vowel of piper's reply at 41.75 ms correlated 0.974 in the agent's
copy and 0.983 in the heard audio after Opus (+0.009), and the repeats gate WARNed on a clean reply."""


def _ncc_at(y: np.ndarray, L: int, t0: int, t1: int, *, thr: float | None = None) -> float:
    """Largest NCC of ``y[t:t+L]`` with ``y[t+L:t+2L]`` for ``t0 <= t < t1`` (0 where out of range).

    ``thr``: only where both chunks are sound (``_both_loud``), as ``detect_repeats`` counts."""
    t0, t1 = max(0, t0), min(y.shape[0] - 2 * L + 1, t1)
    if L <= 0 or t1 <= t0:
        return 0.0
    ncc, e1, e2 = _lag_ncc(y[t0:t1 - 1 + 2 * L], L)
    if thr is not None:
        ncc = ncc[_both_loud(e1, e2, thr, L)]
    return float(ncc.max()) if ncc.size else 0.0


def codec_crossings(heard: list[Repeat], ref: np.ndarray, sr: int, shift_ms: float, *,
                    min_ncc: float = REPEAT_NCC, margin: float = REPEAT_SOURCE_MARGIN, search_ms: float = 5.0,
                    analysis_sr: int = 8000) -> list[Repeat]:
    """The heard chunk repeats (``detect_repeats``) that the agent's copy explains as content.

    ``ref``: the agent's copy, ``(n,)`` float at ``sr`` Hz, placed so that heard time ``t`` ms is
    ``ref`` time ``t - shift_ms``. A heard repeat is a codec crossing when, at the same place (±
    ``search_ms``) and period, the copy's NCC is under ``min_ncc`` (so the copy has no repeat there)
    but within ``margin`` of the heard NCC: a steady vowel that the codec smoothed over the threshold,
    not audio played twice. A chunk the path really replayed correlates ~1.0 heard while the copy's
    content there does not; a repeat in the copy itself (NCC >= ``min_ncc``) is the agent's and stays
    counted (attributed, not excused). Frame repeats (``detect_frame_repeats``) are not judged here.
    """
    from autortc.audio import resample

    y = resample(np.asarray(ref, np.float32), sr, analysis_sr).astype(np.float64) if sr != analysis_sr \
        else np.asarray(ref, np.float64)
    k = analysis_sr / 1000.0
    out = []
    for r in heard:
        L = int(round(r.period_ms * k))
        first = (r.start_ms - r.period_ms - shift_ms) * k  # the original chunk's first sample in ref
        last = (r.end_ms - 2 * r.period_ms - shift_ms) * k
        v = _ncc_at(y, L, int(first - search_ms * k), int(last + search_ms * k) + 1)
        if r.ncc - margin <= v < min_ncc:
            out.append(r)
    return out


HEARD_COPY_REPEAT_NCC = 0.95
"""NCC the heard audio must keep, at the place and period of a chunk repeat in the agent's copy, for the user
to have heard that repeat (``copy_repeats_heard``). The codec lowers a replayed chunk's NCC: planted 40 ms
repeats in the agent's audio (faultbench run fb-bots-s8, 2026-12-03) had copy / heard NCC 0.994 / 0.974 (missed
by ``REPEAT_NCC`` alone), 1.000 / 0.998, 0.999 / 0.994, 0.999 / 0.996. 0.95 is the highest NCC a steady vowel
reached at periods of 35 ms and more on the synthetic corpus (``detect_repeats``): above it the heard chunk is
the copy's repeat delivered, not other content that happens to be periodic."""


COPY_SPAN_FRAME_DROP_DB = 40.0
COPY_SPAN_BAND_CORR = 0.9
"""When the codec did not keep a repeat's waveform (heard NCC < ``HEARD_COPY_REPEAT_NCC``), the agent's repeat
still reached the user when the heard audio over its span follows the copy (``copy_span_delivered``): no 10 ms
frame more than 40 dB under the copy's, and the span's band spectrum (16 log-spaced bands, 150-7000 Hz)
correlating >= 0.9 with the copy's. Source: 223 40 ms repeats planted every 150 ms in the 12 gold sentences
(``cases/tts/gold``) through libopus 32 kbit/s (2026-12-05): 11 were under the heard NCC (0.00-0.94, all in quiet
or unvoiced stretches at -20...-40 dBFS, as the two misses of faultbench fb-bots-s12 and fb-s12-verify); over all 223
the heard spans' worst frame was at least -27 dB and their band correlation at least 0.944. The same spans with the
repeated chunk lost (zeroed) had a worst frame of -59 dB or lower."""


def copy_span_delivered(x: np.ndarray, ref: np.ndarray, sr: int, start_ms: float, end_ms: float,
                        shift_ms: float, *, search_ms: float = 20.0, frame_ms: float = 10.0,
                        max_drop_db: float = COPY_SPAN_FRAME_DROP_DB, min_corr: float = COPY_SPAN_BAND_CORR) -> bool:
    """Did the path deliver ``ref[start_ms:end_ms]`` to the user?

    ``x``: the heard reply, ``ref``: the agent's copy, ``(n,)`` float at ``sr`` Hz; heard time ``t`` = ref time
    ``t - shift_ms``, searched within ``search_ms`` (1 ms steps) for a jitter buffer's local shift. True when, at
    some shift, no ``frame_ms`` frame of the heard span is more than ``max_drop_db`` under the copy's same frame
    and the span's band spectra correlate >= ``min_corr`` (constants above): the same sound arrived, its samples
    changed by the codec. A span the path lost (silence or a hole) fails the level test.
    """
    x = np.asarray(x, np.float64)
    ref = np.asarray(ref, np.float64)
    hop = max(1, int(round(frame_ms * sr / 1000)))
    a = int(round(start_ms * sr / 1000))
    n = (int(round(end_ms * sr / 1000)) - a) // hop
    if a < 0 or n <= 0 or a + n * hop > ref.shape[0]:
        return False

    def frames_db(y: np.ndarray, s: int) -> np.ndarray:
        level, _, _ = frame_rms(y[s:s + n * hop], sr, frame_ms=frame_ms, hop_ms=frame_ms)
        return 10.0 * np.log10(level ** 2 + 1e-12)

    nfft = 1 << int(np.ceil(np.log2(n * hop)))
    f = np.fft.rfftfreq(nfft, 1.0 / sr)
    edges = np.geomspace(150.0, min(7000.0, sr / 2.0), 17)
    idx = np.searchsorted(edges, f, side="right") - 1
    inband = (idx >= 0) & (idx < 16)
    win = np.hanning(n * hop)

    def bands_db(y: np.ndarray, s: int) -> np.ndarray:
        p = np.abs(np.fft.rfft(y[s:s + n * hop] * win, nfft)) ** 2
        return 10.0 * np.log10(np.bincount(idx[inband], p[inband], minlength=16) + 1e-12)

    ref_db, ref_bands = frames_db(ref, a), bands_db(ref, a)
    base = a + int(round(shift_ms * sr / 1000))
    step = max(1, sr // 1000)
    for s in range(base - int(search_ms * sr / 1000), base + int(search_ms * sr / 1000) + 1, step):
        if s < 0 or s + n * hop > x.shape[0]:
            continue
        if (frames_db(x, s) - ref_db).min() < -max_drop_db:
            continue
        if np.corrcoef(bands_db(x, s), ref_bands)[0, 1] >= min_corr:
            return True
    return False


def copy_repeats_heard(x: np.ndarray, ref: np.ndarray, sr: int, shift_ms: float, *,
                       min_ncc: float = HEARD_COPY_REPEAT_NCC, search_ms: float = 20.0,
                       analysis_sr: int = 8000) -> list[Repeat]:
    """The agent's own chunk repeats that reached the user.

    ``x``: the heard reply, ``ref``: the agent's copy, both ``(n,)`` float at ``sr`` Hz; heard time ``t`` ms is
    ``ref`` time ``t - shift_ms``. Each repeat of ``detect_repeats(ref)`` (NCC >= ``REPEAT_NCC``) whose
    period correlates >= ``min_ncc`` in ``x`` within ``search_ms`` of the same place (a jitter buffer moves time
    locally), or whose span (the chunk and its replay) the path delivered (``copy_span_delivered``: in quiet or
    unvoiced stretches the codec keeps the sound, not the waveform), is returned in heard time, its ``ncc`` the
    heard one. A repeat the agent made counts where the user hears it, even when the codec pulled it under the
    heard-only threshold; one the path cut or lost does not.
    """
    from autortc.audio import resample

    own = detect_repeats(ref, sr, full_band_gate=True)
    if not own:
        return []
    y = resample(np.asarray(x, np.float32), sr, analysis_sr).astype(np.float64) if sr != analysis_sr \
        else np.asarray(x, np.float64)
    rms, _, _ = frame_rms(y, analysis_sr)
    thr = silence_threshold(rms)  # as detect_repeats: both chunks must be sound, not the path's silence
    k = analysis_sr / 1000.0
    out = []
    for q in own:
        L = int(round(q.period_ms * k))
        first = (q.start_ms - q.period_ms + shift_ms) * k  # the original chunk's first sample in x
        last = (q.end_ms - 2 * q.period_ms + shift_ms) * k
        v = _ncc_at(y, L, int(first - search_ms * k), int(last + search_ms * k) + 1, thr=thr)
        if v >= min_ncc or copy_span_delivered(x, ref, sr, q.start_ms - q.period_ms, q.end_ms, shift_ms,
                                               search_ms=search_ms):
            out.append(Repeat(q.start_ms + shift_ms, q.end_ms + shift_ms, q.period_ms, v))
    return out


def all_repeats(x: np.ndarray, sr: int, *, ref: np.ndarray | None = None, shift_ms: float = 0.0) -> list[Repeat]:
    """``detect_repeats`` plus the frame repeats that do not overlap one of its repeats, in time order.

    With ``ref`` (the agent's copy at ``sr``, heard time ``t`` = ref time ``t - shift_ms``), the chunk
    repeats it explains as content (``codec_crossings``) are left out, and the copy's own repeats that
    the user heard (``copy_repeats_heard``) are added where no heard repeat overlaps them.
    """
    reps = detect_repeats(x, sr)
    more = [f for f in detect_frame_repeats(x, sr)
            if all(f.end_ms <= r.start_ms or f.start_ms >= r.end_ms for r in reps)]
    if reps and ref is not None:
        content = codec_crossings(reps, ref, sr, shift_ms)
        reps = [r for r in reps if r not in content]
    if ref is not None:
        found = reps + more
        more += [c for c in copy_repeats_heard(x, ref, sr, shift_ms)
                 if all(c.end_ms <= r.start_ms or c.start_ms >= r.end_ms for r in found)]
    return sorted(reps + more, key=lambda r: r.start_ms)

"""What the user hears that the agent did not mean: short dropouts, clicks, speed/pitch change,
band loss, missing audio, and a reply sounding before the user finished (talk-over).

Pure functions over mono float numpy arrays (full scale 1.0, shape ``(n,)``), same ``sr``
for a pair unless said.  Thresholds are named constants with their source:

==========================  =========  =====================================================
name                        value      why
==========================  =========  =====================================================
ENV_WIN_MS / ENV_HOP_MS     5 / 1      envelope of the frame-dropout rule: a 20 ms Opus frame
                                       spans 16 windows, so one lost frame is seen (issue 18)
DROP_DB                     12 dB      a dropout is this far below the agent's own copy at the
                                       same place.  Clean piper through Opus stays within
                                       8.4 dB of its copy (12 gold sentences, worst 5 ms
                                       window); a -45 dBFS noise fill sits >= 14 dB under.
VOICED_DBFS                 -50 dBFS   the reference must be sound around the dropout
DROP_TOLERANCE_MS           10 ms      the reference must stay voiced this far either side
                                       (absorbs jitter-buffer time stretch at word edges)
RESUME_MS                   300 ms     the received audio must sound again within this after
                                       a dropout (else: the reply ended -- barge-in, cut)
MIN_DROPOUT_MS / BRIDGE_MS  8 / 5 ms   a run of dropped windows this long, holes up to 5 ms
                                       bridged (Opus smears a lost frame: 8/8 zeroed 20 ms
                                       frames and 3/3 -45 dBFS fills found, 0 on 12 clean)
CLICK_WIN_MS                1 ms       a click is one window far above the 15 ms around it
CLICK_RATIO / CLICK_ABS     6 / 0.2    peak over the neighbourhood's peak / absolute peak:
                                       0 hits on the 12 piper gold sentences, raw and through
                                       Opus; a full-scale first sample through Opus: 7-40
CLICK_HF_HZ                 6 kHz      the second click rule looks above this (4th-order
                                       Butterworth high-pass, zero phase): an impulse is
                                       broadband, speech up there is noise-like (fricatives)
CLICK_HF_CREST / _ABS       30 / 0.1   high-band peak over the high band's RMS in the 50 ms
                                       either side (2 ms next to it left out) / absolute peak.
                                       Catches the click the first rule misses because speech
                                       starts right after it (a full-scale first sample through
                                       Opus, heard peak ~0.6 next to louder speech). Real bench
                                       fb-bots-s12 (heard replies over the SFU): 4 heard clicks
                                       crest 122-225 at 0.28; 50 clean turns max crest 26 (at a
                                       peak of 0.025), none >= 14 above a peak of 0.05
BOOM_DC                     0.3        |mean| of a 5 ms window (a DC step / thump): piper
                                       speech reaches 0.10, a 0.95 boom 0.90 (before a codec;
                                       Opus's high-pass leaves 0.15-0.19 of it: see BOOM_LF_RMS)
BOOM_LF_HZ / BOOM_LF_RMS    40 Hz /    after Opus a boom is a burst below 40 Hz: RMS of the
                            0.0125     4th-order Butterworth low-pass (zero phase) over 20 ms.
                                       12 piper gold sentences through libopus: max 0.0026;
                                       the bench's real clean replies over the SFU: max 0.0044;
                                       a 20 ms boom of 0.5 through libopus: min 0.025.  Voice
                                       F0 stays above 60 Hz, so speech does not reach it
SPEED_FMIN / FMAX           80..4000   band of the long-term spectrum compared for speed
BAND_DROP_DB                10 dB      the heard band ends where the received long-term spectrum
                                       stays this far under the copy's (1 kHz median, 300-2500 Hz
                                       level-matched): clean piper through libopus stays within
                                       3-7 dB to 8 kHz, a 3.4 kHz low-pass is 15-17 dB down at
                                       4 kHz.  Dropouts are looked for inside that band: a lost
                                       band is HF loss (its own verdict), not holes in time
==========================  =========  =====================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autortc.audio.energy import runs

__all__ = ["Dropout", "Click", "envelope_db", "frame_dropouts", "detect_clicks", "speed_ratio", "missing_audio_ms",
           "premature_ms", "common_band_hz", "band_limit", "detect_booms", "detect_spikes", "DROP_DB", "VOICED_DBFS", "MIN_DROPOUT_MS", "CLICK_RATIO", "CLICK_ABS"]

ENV_WIN_MS = 5.0
ENV_HOP_MS = 1.0
DROP_DB = 12.0
VOICED_DBFS = -50.0
DROP_TOLERANCE_MS = 10.0
MIN_DROPOUT_MS = 8.0
BRIDGE_MS = 5.0
RESUME_MS = 300.0
LOCAL_CONTEXT_MS = 400.0  # continuity._local_lag's context: the audio after a candidate the forward look uses
CLICK_WIN_MS = 1.0
CLICK_CONTEXT_MS = 15.0
CLICK_GUARD_MS = 2.0
CLICK_RATIO = 6.0
CLICK_ABS = 0.2
CLICK_HF_HZ = 6000.0
CLICK_HF_CREST = 30.0
CLICK_HF_ABS = 0.1
CLICK_HF_CONTEXT_MS = 50.0
BOOM_WIN_MS = 5.0
BOOM_DC = 0.3
BOOM_LF_HZ = 40.0
BOOM_LF_RMS = 0.0125
BOOM_LF_WIN_MS = 20.0
SPEED_FMIN = 80.0
SPEED_FMAX = 4000.0
BAND_DROP_DB = 10.0


@dataclass(frozen=True)
class Dropout:
    start_ms: float  # in post
    end_ms: float
    depth_db: float  # how far below the agent's copy (median over the run)


@dataclass(frozen=True)
class Click:
    start_ms: float
    end_ms: float
    peak: float
    ratio: float


def envelope_db(x: np.ndarray, sr: int, *, win_ms: float = ENV_WIN_MS, hop_ms: float = ENV_HOP_MS) -> np.ndarray:
    """RMS in dBFS of ``win_ms`` windows every ``hop_ms`` (window ``i`` starts at ``i * hop``); floor -120."""
    x = np.asarray(x, dtype=np.float64)
    w = max(1, int(round(win_ms * sr / 1000)))
    h = max(1, int(round(hop_ms * sr / 1000)))
    if x.shape[0] < w:
        return np.zeros(0)
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    starts = np.arange(0, x.shape[0] - w + 1, h)
    e = (c[starts + w] - c[starts]) / w
    return 10.0 * np.log10(np.maximum(e, 1e-12))


def _min_filter(a: np.ndarray, k: int) -> np.ndarray:
    from scipy.ndimage import minimum_filter1d

    return minimum_filter1d(a, size=2 * k + 1, mode="nearest") if a.size else a


def _close(mask: np.ndarray, bridge_ms: float, *, hop_ms: float = ENV_HOP_MS) -> np.ndarray:
    """Bridge holes of at most ``bridge_ms`` between runs of ``mask`` (one element per ``hop_ms``;
    by default envelope hops, where Opus smears a lost frame's edges and leaves a few windows
    inside it above the limit)."""
    out = mask.copy()
    k = int(round(bridge_ms / hop_ms))
    r = runs(mask)
    for (a, b), (c, _) in zip(r, r[1:]):
        if c - b <= k:
            out[b:c] = True
    return out


def frame_dropouts(post: np.ndarray, ref: np.ndarray, sr: int, *, lag: int = 0,
                   local_lag=None, drop_db: float = DROP_DB, min_ms: float = MIN_DROPOUT_MS,
                   voiced_dbfs: float = VOICED_DBFS, tolerance_ms: float = DROP_TOLERANCE_MS) -> list[Dropout]:
    """Stretches of ``post`` far below the agent's own copy ``ref`` where ``ref`` is speech.

    ``lag``: post index - ref index (:func:`autortc.metrics.fidelity.align`).  ``local_lag``:
    optional ``(post, ref, end_sample, sr, prior_lag) -> lag | None`` refining the lag near a
    candidate (jitter buffers stretch time, so the global lag drifts over a long reply).

    A window of ``post`` is *dropped* when its level is at least ``drop_db`` below the
    *quietest* reference window within ``+-tolerance_ms`` (gain-corrected by the median
    level difference over speech) and that quietest reference window is above
    ``voiced_dbfs``: a natural pause shifted by the path is never inside voiced reference.
    Runs of dropped windows of ``min_ms`` or more are dropouts; a zeroed 20 ms frame and
    a 60 ms noise fill at -45 dBFS both are (tests/unit/test_metrics_defects.py).  A run is
    inside speech only: ``min_ms`` of ``post`` level with the copy before it (the reply's onset,
    which a receiver fades in after silence, is not a dropout) and sound again within
    ``RESUME_MS`` after it (a reply that stops for good is missing audio).

    Returns dropouts in post time (ms), in order.
    """
    post = np.asarray(post, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    hop = max(1, int(round(ENV_HOP_MS * sr / 1000)))
    ep = envelope_db(post, sr)
    er = envelope_db(ref, sr)
    if ep.size == 0 or er.size == 0:
        return []
    tol = max(1, int(round(tolerance_ms / ENV_HOP_MS)))

    def ref_at(shift: int) -> np.ndarray:
        """Reference envelope resampled onto post windows for post = ref + shift (samples)."""
        idx = np.arange(ep.shape[0]) - int(round(shift / hop))
        ok = (idx >= 0) & (idx < er.shape[0])
        out = np.full(ep.shape[0], -120.0)
        out[ok] = er[idx[ok]]
        return out

    r = ref_at(lag)
    rmin = _min_filter(r, tol)
    speech = (rmin > voiced_dbfs) & (ep > voiced_dbfs)
    gain = float(np.median(ep[speech] - r[speech])) if speech.sum() >= 20 else 0.0
    cand = _close((rmin > voiced_dbfs) & (ep < rmin + gain - drop_db), BRIDGE_MS)
    need = max(1, int(round(min_ms / ENV_HOP_MS)))
    out: list[Dropout] = []
    for a, b in runs(cand):
        if b - a < need // 2:
            continue
        aa, bb = a, b
        rm, ru = rmin, r
        if local_lag is not None:
            # the lag of the audio just before the candidate, and of the audio just after it: a
            # jitter buffer shifts time locally, and a candidate that either local lag explains is
            # no dropout.  The forward look matters at the reply's start, which has no audio before
            # it (a clean real-path reply whose first 300 ms came 15 ms late: "dropped" at 2.5 ms).
            # A real dropout is a hole where the copy is speech under any nearby lag.
            pf, rf = post.astype(np.float32), ref.astype(np.float32)
            fwd = min(pf.shape[0], b * hop + int(LOCAL_CONTEXT_MS * sr / 1000))
            lls = [local_lag(pf, rf, a * hop, sr, lag), local_lag(pf, rf, fwd, sr, lag)]
            kept = None
            for ll in lls:
                if ll is None or ll == lag:
                    continue
                u2 = ref_at(ll)
                r2 = _min_filter(u2, tol)
                c2 = _close((r2 > voiced_dbfs) & (ep < r2 + gain - drop_db), BRIDGE_MS)
                sub = [(x, y) for x, y in runs(c2[max(0, a - tol):b + tol]) if y - x >= need]
                if not sub:
                    kept = False
                    break
                if kept is None:
                    x, y = max(sub, key=lambda s: s[1] - s[0])
                    aa, bb, rm, ru, kept = max(0, a - tol) + x, max(0, a - tol) + y, r2, u2, True
            if kept is False:
                continue
        if bb - aa < need:
            continue
        # ... and the user heard the reply before it: at least ``min_ms`` of received speech
        # level with the copy (window by window: the +-tolerance minimum would leave the first
        # 10 ms of the reply out).  A shortfall before that is the reply's start arriving softly
        # or late (the receiver fades the first packets in after silence: on the browser bench
        # fb-browser-1703 every delay turn's heard onset was 26-32 dB under the copy for 10 ms and
        # within 5 dB only after ~28 ms), judged by latency and missing audio, not a hole in speech
        heard = (ru[:aa] > voiced_dbfs) & (ep[:aa] > voiced_dbfs) & (ep[:aa] >= ru[:aa] + gain - drop_db)
        if int(heard.sum()) < need:
            continue
        # a dropout is inside speech: the received audio sounds again after it (a reply that
        # stops for good -- a barge-in, a tail cut -- is missing audio, not a dropout)
        after = ep[bb:bb + int(RESUME_MS / ENV_HOP_MS)]
        if not after.size or not (after > rm[aa:bb].min() + gain - drop_db / 2).any():
            continue
        win = ENV_WIN_MS / ENV_HOP_MS
        depth = float(np.median(rm[aa:bb] + gain - ep[aa:bb]))
        # window i covers [i, i + win) hops; the dropped samples span the window starts
        # shifted by half a window
        s_ms = (aa + win / 2) * ENV_HOP_MS
        e_ms = (bb - 1 + win / 2) * ENV_HOP_MS
        out.append(Dropout(round(s_ms, 2), round(e_ms, 2), round(depth, 1)))
    return out


def detect_clicks(x: np.ndarray, sr: int, *, ratio: float = CLICK_RATIO, abs_min: float = CLICK_ABS,
                  win_ms: float = CLICK_WIN_MS, context_ms: float = CLICK_CONTEXT_MS,
                  guard_ms: float = CLICK_GUARD_MS) -> list[Click]:
    """Clicks/booms: a ``win_ms`` window whose peak is at least ``abs_min`` and ``ratio`` times
    the peak of the ``context_ms`` on *both* sides (``guard_ms`` next to it left out), taken
    as the larger side.  Speech never qualifies: a plosive burst is followed by its
    aspiration and vowel (so the right side is as loud), a vowel is periodic; a full-scale
    sample in silence or a DC step is (through Opus too).  Adjacent windows merge.
    """
    x = np.asarray(x, dtype=np.float64)
    ax = np.abs(x)
    w = max(1, int(round(win_ms * sr / 1000)))
    nw = ax.shape[0] // w
    if nw < 3:
        return []
    pk = ax[: nw * w].reshape(nw, w).max(axis=1)
    c = max(1, int(round(context_ms / win_ms)))
    g = max(0, int(round(guard_ms / win_ms)))
    pad = np.concatenate([np.zeros(g + c), pk, np.zeros(g + c)])
    win = np.lib.stride_tricks.sliding_window_view(pad, c)  # win[j] = pad[j:j+c]
    left = win[np.arange(nw)].max(axis=1)  # pk[i-g-c : i-g]
    right = win[np.arange(nw) + 2 * g + c + 1].max(axis=1)  # pk[i+g+1 : i+g+1+c]
    ctx = np.maximum(left, right)
    hit = (pk >= abs_min) & (pk >= ratio * np.maximum(ctx, 1e-9))
    out: list[Click] = []
    for a, b in runs(hit):
        p = float(pk[a:b].max())
        out.append(Click(a * w / sr * 1000, b * w / sr * 1000, p, p / max(float(ctx[a:b].max()), 1e-9)))
    return out


def detect_hf_clicks(x: np.ndarray, sr: int, *, hf_hz: float = CLICK_HF_HZ, crest: float = CLICK_HF_CREST,
                     abs_min: float = CLICK_HF_ABS, context_ms: float = CLICK_HF_CONTEXT_MS,
                     guard_ms: float = CLICK_GUARD_MS) -> list[Click]:
    """Clicks next to speech: a sample of the high band (above ``hf_hz``) at least ``abs_min``
    and ``crest`` times that band's RMS over ``context_ms`` either side (``guard_ms`` next to it
    left out).  An impulse keeps its energy up there in one or two ms; speech up there is
    fricative noise spread over tens of ms (crest 4-6).  :func:`detect_clicks` compares peaks in
    the full band, so a click followed at once by louder speech (a pop on a reply's first
    sample) passes it; this rule does not depend on the speech around.  ``x``: (n,) float at
    ``sr`` Hz; ``[]`` when ``sr`` has no band above ``hf_hz`` or ``x`` is shorter than 50 ms.
    Each click is reported as a ``2 * guard_ms`` span around its peak; ``ratio`` holds the crest.
    """
    from scipy.signal import butter, sosfiltfilt

    x = np.asarray(x, dtype=np.float64)
    if sr <= 2.2 * hf_hz or x.shape[0] < int(0.05 * sr):
        return []
    h = sosfiltfilt(butter(4, hf_hz, "highpass", fs=sr, output="sos"), x)
    a = np.abs(h)
    c, g = int(context_ms * sr / 1000), max(1, int(guard_ms * sr / 1000))
    out: list[Click] = []
    for s, e in runs(_close(a >= abs_min, guard_ms, hop_ms=1000.0 / sr)):
        k = s + int(np.argmax(a[s:e]))  # one candidate per burst: its strongest sample
        ref = np.concatenate([h[max(0, k - g - c):max(0, k - g)], h[k + g + 1:k + g + 1 + c]])
        rms = float(np.sqrt(np.mean(ref * ref))) if ref.size else 0.0
        r = float(a[k]) / max(rms, 1e-9)
        if r >= crest:
            out.append(Click((k - g) / sr * 1000, (k + g) / sr * 1000, float(a[k]), r))
    return out


def detect_booms(x: np.ndarray, sr: int, *, dc_min: float = BOOM_DC, win_ms: float = BOOM_WIN_MS,
                 lf_hz: float = BOOM_LF_HZ, lf_min: float = BOOM_LF_RMS) -> list[Click]:
    """Booms/thumps, before or after a codec.

    * ``win_ms`` windows whose mean (DC) reaches ``dc_min``: a DC step as the agent made it
      (speech is AC, above 80 Hz, so its 5 ms means stay small);
    * ``BOOM_LF_WIN_MS`` windows (half-overlapping) whose content below ``lf_hz`` reaches
      ``lf_min`` RMS: the same boom after Opus, whose high-pass turns the step into a
      low-frequency burst (``ratio`` holds that RMS).

    Adjacent windows merge; returns :class:`Click` in time order.
    """
    x = np.asarray(x, dtype=np.float64)
    w = max(1, int(round(win_ms * sr / 1000)))
    n = x.shape[0] // w
    if n == 0:
        return []
    m = np.abs(x[: n * w].reshape(n, w).mean(axis=1))
    found: list[Click] = []
    for a, b in runs(m >= dc_min):
        p = float(np.abs(x[a * w:b * w]).max())
        found.append(Click(a * w / sr * 1000, b * w / sr * 1000, p, float(m[a:b].max())))
    lw = max(1, int(round(BOOM_LF_WIN_MS * sr / 1000)))
    if x.shape[0] >= lw and lf_hz < sr / 2:
        from scipy.signal import butter, sosfiltfilt

        pad = int(0.1 * sr)  # zeros around: a reply sliced from silence has no edge step of its own
        lp = sosfiltfilt(butter(4, lf_hz, fs=sr, output="sos"), np.pad(x, pad))[pad:pad + x.shape[0]]
        h = lw // 2
        c = np.concatenate([[0.0], np.cumsum(lp * lp)])
        st = np.arange(0, x.shape[0] - lw + 1, h)
        lr = np.sqrt((c[st + lw] - c[st]) / lw)
        for a, b in runs(lr >= lf_min):
            s0, s1 = int(st[a]), int(st[b - 1]) + lw
            found.append(Click(s0 / sr * 1000, s1 / sr * 1000, float(np.abs(x[s0:s1]).max()), float(lr[a:b].max())))
    found.sort(key=lambda c: c.start_ms)
    out: list[Click] = []
    for c in found:
        if out and c.start_ms <= out[-1].end_ms:
            o = out[-1]
            out[-1] = Click(o.start_ms, max(o.end_ms, c.end_ms), max(o.peak, c.peak), max(o.ratio, c.ratio))
        else:
            out.append(c)
    return out


def detect_spikes(x: np.ndarray, sr: int) -> list[Click]:
    """Clicks and booms (:func:`detect_clicks`, :func:`detect_hf_clicks`, :func:`detect_booms`),
    overlapping ones merged, in time order."""
    found = sorted(detect_clicks(x, sr) + detect_hf_clicks(x, sr) + detect_booms(x, sr), key=lambda c: c.start_ms)
    out: list[Click] = []
    for c in found:
        if out and c.start_ms <= out[-1].end_ms + 5.0:
            o = out[-1]
            out[-1] = Click(o.start_ms, max(o.end_ms, c.end_ms), max(o.peak, c.peak), max(o.ratio, c.ratio))
        else:
            out.append(c)
    return out


def _log_spectrum(x: np.ndarray, sr: int, grid: np.ndarray) -> np.ndarray | None:
    from scipy.signal import welch

    x = np.asarray(x, dtype=np.float64)
    if x.size < 4096:
        return None
    f, p = welch(x, fs=sr, nperseg=4096, noverlap=3072)
    lp = 10 * np.log10(np.maximum(p, 1e-16))
    return np.interp(grid, np.log2(np.maximum(f, 1e-3)), lp)


def speed_ratio(pre: np.ndarray, post: np.ndarray, sr: int, *, sr_post: int | None = None,
                max_change: float = 0.2) -> float | None:
    """How much faster (and higher) ``post`` plays than ``pre``: 24/22.05 = 1.088 for 22.05 kHz
    audio played as 24 kHz; 1.0 = unchanged.

    Found as the shift of the long-term log-frequency spectrum (``SPEED_FMIN``-``SPEED_FMAX``,
    1/600 octave steps, mean removed) that best matches ``pre``'s: a rate error scales every
    frequency by the ratio; a cut reply, a low-pass or a dropout does not.  ``None`` when
    either signal is shorter than 4096 samples.
    """
    sp = sr_post or sr
    grid = np.arange(np.log2(SPEED_FMIN), np.log2(SPEED_FMAX), 1 / 600)
    a = _log_spectrum(pre, sr, grid)
    b = _log_spectrum(post, sp, grid)
    if a is None or b is None:
        return None
    # whiten: remove the slow spectral tilt (a low-pass or codec changes it, not the fine structure)
    from scipy.ndimage import uniform_filter1d

    a = a - uniform_filter1d(a, 120, mode="nearest")
    b = b - uniform_filter1d(b, 120, mode="nearest")
    kmax = int(np.ceil(np.log2(1 + max_change) * 600))
    best, bk = -np.inf, 0
    n = grid.shape[0]
    for k in range(-kmax, kmax + 1):
        if k >= 0:
            u, v = a[: n - k], b[k:]
        else:
            u, v = a[-k:], b[: n + k]
        u = u - u.mean()
        v = v - v.mean()
        cc = float(u @ v / (np.sqrt((u @ u) * (v @ v)) + 1e-12))
        if cc > best:
            best, bk = cc, k
    return float(2.0 ** (bk / 600))


def common_band_hz(ref: np.ndarray, post: np.ndarray, sr: int, *, drop_db: float = BAND_DROP_DB) -> float | None:
    """Upper edge (Hz) of the band ``post`` still carries of ``ref``, or ``None`` when it carries
    all of ref's band (the usual case, also through Opus).

    Long-term spectra (Welch, 2048 points), level-matched on 300-2500 Hz; the edge is the first
    frequency >= 1 kHz from which the median difference over the next 1 kHz is ``drop_db`` or
    more below, counted only where ``ref`` has content (within 60 dB of its peak).
    """
    from scipy.signal import welch

    ref = np.asarray(ref, dtype=np.float64)
    post = np.asarray(post, dtype=np.float64)
    if min(ref.size, post.size) < 4096:
        return None
    f, a = welch(ref, fs=sr, nperseg=2048)
    _, b = welch(post, fs=sr, nperseg=2048)
    rel = 10 * np.log10(np.maximum(b, 1e-16) / np.maximum(a, 1e-16))
    mid = (f >= 300) & (f <= 2500)
    rel -= float(np.median(rel[mid]))
    has = 10 * np.log10(np.maximum(a, 1e-16) / max(float(a.max()), 1e-16)) > -60
    for i in np.flatnonzero((f >= 1000) & has):
        win = (f >= f[i]) & (f < f[i] + 1000) & has
        if win.sum() >= 5 and float(np.median(rel[win])) <= -drop_db:
            return float(f[i])
    return None


def band_limit(x: np.ndarray, sr: int, hz: float) -> np.ndarray:
    """``x`` low-passed at ``hz`` (8th-order Butterworth, zero phase)."""
    from scipy.signal import butter, sosfiltfilt

    return sosfiltfilt(butter(8, hz, fs=sr, output="sos"), np.asarray(x, dtype=np.float64)).astype(np.float32)


def missing_audio_ms(pre_span_ms: float, post_span_ms: float, speed: float | None = None) -> float:
    """Audible duration the user did not get: ``pre_span / speed - post_span`` (ms, >= 0).

    ``speed`` (:func:`speed_ratio`) corrects for a rate change so a faster reply is not
    "missing" audio.  Spans are first-to-last audible sample (:func:`fingerprints.audible_span`).
    """
    exp = pre_span_ms / (speed if speed and speed > 0 else 1.0)
    return max(0.0, exp - post_span_ms)


def premature_ms(reply_onset_t: float | None, t_eot: float | None, t_user_onset: float | None) -> float | None:
    """Talk-over of a premature reply: ``t_eot - reply_onset_t`` in ms when the reply's first
    audible sample came after the user started speaking and before the user's EoT; ``0.0``
    when it came at or after EoT; ``None`` when a time is unknown (seconds on one clock).
    """
    if reply_onset_t is None or t_eot is None:
        return None
    if reply_onset_t >= t_eot:
        return 0.0
    if t_user_onset is not None and reply_onset_t < t_user_onset:
        return 0.0  # sounding before the user spoke: an earlier reply, not this one
    return (t_eot - reply_onset_t) * 1000.0

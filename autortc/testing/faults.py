"""Ground truth for the audio detectors: a clean speech-like signal plus fault injectors.

The clean signal imitates what the bundled piper TTS publishes:

* voiced syllables (harmonic source, declining F0 contour with vibrato and jitter,
  formant-shaped spectrum, 15-40 ms attack/release), some with a fricative noise
  onset that puts energy in 4-8 kHz;
* short intra-word dips between syllables (down to 12-30 % of the level, never
  silent) that no detector may report;
* inter-sentence pauses of 100-270 ms of near-digital silence, with a smooth decay
  into them, returned as ``expected_silence_ms`` (what a case declares).

Each injector returns the faulty signal and a :class:`Fault` that holds the truth
(where, how long, how much).  Times are in ms from sample 0 of the returned signal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "CleanSpeech", "Fault", "make_speech", "insert_gap", "dropout", "clip", "boom",
    "speed_drift", "hf_loss", "stutter", "FAULT_KINDS", "write_turn_folder",
]

FAULT_KINDS = ("gap", "dropout", "clip", "boom", "speed_drift", "hf_loss", "stutter")


@dataclass(frozen=True)
class CleanSpeech:
    """A clean speech-like signal and where its parts are.

    ``samples``: float32, shape ``(n,)``; ``syllables``: ``(start, end)`` sample
    spans of voiced syllables; ``expected_silence_ms``: inter-sentence pauses as
    ``[start_ms, end_ms]``; ``dips_ms``: intra-word dips (not silences).
    """

    samples: np.ndarray
    sr: int
    syllables: list[tuple[int, int]]
    expected_silence_ms: list[tuple[float, float]]
    dips_ms: list[tuple[float, float]]
    speech_start: int
    speech_end: int

    def fault_points_ms(self, dur_ms: float, n: int, *, edge_ms: float = 50.0, rng_seed: int = 0) -> list[float]:
        """``n`` non-overlapping starts (ms) such that ``[start, start + dur_ms]`` begins and
        ends at least ``edge_ms`` inside syllable bodies and crosses no sentence pause."""
        rng = np.random.default_rng(rng_seed)
        ms = self.sr / 1000.0
        bodies = [(s / ms + edge_ms, e / ms - edge_ms) for s, e in self.syllables if e / ms - s / ms > 2 * edge_ms]

        def in_body(t: float) -> bool:
            return any(a <= t <= b for a, b in bodies)

        cands = []
        for a, b in bodies:
            for t in np.arange(a, b, 5.0):
                end = t + dur_ms
                if in_body(end) and not any(t < pe and end > ps for ps, pe in self.expected_silence_ms):
                    cands.append(float(t))
        rng.shuffle(cands)
        out: list[float] = []
        for t in cands:
            if all(abs(t - u) > dur_ms + 200 for u in out):
                out.append(t)
            if len(out) == n:
                break
        if len(out) < n:
            raise ValueError(f"only {len(out)} places for a {dur_ms} ms fault, wanted {n}")
        return sorted(out)

    def speech_points_ms(self, n: int, *, margin_ms: float = 60.0, rng_seed: int = 0) -> list[float]:
        """``n`` instants (ms) in the loud middle of distinct syllables, far from their edges."""
        rng = np.random.default_rng(rng_seed)
        spans = [(s, e) for s, e in self.syllables if (e - s) / self.sr * 1000 > 2 * margin_ms + 20]
        idx = rng.choice(len(spans), size=min(n, len(spans)), replace=False)
        out = []
        for i in sorted(idx):
            s, e = spans[i]
            mid = (s + e) / 2 / self.sr * 1000
            out.append(float(mid))
        return out


@dataclass(frozen=True)
class Fault:
    """Ground truth of one injected fault.

    ``kind`` is one of :data:`FAULT_KINDS`; ``start_ms``/``end_ms`` locate it in the
    faulty signal (``None`` for whole-signal faults); ``value`` is the injected amount
    (clip fraction, drift ratio, HF energy drop, repeat period ms, ...).
    """

    kind: str
    start_ms: float | None = None
    end_ms: float | None = None
    value: float | None = None
    extra: dict = field(default_factory=dict)


def _formant_gain(freqs: np.ndarray, formants: list[tuple[float, float]]) -> np.ndarray:
    g = np.zeros_like(freqs)
    for fc, bw in formants:
        g += 1.0 / (1.0 + ((freqs - fc) / (bw / 2.0)) ** 2)
    tilt = 1.0 / (1.0 + (freqs / 600.0) ** 1.2)
    return (0.15 + g) * tilt


def _ramp(n: int, rising: bool) -> np.ndarray:
    r = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, max(n, 1)))
    return r if rising else r[::-1]


def make_speech(
    sr: int = 16000,
    *,
    seed: int = 0,
    sentences: int = 3,
    words_per_sentence: tuple[int, int] = (3, 5),
    level_rms: float = 0.1,
    lead_ms: float = 200.0,
    tail_ms: float = 200.0,
    noise_floor: float = 1e-4,
) -> CleanSpeech:
    """Build a clean speech-like signal (see module doc).

    Args:
        sr: sample rate in Hz (16000 or more, so 4-8 kHz exists).
        seed: RNG seed; the same seed gives the same signal.
        sentences: number of sentences; ``sentences - 1`` pauses of 100-270 ms.
        words_per_sentence: inclusive range of words per sentence.
        level_rms: RMS of the voiced parts (full scale 1.0).
        lead_ms, tail_ms: near-silence before the first and after the last sentence.
        noise_floor: RMS of the background noise everywhere (TTS dither / codec floor).
    """
    if sr < 16000:
        raise ValueError(f"sr must be >= 16000 Hz, got {sr}")
    rng = np.random.default_rng(seed)
    ms = sr / 1000.0

    # 1) layout: envelope + per-syllable spectra
    env_parts: list[np.ndarray] = []
    syllables: list[tuple[int, int]] = []
    pauses: list[tuple[float, float]] = []
    dips: list[tuple[float, float]] = []
    fric_spans: list[tuple[int, int]] = []
    spectra: list[tuple[int, int, list[tuple[float, float]]]] = []
    pos = 0

    def push(seg: np.ndarray) -> None:
        nonlocal pos
        env_parts.append(seg.astype(np.float64))
        pos += seg.shape[0]

    push(np.zeros(int(lead_ms * ms)))
    speech_start = pos
    for si in range(sentences):
        n_words = int(rng.integers(words_per_sentence[0], words_per_sentence[1] + 1))
        for wi in range(n_words):
            n_syl = int(rng.integers(1, 4))
            for k in range(n_syl):
                dur = int(rng.uniform(140, 240) * ms)
                att = int(rng.uniform(15, 30) * ms)
                rel = int(rng.uniform(25, 45) * ms)
                is_word_first = k == 0
                is_word_last = k == n_syl - 1
                floor_in = 0.0 if (is_word_first and wi == 0) else rng.uniform(0.2, 0.35)
                floor_out = rng.uniform(0.2, 0.35)
                if is_word_last and wi == n_words - 1:
                    floor_out = 0.0  # sentence end decays to silence
                seg = np.ones(dur)
                seg[:att] = floor_in + (1 - floor_in) * _ramp(att, True)
                seg[-rel:] = floor_out + (1 - floor_out) * _ramp(rel, False)
                seg *= rng.uniform(0.75, 1.15)
                start = pos
                push(seg)
                syllables.append((start, pos))
                formants = [(rng.uniform(450, 850), 120.0), (rng.uniform(1000, 2200), 180.0),
                            (rng.uniform(2400, 3200), 260.0), (rng.uniform(3500, 4500), 350.0)]
                spectra.append((start, pos, formants))
                if rng.random() < 0.45:
                    fl = int(rng.uniform(40, 80) * ms)
                    fric_spans.append((start, start + fl))
                if not (is_word_last and wi == n_words - 1):
                    # connecting dip (intra-word or word boundary): low but never silent
                    dl = int(rng.uniform(15, 40) * ms)
                    lvl = rng.uniform(0.12, 0.3)
                    dips.append((pos / ms, (pos + dl) / ms))
                    push(np.full(dl, lvl * floor_out / max(floor_out, 1e-9)))
        if si < sentences - 1:
            pl = int(rng.uniform(100, 270) * ms)
            pauses.append((pos / ms, (pos + pl) / ms))
            push(np.zeros(pl))
    speech_end = pos
    push(np.zeros(int(tail_ms * ms)))
    env = np.concatenate(env_parts)
    n = env.shape[0]
    t = np.arange(n) / sr

    # 2) voiced source: F0 contour (declination per sentence + vibrato + jitter)
    f0 = 125.0 + 18.0 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6.28)) \
        + 4.0 * np.sin(2 * np.pi * 5.3 * t) - 10.0 * (t / max(t[-1], 1e-9))
    jitter = np.cumsum(rng.normal(0, 0.6, n)) / np.sqrt(np.arange(1, n + 1))
    f0 = f0 + np.convolve(jitter, np.ones(64) / 64, mode="same")
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = np.zeros(n)
    max_h = int((0.45 * sr) // 90)
    for start, end, formants in spectra:
        # pad so harmonics stay continuous through dips
        s0, e0 = max(0, start - int(60 * ms)), min(n, end + int(60 * ms))
        ph = phase[s0:e0]
        f0_seg = float(np.mean(f0[s0:e0]))
        ks = np.arange(1, max_h + 1)
        ks = ks[ks * f0_seg < 0.47 * sr]
        amps = _formant_gain(ks * f0_seg, formants)
        seg = np.zeros(e0 - s0)
        for k, a in zip(ks, amps):
            seg += a * np.sin(k * ph)
        w = np.ones(e0 - s0)
        if start > s0:
            w[: start - s0] = 0.0
        if end < e0:
            w[end - s0:] = 0.0
        voiced[s0:e0] += seg * w
    # fill the dips with the neighbouring spectrum so they are not silent
    for i, (s, e) in enumerate(syllables[:-1]):
        nxt = syllables[i + 1][0]
        if nxt > e:
            f0_seg = float(np.mean(f0[e:nxt]))
            ks = np.arange(1, 20)
            voiced[e:nxt] = sum(_formant_gain(np.array([k * f0_seg]), spectra[i][2])[0] * np.sin(k * phase[e:nxt])
                                for k in ks)
    voiced /= np.sqrt(np.mean(voiced[env > 0.5] ** 2)) + 1e-12

    # 3) fricative onsets: band noise 3.5-7.5 kHz
    noise = rng.normal(0, 1, n)
    spec = np.fft.rfft(noise)
    fr = np.fft.rfftfreq(n, 1 / sr)
    spec[(fr < 3500) | (fr > min(7500, 0.47 * sr))] = 0
    hf = np.fft.irfft(spec, n)
    hf /= np.sqrt(np.mean(hf ** 2)) + 1e-12
    fric_env = np.zeros(n)
    for s, e in fric_spans:
        fric_env[s:e] = _ramp(e - s, False) * 0.8
    y = env * voiced + fric_env * hf * np.minimum(env, 1.0)
    y *= level_rms / (np.sqrt(np.mean(y[env > 0.5] ** 2)) + 1e-12)
    y += rng.normal(0, noise_floor, n)
    y = np.clip(y, -0.99, 0.99).astype(np.float32)
    return CleanSpeech(samples=y, sr=sr, syllables=syllables, expected_silence_ms=pauses,
                       dips_ms=dips, speech_start=speech_start, speech_end=speech_end)


def _i(ms_: float, sr: int) -> int:
    return int(round(ms_ * sr / 1000.0))


def insert_gap(x: np.ndarray, sr: int, at_ms: float, dur_ms: float) -> tuple[np.ndarray, Fault]:
    """Insert ``dur_ms`` of digital silence at ``at_ms`` (a stall: later audio arrives late)."""
    a, d = _i(at_ms, sr), _i(dur_ms, sr)
    y = np.concatenate([x[:a], np.zeros(d, np.float32), x[a:]]).astype(np.float32)
    return y, Fault("gap", a / sr * 1000, (a + d) / sr * 1000, d / sr * 1000)


def dropout(x: np.ndarray, sr: int, at_ms: float, dur_ms: float) -> tuple[np.ndarray, Fault]:
    """Replace ``dur_ms`` from ``at_ms`` with digital silence (lost audio, timeline kept)."""
    a, d = _i(at_ms, sr), _i(dur_ms, sr)
    y = x.copy()
    y[a:a + d] = 0.0
    return y, Fault("dropout", a / sr * 1000, (a + d) / sr * 1000, d / sr * 1000)


def clip(x: np.ndarray, fraction: float, *, ceiling: float = 1.0) -> tuple[np.ndarray, Fault]:
    """Amplify so that ``fraction`` of the samples exceed ``ceiling``, then hard-clip.

    The truth ``value`` is the fraction of samples actually clipped.
    """
    mag = np.sort(np.abs(x))
    k = max(1, int(round(fraction * x.shape[0])))
    level = float(mag[-k - 1]) if k < mag.shape[0] else float(mag[0])
    gain = ceiling / max(level, 1e-9) * 1.0001
    y = x.astype(np.float64) * gain
    clipped = np.abs(y) >= ceiling
    y = np.clip(y, -ceiling, ceiling).astype(np.float32)
    return y, Fault("clip", value=float(np.mean(clipped)))


def boom(x: np.ndarray, sr: int, at_ms: float, dur_ms: float = 20.0, amp: float = 0.95) -> tuple[np.ndarray, Fault]:
    """Add a ``dur_ms`` burst (DC step with a 100 Hz ripple) at ``amp`` with an abrupt onset: a first-frame pop."""
    a, d = _i(at_ms, sr), _i(dur_ms, sr)
    y = x.astype(np.float64).copy()
    tt = np.arange(d) / sr
    burst = amp * (0.9 + 0.1 * np.cos(2 * np.pi * 100 * tt))
    y[a:a + d] = np.clip(y[a:a + d] * 0.1 + burst, -1, 1)
    return y.astype(np.float32), Fault("boom", a / sr * 1000, (a + d) / sr * 1000, amp)


def speed_drift(x: np.ndarray, sr: int, ratio: float = 1.03) -> tuple[np.ndarray, Fault]:
    """Play ``x`` ``ratio`` times longer (and lower in pitch), as a clock-rate mismatch does."""
    from autortc.audio import resample

    y = resample(x, sr, int(round(sr * ratio)))
    return y.astype(np.float32), Fault("speed_drift", value=y.shape[0] / x.shape[0])


def hf_loss(x: np.ndarray, sr: int, *, lo_hz: float = 4000.0, hi_hz: float = 8000.0,
            gain: float = 0.0) -> tuple[np.ndarray, Fault]:
    """Scale the ``lo_hz``-``hi_hz`` band by ``gain`` (0 removes it); truth value = 1 - gain**2."""
    n = x.shape[0]
    spec = np.fft.rfft(x.astype(np.float64))
    fr = np.fft.rfftfreq(n, 1 / sr)
    spec[(fr >= lo_hz) & (fr <= hi_hz)] *= gain
    y = np.fft.irfft(spec, n).astype(np.float32)
    return y, Fault("hf_loss", value=1.0 - gain ** 2)


def stutter(x: np.ndarray, sr: int, at_ms: float, chunk_ms: float = 60.0, repeats: int = 2) -> tuple[np.ndarray, Fault]:
    """Repeat the ``chunk_ms`` that starts at ``at_ms`` ``repeats`` more times (a replayed buffer).

    Truth: the repeats span ``[at_ms + chunk_ms, at_ms + chunk_ms * (1 + repeats)]``;
    ``value`` is the repeat period in ms.
    """
    a, c = _i(at_ms, sr), _i(chunk_ms, sr)
    chunk = x[a:a + c]
    y = np.concatenate([x[:a + c]] + [chunk] * repeats + [x[a + c:]]).astype(np.float32)
    return y, Fault("stutter", (a + c) / sr * 1000, (a + c * (1 + repeats)) / sr * 1000, c / sr * 1000,
                    extra={"repeats": repeats})


def write_turn_folder(
    turn_dir,
    *,
    pre: np.ndarray,
    post: np.ndarray | None = None,
    sr: int = 48000,
    user: np.ndarray | None = None,
    user_sr: int = 16000,
    delay_ms: float = 300.0,
    frame_ms: float = 20.0,
    jitter_ms: float = 0.0,
    case_id: str = "case",
    trace_id: str = "t0",
    p_level: str = "P0",
    expected_silence_ms: list | None = None,
    user_expected_silence_ms: list | None = None,
    expect_keywords: list | None = None,
    reference_reply: str | None = None,
    stages_ms: dict | None = None,
    lk_metrics: dict | None = None,
    seed: int = 0,
    write_pre: bool = True,
    write_post: bool = True,
) -> dict:
    """Write a synthetic turn folder per docs/artifacts.md (through the contract's writer) and
    return the ground truth.  ``expected_silence_ms``: the reply's intended pauses as the agent
    declares them (ms from pre sample 0); ``user_expected_silence_ms``: the case's (ms in user.wav).

    ``post`` (default: ``pre``) is placed in ``post_rtc_full.wav`` so that its sample 0
    arrives ``delay_ms`` after the user's EoT; frames of ``frame_ms`` arrive every
    ``frame_ms`` plus uniform jitter in ``[0, jitter_ms]`` (receiver-side lag: the truth is the undelayed clock).  Returns
    ``{"eot_to_first_audio_ms": ..., "t_user_eot": ..., "onset_sample": ...}`` where the
    truth uses the onset of ``post``'s first sample above 1e-3 full scale.
    """
    import json
    from pathlib import Path

    import soundfile as sf

    rng = np.random.default_rng(seed)
    d = Path(turn_dir)
    d.mkdir(parents=True, exist_ok=True)
    post = pre if post is None else post
    if user is None:
        user = make_speech(user_sr, seed=seed + 100, sentences=1, words_per_sentence=(2, 3)).samples
    u_on = np.flatnonzero(np.abs(user) > 1e-3)
    eot_sample = int(u_on[-1]) + 1 if u_on.size else user.shape[0]
    t_full_start = 100.0
    t_audio_start = 100.5
    t_user_eot = t_audio_start + eot_sample / user_sr
    fl = int(round(frame_ms * sr / 1000))
    # post sample 0 must arrive at t_user_eot + delay: place it at a frame boundary + offset
    lead = int((t_user_eot - t_full_start + delay_ms / 1000) * sr)
    tail = int(0.4 * sr)
    full = np.concatenate([np.zeros(lead, np.float32), post.astype(np.float32), np.zeros(tail, np.float32)])
    n_frames = int(np.ceil(full.shape[0] / fl))
    arrivals = t_full_start + np.arange(n_frames) * fl / sr + rng.uniform(0, jitter_ms / 1000, n_frames)
    frames = [[float(arrivals[k]), int(k * fl)] for k in range(n_frames)]
    p_on = np.flatnonzero(np.abs(post) > 1e-3)
    onset = lead + (int(p_on[0]) if p_on.size else 0)
    k = onset // fl
    # jitter here is receiver-side lag (a frame seen late by the event loop), not a later sound:
    # the onset's true time is on the undelayed clock
    t_onset = float(t_full_start + onset / sr)
    reply_start = max(0, lead - int(0.05 * sr))
    reply_end = min(full.shape[0], lead + post.shape[0] + int(0.2 * sr))
    sf.write(str(d / "user.wav"), user, user_sr, subtype="PCM_16")
    if write_pre:
        sf.write(str(d / "pre_rtc.wav"), np.clip(pre, -1, 1), sr, subtype="PCM_16")
    if write_post:
        sf.write(str(d / "post_rtc_full.wav"), np.clip(full, -1, 1), sr, subtype="PCM_16")
        sf.write(str(d / "post_rtc_reply.wav"), np.clip(full[reply_start:reply_end], -1, 1), sr, subtype="PCM_16")
    t_pub = t_user_eot + (delay_ms - 20) / 1000
    st = {"user_speech_end": t_user_eot + 0.01, "stt_final": t_user_eot + 0.1, "llm_first_token": t_user_eot + 0.15,
          "tts_first_chunk": t_pub - 0.05, "first_frame_published": t_pub}
    if stages_ms:
        st.update({k2: t_user_eot + v / 1000 for k2, v in stages_ms.items()})
    from autortc.artifacts import (
        AgentBlock, CaseBlock, ProbeBlock, TurnArtifacts, UserBlock, UserSegment, write_trace,
    )

    art = TurnArtifacts(
        run_id="run", case_id=case_id, trace_id=trace_id, turn_index=0, wall_offset_s=1.7e9,
        user=UserBlock(source="bot", wav="user.wav", sr=user_sr, t_audio_start=t_audio_start,
                       speech_start_sample=int(u_on[0]) if u_on.size else 0, eot_sample=eot_sample,
                       t_user_eot=t_user_eot,
                       segments=[UserSegment(index=0, expect="respond", start_sample=0,
                                             speech_start_sample=int(u_on[0]) if u_on.size else 0,
                                             eot_sample=eot_sample, t_onset=t_audio_start, t_end=t_user_eot)]),
        probe=ProbeBlock(sr=sr, full_wav="post_rtc_full.wav", t_full_start=t_full_start, frames=frames,
                         t_reply_start_evt=t_pub, t_reply_end_evt=t_pub + post.shape[0] / sr,
                         reply_slice=(reply_start, reply_end)),
        agent=AgentBlock(stages=st, lk_metrics=lk_metrics or {}, reply_text=reference_reply or "", pre_rtc_sr=sr,
                         expected_silence_ms=[tuple(x) for x in (expected_silence_ms or [])]),
        case=CaseBlock(p_level=p_level, expect_keywords=expect_keywords or [], reference_reply=reference_reply,
                       expected_silence_ms=[tuple(x) for x in (user_expected_silence_ms or [])]),
    )
    write_trace(d, art)
    return {"eot_to_first_audio_ms": (t_onset - t_user_eot) * 1000.0, "t_user_eot": t_user_eot,
            "onset_sample": onset, "reply_start": reply_start}

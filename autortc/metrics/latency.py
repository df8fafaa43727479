"""Latency metrics from ``trace.json`` and the probe capture (see docs/artifacts.md).

* ``eot_to_first_audio_ms``: user end-of-turn (``user.t_user_eot``) to the arrival of
  the first audible sample of the reply at the probe.  The onset is found to about
  1 ms in ``post_rtc_full.wav`` and its time is the arrival time of the frame that
  holds it plus the sample offset inside the frame (``probe.frames``), not the
  20 ms frame time.
* ``tts_first_to_publish_ms``: ``agent.stages.first_frame_published`` minus the reply's release:
  the later of ``tts_first_chunk`` and ``end_of_turn`` (:func:`tts_first_to_publish_ms`).
* ``llm_ttft_ms``: ``llm_first_token - llm_request`` from the stages (one clock), else
  the agent's LiveKit metric ``llm_ttft_ms``.
* ``inter_arrival_p95_ms``: P95 of the differences of the frame arrival times.
* reported vs heard: the agent's own delay (LiveKit ``end_of_utterance_delay +
  llm_ttft + tts_ttfb``, else ``first_frame_published - user_speech_end``) against the
  EoT-to-first-audio heard at the probe.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from autortc.audio.energy import SignalEnergy, frame_rms, short_rms, silence_threshold

__all__ = ["first_onset", "reply_start", "sample_arrival_time", "time_to_sample", "inter_arrival_ms", "p95",
           "stage_delta_ms", "tts_first_to_publish_ms", "tts_first_held_ms", "llm_ttft_ms",
           "agent_reported_delay_ms"]


def p95(values: Sequence[float] | np.ndarray) -> float | None:
    """95th percentile (linear interpolation); ``None`` for no values."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    return float(np.percentile(v, 95)) if v.size else None


REPLY_PREROLL_MS = 10.0
"""The reply segment starts this long before its first sound."""


START_EVENT_SLACK_MS = 40.0
"""How far before the reply's start event (its sample in the capture) its first sound may lie.
The event is a data message racing the reply's first audio frame to the probe, and its sample is
frame-granular (10 ms): on the real bench (fb-bots-s12 b035) a click on the reply's first sample
sat 2 ms before the event's sample, was cut off the reply segment, and the spike rule never saw it."""


def reply_start(x: np.ndarray, sr: int, start: int, onset: int | None, *, level: float = 0.01) -> int:
    """Where a reply's segment begins in a capture: ``REPLY_PREROLL_MS`` before its first sound.

    ``x``: the capture, (n_samples,) int16 or float in [-1, 1] at ``sr`` Hz; ``start``: the sample at
    which the reply's start event came; ``onset``: its first audible sample (:func:`first_onset`,
    which needs 20 ms of sound).  A short sound between the two -- a pop or click on the reply's
    first samples, 2 ms long -- is the reply too, so the segment begins before the first sample at
    or above ``level`` (peak, -40 dBFS; the capture is digital silence before a reply) when that
    comes before ``onset``.  Found on the real bench: a full-scale first sample 40 ms before the
    speech was cut off the segment, so the spike detector never saw the click the user heard.
    The first sound may also come up to ``START_EVENT_SLACK_MS`` before ``start`` (the event lost
    the race to the audio); it counts only when silence precedes it inside that window, so the tail
    of an earlier sound is never pulled in.  Returns a sample index, ``0 <= i <= max(start, onset)``.
    """
    x = np.asarray(x)
    start = max(0, int(start))
    end = x.shape[0] if onset is None else max(start, int(onset))
    thr = level * (32768.0 if x.dtype == np.int16 else 1.0)
    preroll = int(REPLY_PREROLL_MS * sr / 1000)
    lo = max(0, start - int(START_EVENT_SLACK_MS * sr / 1000))
    back = np.flatnonzero(np.abs(x[lo:start]) >= thr)
    if back.size and back[0] > 0:  # sound begins after silence, just before the event: the reply's
        return max(lo, lo + int(back[0]) - preroll)
    hot = np.flatnonzero(np.abs(x[start:end]) >= thr)
    first = start + int(hot[0]) if hot.size else onset
    if first is None:
        return start
    return max(start, int(first) - preroll)


def first_onset(x: np.ndarray, sr: int, *, start: int = 0, threshold: float | None = None,
                min_sound_ms: float = 20.0, min_silence_before_ms: float = 60.0,
                energy: SignalEnergy | None = None) -> int | None:
    """Index of the first audible sample at or after ``start``.

    Sound = 10 ms frame RMS at or above ``threshold`` (seed adaptive threshold over
    the whole signal by default) for at least ``min_sound_ms``.  If ``x`` is
    already sounding at ``start`` (the previous reply's tail), the search skips to
    the first onset after ``min_silence_before_ms`` of silence.  The onset is then
    moved back to where the 1 ms RMS rises above the noise floor (three times the
    median RMS of the silence before it, at least 3e-4): about 1-2 ms precise.
    ``energy``: :func:`autortc.audio.energy.signal_energy` of ``x`` when the caller has it
    (its adaptive threshold is used unless ``threshold`` is given).
    """
    x = np.asarray(x, dtype=np.float32)
    if energy is not None:
        energy.check(x, sr)
        rms, hop, frame = energy.rms, energy.hop, energy.frame
        thr = energy.threshold if threshold is None else threshold
    else:
        rms, hop, frame = frame_rms(x, sr)
        thr = silence_threshold(rms) if threshold is None else threshold
    loud = rms >= thr
    need = max(1, int(round(min_sound_ms / 1000 * sr / hop)) - int(round(frame / hop)) + 1)
    i = max(0, start // hop)
    quiet_need = max(1, int(round(min_silence_before_ms / 1000 * sr / hop)))
    if i < loud.shape[0] and loud[i]:
        q = 0
        while i < loud.shape[0] and q < quiet_need:
            q = q + 1 if not loud[i] else 0
            i += 1
    while i < loud.shape[0]:
        if loud[i] and loud[i:i + need].all():
            break
        i += 1
    else:
        return None
    onset = i * hop
    lo = max(start, onset - int(0.060 * sr))
    pre = rms[max(0, lo // hop):i]
    floor = max(3e-4, 3.0 * float(np.median(pre[pre < thr])) if (pre < thr).any() else 3e-4)
    seg = short_rms(x[lo:onset + frame], sr, win_ms=1.0)
    above = seg >= floor
    # walk back from the frame start while the 1 ms RMS stays above the floor
    k = onset + frame - lo - 1
    first_loud = np.flatnonzero(above[: k + 1])
    if first_loud.size == 0:
        return onset
    j = k
    while j > 0 and above[j - 1]:
        j -= 1
    if not above[j]:
        j = int(first_loud[-1])
    return max(start, lo + j)


def _frames_arr(frames: Sequence[Sequence[float]]) -> np.ndarray:
    f = np.asarray(frames, dtype=np.float64).reshape(-1, 2)
    if f.shape[0] == 0:
        raise ValueError("probe.frames is empty: no arrival times")
    return f[np.argsort(f[:, 1], kind="stable")]


ENVELOPE_S = 0.5
"""Forward window of :func:`sample_arrival_time`'s lower envelope (s of samples from the frame
holding the sample): long enough that a burst after an event-loop stall of a few hundred ms is
over inside it, short enough that the receiver's jitter buffer does not re-time the stream
within it (NetEq stretches by single packets)."""


def sample_arrival_time(frames: Sequence[Sequence[float]], index: int, sr: int) -> float:
    """Arrival time (s, host monotonic) of sample ``index`` of ``post_rtc_full.wav``.

    ``frames`` is ``probe.frames``: ``[arrival_t, first_sample_index]`` per frame.
    Time = arrival of the frame holding the sample + offset inside it / ``sr``, where the
    frame's arrival is the lower envelope of ``arrival - first_sample / sr`` over the frames
    from it to :data:`ENVELOPE_S` later: the receiver hands frames over at its media pace,
    and a late Python event loop only ever adds delay (frames seen late, then in a burst),
    so the least-delayed frame nearby gives the undelayed clock. Without this the
    reconstructed time was late by the loop's lag (tests/unit/test_instrument_timing.py:
    +11 ms and +102 ms for a loop blocked 30 and 120 ms before the onset).
    """
    f = _frames_arr(frames)
    k = int(np.searchsorted(f[:, 1], index, side="right")) - 1
    k = max(k, 0)
    hi = int(np.searchsorted(f[:, 1], f[k, 1] + ENVELOPE_S * sr, side="right"))
    base = float(np.min(f[k:max(hi, k + 1), 0] - f[k:max(hi, k + 1), 1] / sr))
    return base + index / sr


def time_to_sample(frames: Sequence[Sequence[float]], t: float, sr: int) -> int:
    """Inverse of :func:`sample_arrival_time`: first sample that arrived at or after ``t``."""
    f = _frames_arr(frames)
    order = np.argsort(f[:, 0], kind="stable")
    ft = f[order]
    k = int(np.searchsorted(ft[:, 0], t, side="right")) - 1
    if k < 0:
        return int(ft[0, 1])
    return int(round(ft[k, 1] + max(0.0, t - ft[k, 0]) * sr))


def inter_arrival_ms(frames: Sequence[Sequence[float]]) -> np.ndarray:
    """Differences (ms) between consecutive frame arrival times, in sample order."""
    f = _frames_arr(frames)
    return np.diff(f[:, 0]) * 1000.0


def stage_delta_ms(stages: Mapping[str, Any] | None, a: str, b: str) -> float | None:
    """``(stages[b] - stages[a]) * 1000`` or ``None`` when either is missing."""
    if not stages or stages.get(a) is None or stages.get(b) is None:
        return None
    return (float(stages[b]) - float(stages[a])) * 1000.0


def _release(stages: Mapping[str, Any] | None) -> tuple[float, float, float] | None:
    """(first chunk, release, first frame published), s, of the reply whose first frame was published,
    or None when a stage is missing."""
    if not stages or stages.get("tts_first_chunk") is None or stages.get("first_frame_published") is None:
        return None
    chunk, pub = float(stages["tts_first_chunk"]), float(stages["first_frame_published"])
    eot = stages.get("end_of_turn")
    # an end of turn after the first frame is not this reply's release (a greeting, a reply sounding
    # before the decision): the seed's definition then
    if eot is None or float(eot) > pub:
        return chunk, chunk, pub
    return chunk, max(chunk, float(eot)), pub


def tts_first_to_publish_ms(stages: Mapping[str, Any] | None) -> float | None:
    """TTS -> publish (ms): ``first_frame_published`` minus the reply's release, the later of
    ``tts_first_chunk`` and ``end_of_turn`` (agent stages, one sender clock). None when a stage is missing.

    What the gate is for (seed devlog D8/D9) is buffering between the TTS and the audio source. With
    preemptive generation (LiveKit Agents' ``preemptive_generation``, TTS included) the first chunk
    can exist before the agent has decided the user's turn is over; it is held for that decision by
    design, and that wait belongs to the end of turn, which EoT -> first audio already counts.
    Timing it from the chunk failed the gate on clean, fast replies (session 22, run d1: chunks ready
    37-129 ms before the end of turn, published 6-42 ms after it: P95 143 ms). Without ``end_of_turn``,
    or with one after the first frame, the release is the first chunk (the seed's definition).
    The hold is :func:`tts_first_held_ms`.
    """
    r = _release(stages)
    return None if r is None else (r[2] - r[1]) * 1000.0


def tts_first_held_ms(stages: Mapping[str, Any] | None) -> float | None:
    """How long a first TTS chunk waited for the end-of-turn decision (ms, >= 0; 0 when the chunk
    came after it); None when a stage is missing. See :func:`tts_first_to_publish_ms`."""
    r = _release(stages)
    return None if r is None else (r[1] - r[0]) * 1000.0


def llm_ttft_ms(agent: Mapping[str, Any] | None) -> float | None:
    """LLM time to first token (ms): stages ``llm_request -> llm_first_token``, else ``lk_metrics.llm_ttft_ms``.

    TTFT is measured from the request, not from the transcript: with preemptive
    generation the request can precede the final transcript, and a turn can have
    several finals (a barge-in), so ``stt_final`` is no anchor for it.
    """
    if not agent:
        return None
    v = stage_delta_ms(agent.get("stages"), "llm_request", "llm_first_token")
    if v is None:
        v = (agent.get("lk_metrics") or {}).get("llm_ttft_ms")
    return None if v is None else float(v)


def agent_reported_delay_ms(agent: Mapping[str, Any] | None) -> float | None:
    """The delay the agent believes the user waited.

    LiveKit Agents metrics ``end_of_utterance_delay_ms + llm_ttft_ms + tts_ttfb_ms`` when
    all three are there, else the protocol's stages ``user_speech_end -> first_frame_published``
    (the agent's own estimate of the user's end of speech; docs/protocol.md).
    """
    if not agent:
        return None
    lk = agent.get("lk_metrics") or {}
    keys = ("end_of_utterance_delay_ms", "llm_ttft_ms", "tts_ttfb_ms")
    if all(lk.get(k) is not None for k in keys):
        return float(sum(float(lk[k]) for k in keys))
    return stage_delta_ms(agent.get("stages"), "user_speech_end", "first_frame_published")

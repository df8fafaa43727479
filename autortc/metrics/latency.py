"""Latency metrics from ``trace.json`` and the probe capture (see docs/artifacts.md).

* ``eot_to_first_audio_ms``: user end-of-turn (``user.t_user_eot``) to the arrival of
  the first audible sample of the reply at the probe.  The onset is found to about
  1 ms in ``post_rtc_full.wav`` and its time is the arrival time of the frame that
  holds it plus the sample offset inside the frame (``probe.frames``), not the
  20 ms frame time.
* ``tts_first_to_publish_ms``: the agent's publish pipeline, from the moment the reply could be
  published to its first published frame: ``first_frame_published - max(tts_first_chunk,
  end_of_turn)``. With preemptive synthesis the first chunk exists before the turn is committed
  and must wait for the commit; that wait is the end-of-turn decision (timed by EoT → first
  audio), not the TTS → track path this gate is about. Without preemption (chunk after the
  commit) it is ``first_frame_published - tts_first_chunk`` as before; no ``end_of_turn``
  stage: the same.
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

__all__ = ["first_onset", "sample_arrival_time", "time_to_sample", "inter_arrival_ms", "p95",
           "stage_delta_ms", "tts_first_to_publish_ms", "llm_ttft_ms", "agent_reported_delay_ms"]


def p95(values: Sequence[float] | np.ndarray) -> float | None:
    """95th percentile (linear interpolation); ``None`` for no values."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    return float(np.percentile(v, 95)) if v.size else None


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


def tts_first_to_publish_ms(stages: Mapping[str, Any] | None) -> float | None:
    """``first_frame_published - max(tts_first_chunk, end_of_turn)`` in ms (see the module docstring);
    ``None`` when the first chunk or the published frame is missing."""
    if not stages or stages.get("tts_first_chunk") is None or stages.get("first_frame_published") is None:
        return None
    released = float(stages["tts_first_chunk"])
    if stages.get("end_of_turn") is not None:
        released = max(released, float(stages["end_of_turn"]))
    return (float(stages["first_frame_published"]) - released) * 1000.0


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

"""Turn-taking from the user's and the agent's audio timelines on one clock (seconds).

* ``activity_intervals``: sound intervals of a signal as host-clock times.
* ``stop_time_ms``: for a ``stop`` segment, user onset -> the agent's last audible
  sample of the speech it was producing at that moment.
* ``false_yield``: for an ``ignore`` segment (backchannel, cough), whether the agent,
  speaking at the onset, fell silent for >= 300 ms starting within 1 s.
* ``talk_over_ms``: total time both were audible.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from autortc.audio.energy import SignalEnergy, runs, signal_energy

Interval = tuple[float, float]

__all__ = ["activity_intervals", "stop_time_ms", "false_yield", "talk_over_ms"]


def activity_intervals(x: np.ndarray, sr: int, to_time: Callable[[int], float], *,
                       merge_ms: float = 50.0, min_ms: float = 30.0,
                       energy: SignalEnergy | None = None) -> list[Interval]:
    """Sound intervals of ``x`` as ``(t_start, t_end)`` seconds on the shared clock.

    ``to_time(sample_index) -> seconds`` maps samples to the clock (for the probe,
    :func:`autortc.metrics.latency.sample_arrival_time`; for user.wav,
    ``t_audio_start + i / sr``).  Silences shorter than ``merge_ms`` are bridged.
    Sound = 10 ms frame RMS at or above the seed adaptive threshold (``energy``, when the
    caller has computed it for ``x``).
    """
    if energy is None:
        energy = signal_energy(x, sr)
    energy.check(x, sr)
    hop, frame = energy.hop, energy.frame
    iv = [(a * hop, (b - 1) * hop + frame) for a, b in runs(energy.rms >= energy.threshold)]
    merged: list[list[int]] = []
    for a, b in iv:
        if merged and (a - merged[-1][1]) / sr * 1000 < merge_ms:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    return [(to_time(a), to_time(b)) for a, b in merged if (b - a) / sr * 1000 >= min_ms]


def _active_at(iv: Sequence[Interval], t: float, *, bridge_ms: float = 0.0) -> int | None:
    """Index of the interval sounding at ``t``; a pause shorter than ``bridge_ms`` counts as sounding
    (a barge-in that starts between two words still lands on speech)."""
    for i, (a, b) in enumerate(iv):
        if a <= t < b:
            return i
        nxt = iv[i + 1][0] if i + 1 < len(iv) else None
        if b <= t and nxt is not None and t < nxt and (nxt - b) * 1000 < bridge_ms:
            return i
    return None


def silences_between(iv: Sequence[Interval]) -> list[Interval]:
    """The pauses between consecutive sound intervals."""
    return [(iv[k][1], iv[k + 1][0]) for k in range(len(iv) - 1)]


def stop_time_ms(agent: Sequence[Interval], t_user_onset: float, *, bridge_ms: float = 300.0,
                 cut_reply: Interval | None = None) -> float | None:
    """ms from the user's onset to the end of the agent speech active then (pauses < ``bridge_ms`` bridged).

    ``cut_reply``: ``(t_first_audible, t_reply_end)`` of a reply the agent reports as interrupted,
    with ``agent`` holding that reply's audio only. An onset inside it barged in on a reply in
    progress, wherever it falls: the stop time runs to the reply's last audible sample after the
    onset (0 when nothing of it sounded after the onset), across any pause of the reply — in a
    longer pause (between two sentences, a TTS segment that came late: rx4), and just before one
    (bench run bench-20261203-171935-barge-06: the onset 15 ms before "Once upon a time,"'s comma
    pause; bridging only pauses < ``bridge_ms`` stopped there and reported 15 ms while the reply
    went on for 1.2 s).

    ``None`` when the agent was not speaking at the onset (nothing to stop).
    """
    if cut_reply is not None and cut_reply[0] <= t_user_onset < cut_reply[1]:
        after = [b for _, b in agent if b > t_user_onset]
        return (max(after) - t_user_onset) * 1000.0 if after else 0.0
    i = _active_at(agent, t_user_onset, bridge_ms=bridge_ms)
    if i is None:
        return None
    end = agent[i][1]
    for a, b in agent[i + 1:]:
        if (a - end) * 1000 < bridge_ms:
            end = b
        else:
            break
    return (end - t_user_onset) * 1000.0


def false_yield(agent: Sequence[Interval], t_user_onset: float, *, within_s: float = 1.0,
                min_silence_ms: float = 300.0, intended: Sequence[Interval] = (),
                tolerance_ms: float = 150.0) -> bool | None:
    """Did the agent, speaking at ``t_user_onset``, go silent >= ``min_silence_ms`` starting within ``within_s``?

    ``intended``: pauses the agent meant (from its pre-RTC copy, mapped to the same clock);
    a silence inside one of them, give or take ``tolerance_ms`` at each edge, is the
    agent's own sentence pause, not a yield. ``None`` when the agent was not speaking at
    the onset. A reply that simply ends in that second also counts (the user cannot tell
    the two apart).
    """
    i = _active_at(agent, t_user_onset, bridge_ms=min_silence_ms)
    if i is None:
        return None
    tol = tolerance_ms / 1000.0
    for k in range(i, len(agent)):
        end = agent[k][1]
        if end > t_user_onset + within_s:
            return False
        nxt = agent[k + 1][0] if k + 1 < len(agent) else float("inf")
        if (nxt - end) * 1000 >= min_silence_ms:
            if any(a - tol <= end and nxt <= b + tol for a, b in intended):
                continue
            return True
    return False


def talk_over_ms(user: Sequence[Interval], agent: Sequence[Interval]) -> float:
    """Total overlap (ms) of the two interval lists."""
    tot = 0.0
    for a, b in user:
        for c, d in agent:
            tot += max(0.0, min(b, d) - max(a, c))
    return tot * 1000.0

"""When the agent's audio output had nothing to play inside a reply (pure functions).

Input: ``agent.replies[i].runs`` of trace.json, the agent framework's own playback runs
(LiveKit Agents' ``playback_progressed``: ``[offset s into the reply's audio, monotonic s it
began to play, s played]``). The room output starts a new run when its audio source ran dry
and the next frame came late: the user hears that wait as a hole, and the agent's pre-RTC copy
(its frames one after another) does not show it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DRY_MIN_MS = 0.0
"""Every break between two runs of the same audio counts. LiveKit Agents starts a new run only when
its source had run out by its own queue accounting, and the native source sends 10 ms ticks, so
even a wait it dates under a millisecond can cost a tick: rx10 endpoint_short_hello, a break dated
0.3 ms 50 ms into the reply and a 15 ms hole heard there; rx9, 2.7 ms and a 15 ms hole (rx11/rx12
also had 0.3-0.4 ms breaks with no hole). Breaks at a barge-in's stop are left out
(:data:`STOP_MARGIN_S`), jumps in offset are dropped audio (:data:`CONTIGUOUS_MS`)."""

CONTIGUOUS_MS = 5.0
"""Two runs whose offsets join within this much are one stretch of audio played with a wait in
between; a larger jump means audio was dropped (a pause or a barge-in), which is turn-taking."""


@dataclass(frozen=True)
class DrySpan:
    """The output played nothing from ``t_start`` to ``t_end`` (monotonic s), ``offset_s`` into the reply."""

    offset_s: float
    t_start: float
    t_end: float

    @property
    def ms(self) -> float:
        return (self.t_end - self.t_start) * 1000.0


STOP_MARGIN_S = 0.05
"""Run breaks this close to where an interrupted reply stopped are the stop (LiveKit Agents pauses,
then cuts the output: rx9 turn_barge_in_stop split its last 7 ms into two runs), not waits."""


def dry_spans(runs: Sequence[Sequence[float]], *, min_ms: float = DRY_MIN_MS,
              contiguous_ms: float = CONTIGUOUS_MS, stopped_at_s: float | None = None) -> list[DrySpan]:
    """Waits of at least ``min_ms`` between runs that continue the same audio, in offset order.

    ``stopped_at_s``: where an interrupted reply stopped (its ``playback_position_s``); breaks
    within :data:`STOP_MARGIN_S` of it are left out.
    """
    rs = sorted((float(o), float(t), float(d)) for o, t, d in runs)
    out = []
    for (o1, t1, d1), (o2, t2, _d2) in zip(rs, rs[1:]):
        if abs(o2 - (o1 + d1)) * 1000.0 > contiguous_ms:
            continue
        if stopped_at_s is not None and o2 >= stopped_at_s - STOP_MARGIN_S:
            continue
        # a new run is LiveKit's own word that it ran dry, even when its dates overlap: it dates a
        # run's start back from where the run ended, so a run that waited and then played on can
        # look as if it began before the last one ended (b0 endpoint_short_hello: a break at 50 ms
        # dated -16 ms, a 15 ms hole heard there): such a break is a wait of unknown length, 0 here
        end = max(t2, t1 + d1)
        if (end - (t1 + d1)) * 1000.0 >= min_ms:
            out.append(DrySpan(offset_s=o2, t_start=t1 + d1, t_end=end))
    return out

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

DRY_MIN_MS = 1.0
"""Shorter waits between two runs are timestamp noise. LiveKit Agents starts a new run only when
its source had run out by its own queue accounting, and the native source sends 10 ms ticks, so
a wait it dates at 2.7 ms was heard as a 15 ms hole 40 ms into a reply (suite run rx9,
endpoint_short_hello): every such wait counts, not only long ones. Runs split by a barge-in join
within ~0.4 ms (rx9 turn_barge_in_stop)."""

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


def dry_spans(runs: Sequence[Sequence[float]], *, min_ms: float = DRY_MIN_MS,
              contiguous_ms: float = CONTIGUOUS_MS) -> list[DrySpan]:
    """Waits of at least ``min_ms`` between runs that continue the same audio, in offset order."""
    rs = sorted((float(o), float(t), float(d)) for o, t, d in runs)
    out = []
    for (o1, t1, d1), (o2, t2, _d2) in zip(rs, rs[1:]):
        if abs(o2 - (o1 + d1)) * 1000.0 > contiguous_ms:
            continue
        if (t2 - (t1 + d1)) * 1000.0 >= min_ms:
            out.append(DrySpan(offset_s=o2, t_start=t1 + d1, t_end=t2))
    return out

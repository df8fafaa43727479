"""How many rooms of a run may have a turn live at once.

``--jobs N`` opens N rooms at once. What a room costs the machine is mostly not its live turn:
creating the room, the bots joining, the agent's job starting and passing the double ACK, the
user leaving and the agent releasing its audio, and the analysis of the recorded turn (whisper on
the heard reply). The live turn — the user speaking until the agent is done answering — is
what is measured, and on a small machine a second live turn beside it changes what is measured:
on 2 cores two simultaneous turns of the bundled agent put the EoT → first audio P95 20–50 %
higher and flip verdicts (docs/agent-latency.md, "Parallel rooms").

:class:`LiveSlots` lets the rooms overlap everything but that: a turn takes a slot from the
moment it starts (``turn_start``, then the user's first segment) until the agent is done with it
(:func:`autortc.runner.conversation.settle`: replies ended, quiet, trace and pre-RTC copies in),
and gives it back before its files are written. With ``n`` = ``--jobs`` every room talks at once
(a load test: the agent serving that many calls).

Measured on 2 cores (docs/agent-latency.md, session 20): one live turn at a time halves the second
room's damage, it does not remove it (EoT P95 +23-27 %, the user's end of speech reaching the agent
~45 ms later while the other room joins, tears down and is analysed; every room talking: +42 %), so
``run_suite.sh`` keeps ``--jobs 1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

log = logging.getLogger("autortc.runner")


class LiveSlots:
    """At most ``n`` live turns at once (``n`` ≥ 1; raises ``ValueError`` otherwise).

    ``waits_s``: seconds each turn waited for its slot, in the order they got one.
    """

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"concurrent turns: expected >= 1, got {n!r}")
        self.n = n
        self._sem = asyncio.Semaphore(n)
        self.waits_s: list[float] = []

    @contextlib.asynccontextmanager
    async def slot(self, trace_id: str) -> AsyncIterator[None]:
        """Hold one slot for the turn ``trace_id`` (waits while ``n`` turns are live)."""
        t0 = time.monotonic()
        async with self._sem:
            waited = time.monotonic() - t0
            self.waits_s.append(waited)
            if waited >= 0.01:
                log.info("trace_id=%s waited %.1f s for a live slot (%d turn(s) live at once)", trace_id, waited, self.n)
            yield


def hold(slots: LiveSlots | None, trace_id: str) -> contextlib.AbstractAsyncContextManager[None]:
    """``slots.slot(trace_id)``, or nothing to wait for when the run sets no limit (``slots`` None)."""
    return slots.slot(trace_id) if slots is not None else contextlib.nullcontext()

"""How many rooms of a run may have a turn live at once, and what may happen beside a live turn.

``--jobs N`` opens N rooms at once. What a room costs the machine is mostly not its live turn:
creating the room (the agent's job starts), the bots joining and passing the double ACK, the user
leaving and the agent closing its session, and the analysis of the recorded turn (whisper on the
heard reply). The live turn — the user speaking until the agent is done answering — is what is
measured, and on a small machine a second live turn beside it changes what is measured: on 2
cores two simultaneous turns of the bundled agent put the EoT → first audio P95 20–50 % higher
and flip verdicts (docs/agent-latency.md, "Parallel rooms").

:class:`LiveSlots` lets the rooms overlap everything but that: a turn takes a slot from the moment
it starts (``turn_start``, then the user's first segment) until the agent is done with it
(:func:`autortc.runner.conversation.settle`: replies ended, quiet, trace and pre-RTC copies in),
and gives it back before its files are written.

**Quiet turns** (one live turn at a time, or fewer than rooms): the harness's own work around a
turn (:meth:`LiveSlots.between_turns`) never runs beside a live turn: a room's setup and teardown
(room creation with the agent's dispatch, joins, the double ACK, the user leaving, the agent
closing its session, the room's deletion) and a case's results (its files, the run's summary, the
terminal line: work on the event loop that paces the user's mic). Such work waits until no turn
is live; a turn waits to start while it runs or waits, so it goes first between two turns (each
case has three: joining, leaving, results). What still runs beside a live turn is the other rooms'
idle media (their mic sends silence) and the analysis worker, a process of its own that only takes
idle CPU (:data:`autortc.runner.analysis.ANALYSIS_NICE`). Measured on 2 cores (docs/agent-latency.md,
sessions 20 and 24): with setups and teardowns beside the live turn,
the user's end of speech reached the agent ~45 ms later and the EoT P95 rose 23–27 %; kept apart,
``--jobs 2`` matched ``--jobs 1`` at full speed and at a 1.43-core quota, not at 1.0 core (an idle
joined room costs ~20 % of a core), and saved no time, so ``run_suite.sh`` keeps ``--jobs 1``. With
the analysis beside the next case, its results written on the loop during that case's turn held
the user's mic back by up to 52 ms (runs n1-n3): hence the results wait too.

With as many slots as rooms (``--concurrent-turns`` = ``--jobs`` ≥ 2) every room talks at once and
nothing waits for a gap: a load test of the agent serving that many calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

log = logging.getLogger("autortc.runner")


class LiveSlots:
    """At most ``n`` live turns at once (``n`` ≥ 1; raises ``ValueError`` otherwise).

    ``rooms``: how many rooms the run opens at once (``--jobs``); the work between turns is kept
    away from live turns unless every room may talk (``n == rooms`` ≥ 2; :attr:`quiet`).
    ``waits_s``: seconds each turn waited for its slot (and for work between turns), in the order
    they got one; ``between_waits_s``: seconds each piece of work between turns waited for live turns.
    """

    def __init__(self, n: int, *, rooms: int | None = None) -> None:
        if n < 1:
            raise ValueError(f"concurrent turns: expected >= 1, got {n!r}")
        self.n = n
        rooms = n if rooms is None else rooms
        self.quiet = n == 1 or n < rooms
        self._sem = asyncio.Semaphore(n)
        self._live = 0  # turns holding a slot
        self._between = 0  # pieces of work between turns running
        self._between_waiting = 0  # pieces of work between turns waiting for the live turns to end
        self._changed = asyncio.Event()  # set (and replaced) on every change of the three counts
        self.waits_s: list[float] = []
        self.between_waits_s: list[float] = []

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _until(self, ready: Callable[[], bool]) -> None:
        while not ready():
            await self._changed.wait()

    @contextlib.asynccontextmanager
    async def slot(self, trace_id: str) -> AsyncIterator[None]:
        """Hold one slot for the turn ``trace_id`` (waits while ``n`` turns are live and, with
        :attr:`quiet`, while work between turns runs or waits)."""
        t0 = time.monotonic()
        async with self._sem:
            if self.quiet:
                await self._until(lambda: self._between == 0 and self._between_waiting == 0)
            waited = time.monotonic() - t0
            self.waits_s.append(waited)
            if waited >= 0.01:
                log.info("trace_id=%s waited %.1f s for a live slot (%d turn(s) live at once)", trace_id, waited, self.n)
            self._live += 1
            try:
                yield
            finally:
                self._live -= 1
                self._notify()

    @contextlib.asynccontextmanager
    async def between_turns(self, what: str) -> AsyncIterator[None]:
        """Run ``what`` (a room's setup or teardown, a case's results; named for the log) while no
        turn is live (with :attr:`quiet`; otherwise at once).

        Cancelled while waiting, the body still runs (a room that has joined must be left and
        deleted: a half-closed room in the SDK's native runtime aborts the process at exit), then
        ``CancelledError`` is raised again.
        """
        cancelled: asyncio.CancelledError | None = None
        if self.quiet:
            t0 = time.monotonic()
            self._between_waiting += 1
            try:
                await self._until(lambda: self._live == 0)
            except asyncio.CancelledError as exc:
                cancelled = exc
            finally:
                self._between_waiting -= 1
            waited = time.monotonic() - t0
            self.between_waits_s.append(waited)
            if waited >= 0.01:
                log.debug("%s waited %.1f s for the live turn to end", what, waited)
        self._between += 1
        try:
            yield
        finally:
            self._between -= 1
            self._notify()
        if cancelled is not None:
            raise cancelled


def hold(slots: LiveSlots | None, trace_id: str) -> contextlib.AbstractAsyncContextManager[None]:
    """``slots.slot(trace_id)``, or nothing to wait for when the run sets no limit (``slots`` None)."""
    return slots.slot(trace_id) if slots is not None else contextlib.nullcontext()


def between_turns(slots: LiveSlots | None, what: str) -> contextlib.AbstractAsyncContextManager[None]:
    """``slots.between_turns(what)``, or nothing to wait for when the run sets no limit (``slots`` None)."""
    return slots.between_turns(what) if slots is not None else contextlib.nullcontext()

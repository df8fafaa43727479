"""Waits with a timeout whose error names the barrier that did not come, and the errors that
mean "the harness could not set the turn up" (the runner retries exactly these in a fresh room)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from livekit import rtc

T = TypeVar("T")
log = logging.getLogger(__name__)


class HarnessSetupError(RuntimeError):
    """The harness could not set the turn up (a barrier, an anchor or the reply events never came,
    the room could not be joined); a fresh room may not have the problem, so it is retried.
    Any other exception is a bug or a real failure: the case fails with its traceback."""


class BarrierTimeout(HarnessSetupError, TimeoutError):
    """``barrier`` did not happen within ``timeout_s``; a harness failure (exit code 2)."""

    def __init__(self, barrier: str, timeout_s: float, detail: str = "") -> None:
        self.barrier = barrier
        self.timeout_s = timeout_s
        super().__init__(f"barrier '{barrier}' did not come within {timeout_s:.1f} s" + (f": {detail}" if detail else ""))


async def raise_task_errors(tasks: list["asyncio.Task[object] | None"], *, owner: str) -> None:
    """Await finished/cancelled owned tasks and raise the first real error (not a cancellation)
    so a crashed task surfaces at ``aclose()`` instead of as a later timeout."""
    errors = []
    for t in tasks:
        if t is None:
            continue
        try:
            await t
        except asyncio.CancelledError:
            cur = asyncio.current_task()
            if cur is not None and cur.cancelling():
                raise  # our own caller is being cancelled (Ctrl-C): never swallow that
            continue  # the owned task was cancelled: not an error
        except Exception as exc:  # collected: every task is awaited before raising
            errors.append((t.get_name(), exc))
    if errors:
        name, exc = errors[0]
        raise RuntimeError(f"{owner}: task {name!r} failed: {type(exc).__name__}: {exc}") from exc


async def wait_for(aw: Awaitable[T], *, barrier: str, timeout_s: float, detail: str = "") -> T:
    try:
        return await asyncio.wait_for(aw, timeout_s)
    except asyncio.TimeoutError as exc:
        raise BarrierTimeout(barrier, timeout_s, detail) from exc


async def join_room(room: "rtc.Room", url: str, token: str, options: "rtc.RoomOptions | None" = None, *,
                    barrier: str, timeout_s: float, settle_s: float = 10.0) -> None:
    """``room.connect(url, token, options)`` within ``timeout_s`` that leaves no half-joined room behind.

    Cancelling ``Room.connect`` (a barrier timeout, Ctrl-C) stops only the Python side's wait: the
    native runtime goes on joining and then waits for the Python side to take the room's events, and
    ``Room.disconnect`` is a no-op on a room whose ``connect`` never returned. That room stays in the SFU
    and in the runtime, which gives up on it a few seconds later with a panic that aborts the whole
    process (livekit 1.1.21: "timed out waiting for ReadyForRoomEventRequest after ConnectCallback", then
    SIGABRT; seen as exit -6 of a Ctrl-C'd run). So the connect runs as its own task: on a timeout or a
    cancellation it gets up to ``settle_s`` s to finish, and a room that joined is left at once.

    Raises :class:`BarrierTimeout` (``barrier``) on a timeout, the cancellation when cancelled, and
    ``rtc.ConnectError`` when the SFU refused the join."""
    task = asyncio.ensure_future(room.connect(url, token, options) if options is not None else room.connect(url, token))
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout_s)
    except asyncio.TimeoutError as exc:
        log.info("%s: join given up after %.1f s; letting it settle", barrier, timeout_s)
        await _leave_half_joined(room, task, settle_s)
        raise BarrierTimeout(barrier, timeout_s) from exc
    except asyncio.CancelledError:
        log.info("%s: join cancelled; letting it settle", barrier)
        await _leave_half_joined(room, task, settle_s)
        raise


async def _leave_half_joined(room: "rtc.Room", task: "asyncio.Future[None]", settle_s: float) -> None:
    done, _ = await asyncio.wait({task}, timeout=settle_s)
    if not done:
        task.cancel()
        log.warning("room join still pending %.1f s after it was given up: the native runtime may keep it", settle_s)
        return
    if task.cancelled() or task.exception() is not None:
        log.info("the given-up join ended without a room: %r", "cancelled" if task.cancelled() else task.exception())
        return  # never joined: nothing to leave
    try:
        await asyncio.wait_for(room.disconnect(), settle_s)
        log.info("left the room whose join was given up")
    except Exception:
        log.exception("leaving a room whose join was given up")

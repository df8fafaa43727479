"""Waits with a timeout whose error names the barrier that did not come, and the errors that
mean "the harness could not set the turn up" (the runner retries exactly these in a fresh room)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


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

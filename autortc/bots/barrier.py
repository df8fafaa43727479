"""Waits with a timeout whose error names the barrier that did not come."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class BarrierTimeout(TimeoutError):
    """``barrier`` did not happen within ``timeout_s``; a harness failure (exit code 2)."""

    def __init__(self, barrier: str, timeout_s: float, detail: str = "") -> None:
        self.barrier = barrier
        self.timeout_s = timeout_s
        super().__init__(f"barrier '{barrier}' did not come within {timeout_s:.1f} s" + (f": {detail}" if detail else ""))


async def wait_for(aw: Awaitable[T], *, barrier: str, timeout_s: float, detail: str = "") -> T:
    try:
        return await asyncio.wait_for(aw, timeout_s)
    except asyncio.TimeoutError as exc:
        raise BarrierTimeout(barrier, timeout_s, detail) from exc

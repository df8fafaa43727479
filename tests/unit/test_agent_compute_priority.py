"""The agent's compute threads run niced; the caller's thread is left alone (Linux per-thread nice)."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from system.agent.compute_priority import nice_this_thread, niced_executor

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")


def _my_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_executor_thread_is_niced_and_the_caller_is_not() -> None:
    before = _my_nice()
    target = min(19, before + 7)
    ex = niced_executor("t", target)
    try:
        assert ex.submit(_my_nice).result(timeout=10) == target
    finally:
        ex.shutdown()
    assert _my_nice() == before


def test_zero_leaves_the_thread_alone() -> None:
    before = _my_nice()
    nice_this_thread(0)
    assert _my_nice() == before

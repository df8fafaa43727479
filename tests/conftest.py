"""Shared fixtures.

``stack``: the real voice-agent stack (LiveKit SFU + agent worker + token server) for
e2e tests. A stack that is already running (``autortc stack up``) is reused; otherwise
it is started for the session and stopped, process groups and all, at the end.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class RunningStack:
    livekit_url: str
    token_url: str
    target: object  # autortc.bots.target.Target


@pytest.fixture(scope="session")
def stack():
    from autortc.commands.run import bundled_target, bundled_token_url
    from system.stack import Stack, StackOptions

    s = Stack(StackOptions())
    started = False
    if not s.is_up():
        s.up()
        started = True
    target = bundled_target()
    try:
        yield RunningStack(livekit_url=target.livekit_url, token_url=bundled_token_url(), target=target)
    finally:
        if started:
            s.down()


@pytest.fixture
async def task_guard():
    """Fails an async test that leaves asyncio tasks running (STYLE: every task has an owner)."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)  # let just-finished tasks settle
    leaked = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task() and not t.done()]
    assert not leaked, f"leaked asyncio tasks: {[t.get_name() for t in leaked]}"

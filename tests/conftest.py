"""Shared fixtures.

``stack``: the real voice-agent stack (LiveKit SFU + agent worker + token server) for
e2e tests. A stack that is already running (``autortc stack up``) is reused; otherwise
it is started for the session and stopped, process groups and all, at the end.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class RunningStack:
    livekit_url: str
    token_url: str
    target: object  # autortc.bots.target.Target


@pytest.fixture(scope="session")
def stack():
    from autortc.bots.target import Target
    from system.agent.config import AGENT_NAME
    from system.credentials import load_or_create
    from system.stack import Stack, StackOptions

    s = Stack(StackOptions())
    started = False
    if not s.is_up():
        s.up()
        started = True
    state = json.loads(s.state_path.read_text())
    creds = load_or_create()
    target = Target(livekit_url=state["livekit_url"], api_key=creds.api_key, api_secret=creds.api_secret, agent_name=AGENT_NAME)
    try:
        yield RunningStack(livekit_url=state["livekit_url"], token_url=state["token_url"], target=target)
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

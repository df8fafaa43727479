"""Leaving a case's room: the user hangs up first, the probe stays until the agent has left on its
own, then the probe leaves (and the runner deletes the room). A room deleted under the agent strands
its published track in the LiveKit SDK for the life of its process (livekit/rust-sdks#1443)."""

from __future__ import annotations

import asyncio

import pytest
from livekit import rtc

from autortc.bots.probe_bot import ProbeBot
from autortc.bots.target import Target
from autortc.runner.conversation import TurnTimeouts
from autortc.runner.users import BotUser

pytestmark = pytest.mark.unit

TARGET = Target(livekit_url="ws://127.0.0.1:1", api_key="k", api_secret="s")


class _Publication:
    def __init__(self, sid: str) -> None:
        self.sid, self.kind = sid, rtc.TrackKind.KIND_AUDIO


class _Participant:
    def __init__(self, identity: str) -> None:
        self.identity = identity
        self.track_publications = {"TR_1": _Publication("TR_1")}


class _Room:
    def __init__(self, identities: list[str]) -> None:
        self.remote_participants = {i: _Participant(i) for i in identities}


async def test_wait_agent_left_returns_when_the_recorded_agent_leaves():
    probe = ProbeBot(TARGET, room="r")
    probe.room = _Room(["agent-1", "autortc-user"])  # type: ignore[assignment]
    probe._agent_seen = "agent-1"
    assert await probe.wait_agent_left(timeout_s=0.05) is False  # still there: the wait times out
    waiter = asyncio.ensure_future(probe.wait_agent_left(timeout_s=5.0))
    await asyncio.sleep(0)
    probe._on_participant_left(_Participant("autortc-user"))  # someone else leaving changes nothing
    await asyncio.sleep(0)
    assert not waiter.done()
    probe._on_participant_left(_Participant("agent-1"))
    assert await asyncio.wait_for(waiter, 1.0) is True


async def test_wait_agent_left_returns_when_the_agent_unpublishes_its_audio():
    probe = ProbeBot(TARGET, room="r")
    probe.room = _Room(["agent-1"])  # type: ignore[assignment]
    probe._agent_seen = "agent-1"
    agent = probe.room.remote_participants["agent-1"]
    waiter = asyncio.ensure_future(probe.wait_agent_left(timeout_s=5.0))
    await asyncio.sleep(0)
    pub = agent.track_publications.pop("TR_1")  # the SDK drops the publication, then emits
    probe._on_track_unpublished(pub, agent)
    assert await asyncio.wait_for(waiter, 1.0) is True
    assert await probe.wait_agent_left(timeout_s=0.05) is True  # released: no second wait


async def test_wait_agent_left_does_not_wait_for_an_agent_not_in_the_room():
    probe = ProbeBot(TARGET, room="r")
    probe.room = _Room(["autortc-user"])  # type: ignore[assignment]
    assert await probe.wait_agent_left(timeout_s=5.0) is True  # none recorded
    probe._agent_seen = "agent-1"
    assert await probe.wait_agent_left(timeout_s=5.0) is True  # recorded, already gone


class _Side:
    def __init__(self, name: str, calls: list[str], *, fail: bool = False, agent_leaves: bool = True) -> None:
        self.name, self.calls, self.fail, self.agent_leaves = name, calls, fail, agent_leaves
        self.room_name = "r"

    async def aclose(self) -> None:
        self.calls.append(f"{self.name}.aclose")
        if self.fail:
            raise RuntimeError(f"{self.name} failed")

    async def wait_agent_left(self, *, timeout_s: float) -> bool:
        self.calls.append(f"{self.name}.wait_agent_left({timeout_s})")
        return self.agent_leaves


@pytest.mark.parametrize("agent_leaves", [True, False])
async def test_bot_user_leaves_first_and_the_probe_waits_for_the_agent(agent_leaves):
    calls: list[str] = []
    user = BotUser(TARGET, room="r", run_id="run", timeouts=TurnTimeouts(leave_s=3.0))
    user.user = _Side("user", calls)  # type: ignore[assignment]
    user.probe = _Side("probe", calls, agent_leaves=agent_leaves)  # type: ignore[assignment]
    await user.aclose()
    assert calls == ["user.aclose", "probe.wait_agent_left(3.0)", "probe.aclose"]


async def test_a_failing_user_close_still_closes_the_probe_and_is_raised():
    calls: list[str] = []
    user = BotUser(TARGET, room="r", run_id="run")
    user.user = _Side("user", calls, fail=True)  # type: ignore[assignment]
    user.probe = _Side("probe", calls)  # type: ignore[assignment]
    with pytest.raises(RuntimeError, match="user failed"):
        await user.aclose()
    assert calls[-1] == "probe.aclose"

"""The harness subscribes to the agent's audio once: the probe takes it, the user bot takes nothing.

Every remote audio track a LiveKit SDK participant subscribes to is decoded by the SDK's audio device
every 10 ms whether or not anything reads it. With the SDK's default (subscribe to everything) the
harness decoded three Opus streams beside the agent under test on the same 2 cores: the agent's audio in
the user bot (never read), the user's microphone in the probe (never read) and the agent's audio in the
probe (the recording). Planted: a real room with the bundled agent; measured: what each bot's room says
it is subscribed to, and that the probe records the agent.
"""

from __future__ import annotations

import asyncio

import pytest
from livekit import rtc

from autortc.bots.target import CaseRoom
from autortc.runner.users import BotUser

pytestmark = pytest.mark.e2e


def _subscriptions(room: rtc.Room) -> dict[tuple[str, str], bool]:
    """(participant identity, track name) -> subscribed, for every remote audio publication."""
    return {(p.identity, pub.name): pub.subscribed
            for p in room.remote_participants.values()
            for pub in p.track_publications.values() if pub.kind == rtc.TrackKind.KIND_AUDIO}


def test_only_the_probe_subscribes_and_only_to_the_agent(stack):
    async def main() -> tuple[dict, dict, str, int]:
        name = "e2e-bot-subscriptions"
        async with CaseRoom(stack.target, name, metadata={"run_id": name}):
            side = BotUser(stack.target, room=name, run_id=name)
            try:
                await side.join()  # connect both, the probe's double ACK, the user's agent_ready
                # the user's mic was published at its connect, before the probe joined
                user, probe = side.user, side.probe
                return _subscriptions(user.room), _subscriptions(probe.room), probe._agent_seen or "", probe.samples
            finally:
                await side.aclose()  # the user leaves first, the probe once the agent released its audio

    user_subs, probe_subs, agent, recorded = asyncio.run(main())
    assert agent, "the probe never picked the agent's audio"
    assert recorded > 0, "the probe recorded nothing of the agent"
    assert any(ident == agent for ident, _ in user_subs), f"the user bot does not see the agent's track: {user_subs}"
    assert not any(user_subs.values()), f"the user bot subscribed to audio it never reads: {user_subs}"
    probe_agent = {k: v for k, v in probe_subs.items() if k[0] == agent}
    probe_other = {k: v for k, v in probe_subs.items() if k[0] != agent}
    assert probe_agent and all(probe_agent.values()), f"the probe is not subscribed to the agent: {probe_subs}"
    assert probe_other, f"the probe does not see the user's microphone: {probe_subs}"
    assert not any(probe_other.values()), f"the probe subscribed to audio other than the agent's: {probe_subs}"

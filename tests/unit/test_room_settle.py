"""A room's first turn starts only after its connection has carried the mic's silence for
``TurnTimeouts.settle_s`` past the double ACK, waited before the turn takes its live slot; later turns
do not wait. Truth: a fake clock and the calls the fakes record (no real waiting)."""

from __future__ import annotations

import pytest

from autortc.bots.target import Target
from autortc.runner import users as users_mod
from autortc.runner.conversation import TurnTimeouts
from autortc.runner.users import BotUser

pytestmark = pytest.mark.unit

TARGET = Target(livekit_url="ws://127.0.0.1:1", api_key="k", api_secret="s")


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def monotonic(self) -> float:
        return self.t


class _Bot:
    async def connect(self) -> None:
        pass

    async def wait_agent_ready(self, *, timeout_s: float) -> None:
        pass


@pytest.fixture
async def room(monkeypatch):
    clock, events = _Clock(), []

    async def sleep(s: float) -> None:
        events.append(("sleep", round(s, 3)))
        clock.t += s

    async def probe_ready(probe, timeout_s):
        pass

    async def run_turn(**kw):
        events.append(("turn", kw["trace_id"], clock.t))  # run_turn is what takes the live slot
        return kw["trace_id"]

    monkeypatch.setattr(users_mod, "time", clock)
    monkeypatch.setattr(users_mod, "_settle_sleep", sleep)
    monkeypatch.setattr(users_mod, "probe_ready", probe_ready)
    monkeypatch.setattr(users_mod, "run_turn", run_turn)
    monkeypatch.setattr(users_mod, "require_replies", lambda *a, **k: None)
    u = BotUser(TARGET, room="r", run_id="run", timeouts=TurnTimeouts(settle_s=3.0))
    u.user, u.probe = _Bot(), _Bot()  # type: ignore[assignment]
    return u, clock, events


async def test_the_first_turn_waits_for_the_connection_to_settle_and_the_next_does_not(room, tmp_path):
    u, clock, events = room
    await u.join()  # double ACK at t = 100
    clock.t += 0.5  # the runner's own work before the turn
    await u.play_turn(None, trace_id="t0", turn_index=0, out_dir=tmp_path)  # type: ignore[arg-type]
    await u.play_turn(None, trace_id="t1", turn_index=1, out_dir=tmp_path)  # type: ignore[arg-type]
    assert events == [("sleep", 2.5), ("turn", "t0", 103.0), ("turn", "t1", 103.0)]


async def test_a_room_that_waited_long_enough_for_its_slot_does_not_wait_again(room, tmp_path):
    u, clock, events = room
    await u.join()
    clock.t += 7.0  # e.g. --jobs 2: it waited for the other room's turn
    await u.play_turn(None, trace_id="t0", turn_index=0, out_dir=tmp_path)  # type: ignore[arg-type]
    assert events == [("turn", "t0", 107.0)]

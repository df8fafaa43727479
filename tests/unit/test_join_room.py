"""join_room: a join given up (timeout, Ctrl-C) never leaves a half-joined room behind.

The fake room stands in for ``rtc.Room``: its connect finishes only when the test says so (the
native runtime going on joining after the Python side stopped waiting), and it records whether
``disconnect`` ran while it was connected."""

from __future__ import annotations

import asyncio

import pytest

from autortc.bots.barrier import BarrierTimeout, join_room


class FakeRoom:
    def __init__(self, *, fail: bool = False) -> None:
        self.release = asyncio.Event()
        self.fail = fail
        self.connected = False
        self.left_while_connected = False

    async def connect(self, url: str, token: str, options: object = None) -> None:
        await self.release.wait()
        if self.fail:
            raise ConnectionError("refused")
        self.connected = True

    async def disconnect(self) -> None:  # like rtc.Room: a no-op unless connect returned
        if self.connected:
            self.left_while_connected = True
            self.connected = False


async def _cancel_mid_join(room: FakeRoom, **kw) -> None:
    joiner = asyncio.create_task(join_room(room, "ws://x", "t", barrier="user_connect", timeout_s=30, **kw))
    await asyncio.sleep(0.01)  # the joiner is waiting for the connect
    joiner.cancel()
    await asyncio.sleep(0.01)
    assert not joiner.done(), "join_room returned before the connect it gave up had settled"
    room.release.set()  # the runtime finishes the join after the Ctrl-C
    with pytest.raises(asyncio.CancelledError):
        await joiner


def test_cancelled_join_leaves_the_room_once_it_joined():
    room = FakeRoom()
    asyncio.run(_cancel_mid_join(room))
    assert room.left_while_connected and not room.connected


def test_cancelled_join_that_failed_has_nothing_to_leave():
    room = FakeRoom(fail=True)
    asyncio.run(_cancel_mid_join(room))
    assert not room.left_while_connected


def test_timeout_names_the_barrier_and_leaves_the_late_room():
    room = FakeRoom()

    async def main() -> None:
        async def late_release() -> None:
            await asyncio.sleep(0.15)
            room.release.set()

        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(late_release()))
        with pytest.raises(BarrierTimeout, match="probe_connect"):
            await join_room(room, "ws://x", "t", barrier="probe_connect", timeout_s=0.05)

    asyncio.run(main())
    assert room.left_while_connected and not room.connected


def test_join_that_never_settles_is_abandoned_after_settle_s():
    room = FakeRoom()

    async def main() -> None:
        with pytest.raises(BarrierTimeout):
            await join_room(room, "ws://x", "t", barrier="user_connect", timeout_s=0.02, settle_s=0.05)

    asyncio.run(main())
    assert not room.connected and not room.left_while_connected


def test_plain_join_returns_connected():
    room = FakeRoom()

    async def main() -> None:
        room.release.set()
        await join_room(room, "ws://x", "t", barrier="user_connect", timeout_s=1)

    asyncio.run(main())
    assert room.connected and not room.left_while_connected

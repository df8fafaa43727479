"""The bundled agent's start cushion (system/agent/start_cushion.py) over LiveKit Agents' real
AudioOutput base: a reply reaches the room output only with ``min_ms`` in hand, then frames pass."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from livekit import rtc

from system.agent.start_cushion import StartCushion
from tests.unit.test_fault_output import SR, Sink

pytestmark = pytest.mark.unit


def frame(ms: float, value: int = 1000) -> rtc.AudioFrame:
    n = int(SR * ms / 1000)
    return rtc.AudioFrame(np.full(n, value, np.int16).tobytes(), SR, 1, n)


def test_first_frames_are_held_until_min_ms_then_pass_one_by_one():
    async def go():
        sink = Sink()
        cushion = StartCushion(sink, min_ms=70.0)
        await cushion.capture_frame(frame(38.75, 1))
        assert sink.frames == []  # 39 ms in hand: the room output would start and run dry
        await cushion.capture_frame(frame(38.75, 2))
        assert [f.data[0] for f in sink.frames] == [1, 2]  # 77 ms: both at once, in order
        await cushion.capture_frame(frame(38.75, 3))
        assert len(sink.frames) == 3  # then each frame as it comes
        cushion.flush()
        await asyncio.sleep(0)
        assert sink.events[-1] == "flush"
        # the next reply is held again
        await cushion.capture_frame(frame(20.0, 4))
        assert len(sink.frames) == 3

    asyncio.run(go())


def test_a_reply_shorter_than_min_ms_is_handed_on_at_its_flush_before_the_next_reply():
    async def go():
        sink = Sink()
        cushion = StartCushion(sink, min_ms=70.0)
        await cushion.capture_frame(frame(30.0, 1))
        cushion.flush()
        await cushion.capture_frame(frame(30.0, 2))  # the next reply waits for the hand-on
        assert [f.data[0] for f in sink.frames] == [1]
        assert sink.events == ["frame", "flush"]

    asyncio.run(go())


def test_a_cleared_reply_drops_its_held_frames():
    async def go():
        sink = Sink()
        cushion = StartCushion(sink, min_ms=70.0)
        await cushion.capture_frame(frame(30.0))
        cushion.clear_buffer()
        assert sink.frames == [] and sink.events == ["clear"]
        await cushion.capture_frame(frame(80.0, 5))
        assert [f.data[0] for f in sink.frames] == [5]

    asyncio.run(go())


def test_negative_min_ms_is_refused():
    with pytest.raises(ValueError, match="min_ms"):
        StartCushion(Sink(), min_ms=-1)


def test_pause_and_resume_reach_the_room_output_once():
    """AudioOutput.pause/resume forward down the chain already; a wrapper that forwarded again
    paused the room output twice (the protocol's recorder did, until session 6)."""
    from autortc.protocol.livekit_agents import AutoRTCAgentProtocol, _ReplyRecorder

    calls: list[str] = []

    class Room(Sink):
        def pause(self) -> None:
            calls.append("pause")

        def resume(self) -> None:
            calls.append("resume")

    recorder = _ReplyRecorder(AutoRTCAgentProtocol.__new__(AutoRTCAgentProtocol), Room())
    chain = StartCushion(recorder, min_ms=70.0)
    chain.pause()
    chain.resume()
    assert calls == ["pause", "resume"]

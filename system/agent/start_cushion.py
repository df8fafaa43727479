"""A reply starts playing only with some audio in hand (the bundled agent's output chain).

LiveKit Agents' room output starts playing a reply at its first frame. At a reply's start the
agent's event loop is busy (the turn's final transcript, the reply's events, the next TTS
segment), and the frames that piper made within 3 ms reached the output chain 6-71 ms apart
(runs dbg1/dbg2, 38.7 ms frames): when the second came more than one frame later, the source
ran dry and the user heard a 15-25 ms hole 25-110 ms into the reply (suite runs rx4, rx8, rx9:
the P0 ``audible_dropout`` FAILs of otherwise clean runs, the agent's own playback runs showing
the wait). :class:`StartCushion` holds a reply's first frames until ``min_ms`` of audio is there
and hands them on at once, so the source starts with that much queued.

Cost: the first audio waits until ``min_ms`` of frames are there (at 150 ms the 4th frame, 10-27 ms
after the first in dbg1/dbg2, 86 ms at worst); suite runs rx11/rx12 with it: EoT -> first audio P50
873 / 902 ms against 875-941 without in the same hour, inside the spread.
"""

from __future__ import annotations

import asyncio
import logging

from livekit import rtc
from livekit.agents.voice import io as voice_io

log = logging.getLogger("autortc.agent")


class StartCushion(voice_io.AudioOutput):
    """Pass-through ``AudioOutput`` that holds each reply's first frames until ``min_ms`` of
    audio (or the reply's end) is there. Frames after that pass one by one, untouched."""

    def __init__(self, next_output: voice_io.AudioOutput, *, min_ms: float) -> None:
        if min_ms < 0:
            raise ValueError(f"StartCushion min_ms: expected >= 0, got {min_ms!r}")
        super().__init__(label="AutoRTCAgent.StartCushion", next_in_chain=next_output,
                         capabilities=voice_io.AudioOutputCapabilities(pause=True))
        self._min_s = min_ms / 1000.0
        self._held: list[rtc.AudioFrame] | None = []  # None: this reply is playing, frames pass
        self._tail: asyncio.Task[None] | None = None  # a short reply's frames handed on at flush

    @property
    def sample_rate(self) -> int | None:
        return self.next_in_chain.sample_rate if self.next_in_chain else None

    async def _hand_on(self, frames: list[rtc.AudioFrame]) -> None:
        assert self.next_in_chain is not None
        for f in frames:
            await self.next_in_chain.capture_frame(f)

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        if self._tail is not None:  # the previous (short) reply's frames go first
            tail, self._tail = self._tail, None
            await asyncio.wait({tail})  # a cancelled (cleared) hand-on is no error here
        await super().capture_frame(frame)
        if self._held is None:
            assert self.next_in_chain is not None
            await self.next_in_chain.capture_frame(frame)
            return
        self._held.append(frame)
        if sum(f.duration for f in self._held) >= self._min_s:
            held, self._held = self._held, None
            await self._hand_on(held)

    def flush(self) -> None:
        super().flush()
        held, self._held = self._held, []  # the next reply starts held again
        if not held:
            if self.next_in_chain:
                self.next_in_chain.flush()
            return

        async def release() -> None:
            await self._hand_on(held)
            if self.next_in_chain:
                self.next_in_chain.flush()

        self._tail = asyncio.get_running_loop().create_task(release(), name="autortc.agent.cushion.release")
        self._tail.add_done_callback(_log_failure)

    def clear_buffer(self) -> None:
        self._held = []  # held frames of the interrupted reply are dropped
        if self._tail is not None and not self._tail.done():
            self._tail.cancel()
        self._tail = None
        if self.next_in_chain:
            self.next_in_chain.clear_buffer()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("start cushion: handing on a short reply failed", exc_info=task.exception())

"""The user bot: publishes the case audio as its microphone, in real time, as 10 ms frames.

The mic never unpublishes and never mutes: between and after segments it sends
silence (seed: a padded WAV, not a mic mute). Every published sample is kept, so
``user.wav`` is exactly the stream the agent received and the user's end of turn
is a sample index in it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import numpy as np
from livekit import rtc

from autortc.bots.barrier import BarrierTimeout, join_room, raise_task_errors, wait_for
from autortc.bots.mic import MicTimeline, PlacedSegment, run_paced
from autortc.bots.target import Target
from autortc.protocol.messages import TOPIC, ProtocolError, decode, encode, make

log = logging.getLogger("autortc.bots.user")

FRAME_MS = 10
MIC_LEAD_MS = 150
"""How far ahead of its time the mic's audio is queued in LiveKit's native source (ms; a multiple of
10). A harness loop held up less than this leaves the user's speech on the wire untouched
(:mod:`autortc.bots.mic`). Session 25 (``scripts/loop_stalls.py``, docs/agent-latency.md): the
harness's loop stalled 30-50 ms when not scheduled and 96-119 ms in a full garbage collection;
with a 20 ms queue a 151 ms stall cut 120 ms out of "I have a question." as the agent heard it.
150 ms leaves those stalls ~30-50 ms of margin (100 ms let a 90 ms stall through as a 9 ms hole once,
in a unit test under CI load).
The price: a segment placed while the mic runs starts at least this much after it is placed
(the bundled cases anchor theirs >= 300 ms ahead)."""


class UserBot:
    def __init__(self, target: Target, *, room: str, sr: int = 16000, identity: str = "autortc-user") -> None:
        self.target = target
        self.room_name = room
        self.identity = identity
        self.room = rtc.Room()
        self.mic = MicTimeline(sr=sr, frame_samples=sr * FRAME_MS // 1000)
        self.agent_ready = asyncio.Event()
        # the native source completes a capture at once while it holds <= queue_size_ms: the lead
        # plus two frames of slack
        self._source = rtc.AudioSource(sr, 1, queue_size_ms=MIC_LEAD_MS + FRAME_MS * 2)
        self._stop = asyncio.Event()
        self._mic_task: asyncio.Task[None] | None = None

    async def connect(self, *, timeout_s: float = 15.0) -> None:
        self.room.on("data_received", self._on_data)
        token = self.target.token(room=self.room_name, identity=self.identity)
        # The user bot only speaks: what the user hears is the probe's recording. Subscribing would
        # make the SDK decode the agent's audio a second time in this process, beside the agent under test.
        await join_room(self.room, self.target.livekit_url, token, rtc.RoomOptions(auto_subscribe=False),
                        barrier="user_connect", timeout_s=timeout_s)
        track = rtc.LocalAudioTrack.create_audio_track("microphone", self._source)
        await self.room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        self._mic_task = asyncio.create_task(run_paced(self.mic, self._capture, stop=self._stop, lead_s=MIC_LEAD_MS / 1000), name="user.mic")
        deadline = time.monotonic() + timeout_s
        while self.mic.t0 is None:  # first frame handed to the SDK
            if self._mic_task.done():
                await raise_task_errors([self._mic_task], owner=f"user bot in room {self.room_name}")
            if time.monotonic() > deadline:
                raise BarrierTimeout("mic_first_frame", timeout_s, "the paced mic never handed a frame to the SDK")
            await asyncio.sleep(0.001)

    async def _capture(self, pcm: np.ndarray) -> None:
        frame = rtc.AudioFrame(pcm.tobytes(), self.mic.sr, 1, pcm.size)
        await self._source.capture_frame(frame)

    def _on_data(self, packet: rtc.DataPacket) -> None:
        if packet.topic != TOPIC:
            return
        try:
            msg = decode(packet.data)
        except ProtocolError:
            return
        if msg["type"] == "agent_ready":
            self.agent_ready.set()

    async def wait_agent_ready(self, *, timeout_s: float = 30.0) -> None:
        await wait_for(self.agent_ready.wait(), barrier="agent_ready(user)", timeout_s=timeout_s)

    async def start_turn(self, trace_id: str, **info: Any) -> None:
        await self.room.local_participant.publish_data(
            encode(make("turn_start", trace_id=trace_id, **info)), reliable=True, topic=TOPIC
        )
        log.info("trace_id=%s turn_start sent", trace_id)

    def place(self, *, index: int, pcm: np.ndarray, at_time: float, speech_start: int, speech_end: int) -> PlacedSegment:
        """Put a segment on the mic so it starts at clock time ``at_time`` (rounded to the next frame if past)."""
        margin = self.mic.frame_samples * 2  # never place into a frame already handed over
        start = max(self.mic.sample_at(at_time), self.mic.published_samples + margin)
        seg = PlacedSegment(index=index, start_sample=start, pcm=pcm, speech_start=speech_start, speech_end=speech_end)
        self.mic.place(seg)
        return seg

    async def wait_published(self, sample: int, *, timeout_s: float) -> None:
        """Until the mic has handed the SDK up to ``sample`` (driven by the paced mic, polled per frame;
        the sample goes out ``MIC_LEAD_MS`` later, at ``mic.time_of(sample)``).

        Raises ``BarrierTimeout('mic_published')`` naming the sample when the mic stalls, and the
        mic task's own error at once when it crashed (not a timeout later)."""
        deadline = time.monotonic() + timeout_s
        while self.mic.published_samples < sample:
            if self._mic_task is not None and self._mic_task.done():
                await raise_task_errors([self._mic_task], owner=f"user bot in room {self.room_name}")
                raise BarrierTimeout("mic_published", timeout_s, f"the mic task ended at sample {self.mic.published_samples}")
            if time.monotonic() > deadline:
                raise BarrierTimeout("mic_published", timeout_s,
                                     f"the mic reached sample {self.mic.published_samples}, not {sample}")
            await asyncio.sleep(FRAME_MS / 1000)

    async def aclose(self) -> None:
        """Stop the mic, leave the room; raises the mic task's error if it crashed."""
        self._stop.set()
        try:
            await raise_task_errors([self._mic_task], owner=f"user bot in room {self.room_name}")
        finally:
            await self.room.disconnect()

"""The probe bot: records what the user would hear, keyed by ``trace_id``.

It subscribes to the agent's audio, keeps every 10 ms frame with its arrival time
on ``CLOCK_MONOTONIC`` (for inter-arrival jitter and sample-accurate timing), and
collects the agent's protocol events and pre-RTC WAVs for the current trace only
(events of another ``trace_id`` are stale and dropped: the seed was bitten by a
stale ``reply_seq``).
"""

from __future__ import annotations

import asyncio
import bisect
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soundfile as sf
from livekit import rtc

from autortc.artifacts import ReceiverSample
from autortc.bots.barrier import BarrierTimeout, join_room, raise_task_errors, wait_for
from autortc.bots.receiver_stats import poll_receiver
from autortc.bots.target import Target
from autortc.protocol.messages import AGENT_INPUT_TOPIC, PRE_RTC_TOPIC, TOPIC, ProtocolError, decode, encode, make

log = logging.getLogger("autortc.bots.probe")

PROBE_SR = 48000
from autortc.audio.energy import AUDIBLE_RMS, rms  # live onset for anchors only (metrics re-detect sample-accurately)


@dataclass
class ReplyEvents:
    reply_index: int
    start_msg: dict[str, Any] | None = None
    end_msg: dict[str, Any] | None = None
    t_start_recv: float | None = None
    t_end_recv: float | None = None
    start_sample: int | None = None  # probe sample count when reply_start arrived
    end_sample: int | None = None
    onset_sample: int | None = None  # first audible probe sample at/after start_sample (10 ms grid)


@dataclass
class TraceEvents:
    trace_id: str
    replies: dict[int, ReplyEvents] = field(default_factory=dict)
    trace_msg: dict[str, Any] | None = None
    pre_rtc: dict[int, tuple[np.ndarray, int]] = field(default_factory=dict)  # reply_index -> (int16, sr)
    agent_input: tuple[np.ndarray, int] | None = None  # the longest agent-input copy received: (int16, sr)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class ProbeBot:
    def __init__(self, target: Target, *, room: str, identity: str = "autortc-probe", agent_identity: str | None = None) -> None:
        self.target = target
        self.room_name = room
        self.identity = identity
        self.agent_identity = agent_identity
        self.room = rtc.Room()
        self.frames: list[np.ndarray] = []
        self.arrivals: list[tuple[float, int]] = []  # (t_mono, first sample index)
        self.samples = 0
        self.agent_ready = asyncio.Event()
        self._first_frame = asyncio.Event()
        self._track_fut: asyncio.Future[rtc.RemoteAudioTrack] = asyncio.get_event_loop().create_future()
        self._trace: TraceEvents | None = None
        self._record_task: asyncio.Task[None] | None = None
        # the receiver's counters of the agent's audio, read every ~0.1 s (receiver_stats.py)
        self.receiver: list[ReceiverSample] = []
        self._stats_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._agent_seen: str | None = None  # identity of the agent whose audio is recorded
        self._agent_released = asyncio.Event()

    # -- connection and barriers ----------------------------------------------------------

    async def connect(self, *, timeout_s: float = 15.0) -> None:
        self.room.on("track_subscribed", self._on_track)
        self.room.on("track_published", self._on_published)
        self.room.on("data_received", self._on_data)
        self.room.on("participant_disconnected", self._on_participant_left)
        self.room.on("track_unpublished", self._on_track_unpublished)
        self.room.register_byte_stream_handler(PRE_RTC_TOPIC, self._on_pre_rtc)
        self.room.register_byte_stream_handler(AGENT_INPUT_TOPIC, self._on_agent_input)
        token = self.target.token(room=self.room_name, identity=self.identity, kind="agent")
        # kind=agent: observers are not "the user" for agents that link to the first standard participant
        # Only the agent's audio is subscribed: every subscribed remote audio track is decoded by the
        # SDK's audio device every 10 ms whether or not anything reads it (the user's microphone would
        # be a second Opus stream decoded beside the agent under test, for nothing).
        await join_room(self.room, self.target.livekit_url, token, rtc.RoomOptions(auto_subscribe=False),
                        barrier="probe_connect", timeout_s=timeout_s)
        for p in self.room.remote_participants.values():
            for pub in p.track_publications.values():
                if pub.track is not None and pub.kind == rtc.TrackKind.KIND_AUDIO:
                    self._on_track(pub.track, pub, p)
                else:
                    self._on_published(pub, p)

    async def ready(self, *, timeout_s: float = 30.0) -> None:
        """Subscribe to the agent's audio, see its first frame, send ``probe_ready``, await ``agent_ready``."""
        track = await wait_for(self._track_fut, barrier="agent_audio_track", timeout_s=timeout_s,
                               detail="no agent audio track was subscribed (is the agent dispatched to this room?)")
        self._record_task = asyncio.create_task(self._record(track), name="probe.record")
        self._stats_task = asyncio.create_task(poll_receiver(track, self.receiver, room_name=self.room_name),
                                               name="probe.receiver_stats")
        await wait_for(self._first_frame.wait(), barrier="agent_audio_first_frame", timeout_s=10.0)
        t0 = time.monotonic()
        while not self.agent_ready.is_set():
            await self.room.local_participant.publish_data(encode(make("probe_ready")), reliable=True, topic=TOPIC)
            try:
                await asyncio.wait_for(self.agent_ready.wait(), 2.0)  # resend: a late-starting agent session may miss the first
            except asyncio.TimeoutError:
                if time.monotonic() - t0 > timeout_s:
                    raise await_barrier_error("agent_ready", timeout_s) from None
        log.info("room=%s probe ready, agent_ready after %.0f ms", self.room_name, (time.monotonic() - t0) * 1000)

    def _is_agent(self, participant: rtc.RemoteParticipant) -> bool:
        if self.agent_identity:
            return participant.identity == self.agent_identity
        return participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT

    def _on_published(self, pub: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant) -> None:
        if pub.kind == rtc.TrackKind.KIND_AUDIO and not self._track_fut.done() and self._is_agent(participant):
            pub.set_subscribed(True)

    def _on_track(self, track: rtc.Track, pub: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant) -> None:
        if track.kind != rtc.TrackKind.KIND_AUDIO or self._track_fut.done():
            return
        if not self._is_agent(participant):
            return
        log.info("room=%s subscribed to agent %s track %s", self.room_name, participant.identity, track.sid)
        self._agent_seen = participant.identity
        self._track_fut.set_result(track)  # type: ignore[arg-type]

    def _on_participant_left(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity == self._agent_seen:
            self._agent_released.set()

    def _on_track_unpublished(self, pub: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant) -> None:
        if participant.identity == self._agent_seen and not self._published_by(participant):
            self._agent_released.set()  # its media released: the rest of its leaving holds nothing native

    @staticmethod
    def _published_by(participant: rtc.RemoteParticipant) -> bool:
        return any(p.kind == rtc.TrackKind.KIND_AUDIO for p in participant.track_publications.values())

    async def wait_agent_left(self, *, timeout_s: float) -> bool:
        """Wait until the agent whose audio this probe records has released its audio track
        (unpublished it) or left the room, on its own.

        True when it did (or none was seen, or it is already gone), False after ``timeout_s``
        seconds with it still publishing. Called once the user has left, before the room is
        deleted: a room the server ends under the agent strands the agent's published track in
        the LiveKit SDK (one native ``AudioSourceCapture`` thread per room, ~0.25 % of a core each
        for the life of the agent's process: livekit/rust-sdks#1443), so a long run would slow the
        agent under test with every case it served.
        """
        ident = self._agent_seen
        if ident is None or self._agent_released.is_set():
            return True
        agent = next((p for p in self.room.remote_participants.values() if p.identity == ident), None)
        if agent is None or not self._published_by(agent):
            return True
        try:
            await asyncio.wait_for(self._agent_released.wait(), timeout_s)
        except asyncio.TimeoutError:
            return False
        return True

    async def _record(self, track: rtc.RemoteAudioTrack) -> None:
        stream = rtc.AudioStream.from_track(track=track, sample_rate=PROBE_SR, num_channels=1)
        try:
            async for ev in stream:
                t = time.monotonic()
                pcm = np.frombuffer(ev.frame.data, dtype=np.int16).copy()
                self.arrivals.append((t, self.samples))
                self.frames.append(pcm)
                start = self.samples
                self.samples += pcm.size
                self._first_frame.set()
                self._track_onset(pcm, start)
        finally:
            await stream.aclose()

    def _track_onset(self, pcm: np.ndarray, start: int) -> None:
        tr = self._trace
        if rms(pcm) >= AUDIBLE_RMS and tr is not None:
            for r in tr.replies.values():
                if r.onset_sample is None and r.start_sample is not None and start + pcm.size > r.start_sample:
                    r.onset_sample = max(start, r.start_sample)
                    tr.changed.set()

    def time_of_sample(self, sample: int) -> float:
        """Arrival-clock time of probe sample ``sample`` (frame arrival + offset in frame)."""
        i = bisect.bisect_right(self.arrivals, sample, key=lambda a: a[1]) - 1
        if i < 0:
            return self.arrivals[0][0]
        t, s0 = self.arrivals[i]
        return t + (sample - s0) / PROBE_SR

    # -- protocol events ------------------------------------------------------------------

    def begin_trace(self, trace_id: str) -> TraceEvents:
        self._trace = TraceEvents(trace_id)
        return self._trace

    def _on_data(self, packet: rtc.DataPacket) -> None:
        if packet.topic != TOPIC:
            return
        t = time.monotonic()
        try:
            msg = decode(packet.data)
        except ProtocolError as exc:
            log.warning("room=%s bad AutoRTC packet: %s", self.room_name, exc)
            return
        kind = msg["type"]
        if kind == "agent_ready":
            self.agent_ready.set()
            return
        tr = self._trace
        if tr is None or msg.get("trace_id") != tr.trace_id:
            if kind in ("reply_start", "reply_end", "trace"):
                log.debug("room=%s dropping stale %s for trace_id=%s", self.room_name, kind, msg.get("trace_id"))
            return
        if kind in ("reply_start", "reply_end"):
            r = tr.replies.setdefault(int(msg["reply_index"]), ReplyEvents(int(msg["reply_index"])))
            if kind == "reply_start":
                r.start_msg, r.t_start_recv, r.start_sample = msg, t, self.samples
            else:
                r.end_msg, r.t_end_recv, r.end_sample = msg, t, self.samples
            log.info("trace_id=%s %s reply=%s at probe sample %d", tr.trace_id, kind, msg["reply_index"], self.samples)
        elif kind == "trace":
            tr.trace_msg = msg
        tr.changed.set()

    def _on_pre_rtc(self, reader: rtc.ByteStreamReader, participant_identity: str) -> None:
        self._read_wav_stream(reader, "pre-RTC", self._store_pre_rtc)

    def _on_agent_input(self, reader: rtc.ByteStreamReader, participant_identity: str) -> None:
        self._read_wav_stream(reader, "agent-input", self._store_agent_input)

    def _read_wav_stream(self, reader: rtc.ByteStreamReader, what: str,
                         store: Callable[[TraceEvents, np.ndarray, int, dict[str, str]], None]) -> None:
        task = asyncio.create_task(self._read_wav(reader, what, store), name=f"probe.{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read_wav(self, reader: rtc.ByteStreamReader, what: str,
                        store: Callable[[TraceEvents, np.ndarray, int, dict[str, str]], None]) -> None:
        """Read a WAV byte stream of the current trace and hand ``store`` its (n,) int16 first channel,
        its rate and the stream's attributes; a stream of another trace is dropped, a non-WAV logged."""
        chunks = [c async for c in reader]
        attrs = dict(reader.info.attributes or {})
        tr = self._trace
        if tr is None or attrs.get("trace_id") != tr.trace_id:
            return
        try:
            data, sr = sf.read(io.BytesIO(b"".join(chunks)), dtype="int16")
        except Exception as exc:
            log.warning("trace_id=%s %s stream is not a WAV: %s", tr.trace_id, what, exc)
            return
        store(tr, data.reshape(-1) if data.ndim == 1 else data[:, 0], sr, attrs)
        tr.changed.set()

    @staticmethod
    def _store_pre_rtc(tr: TraceEvents, pcm: np.ndarray, sr: int, attrs: dict[str, str]) -> None:
        tr.pre_rtc[int(attrs.get("reply_index", "0"))] = (pcm, sr)

    @staticmethod
    def _store_agent_input(tr: TraceEvents, pcm: np.ndarray, sr: int, attrs: dict[str, str]) -> None:
        if tr.agent_input is None or pcm.size >= tr.agent_input[0].size:  # the copies are cumulative
            tr.agent_input = (pcm, sr)

    # -- results --------------------------------------------------------------------------

    def pcm(self, start: int = 0, end: int | None = None) -> np.ndarray:
        full = np.concatenate(self.frames) if self.frames else np.zeros(0, np.int16)
        return full[start:end]

    async def aclose(self) -> None:
        """Stop recording, leave the room; raises the recorder's or a pre-RTC reader's error."""
        rec_crashed = self._record_task is not None and self._record_task.done()
        if self._record_task is not None and not rec_crashed:
            self._record_task.cancel()
        if self._stats_task is not None and not self._stats_task.done():
            self._stats_task.cancel()
        pending = list(self._tasks)
        if pending:
            await asyncio.wait(pending, timeout=2)
            for t in pending:
                if not t.done():
                    t.cancel()
        try:
            await raise_task_errors([self._record_task, self._stats_task, *pending], owner=f"probe in room {self.room_name}")
        finally:
            await self.room.disconnect()


def await_barrier_error(name: str, timeout_s: float) -> Exception:
    return BarrierTimeout(name, timeout_s, "the agent never answered probe_ready (does it speak the AutoRTC protocol?)")

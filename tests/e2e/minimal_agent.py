"""A minimal voice agent that speaks the AutoRTC agent protocol, written from ``docs/protocol.md`` alone.

It exists to show that a user's own agent can be tested by AutoRTC: it uses only the
``livekit`` Python SDK (``rtc`` for the room, nothing from LiveKit Agents, nothing from
``autortc``), and its behaviour is known exactly, so what AutoRTC measures can be checked
against it:

* end of user speech: an energy detector (20 ms windows, RMS >= 0.01 of full scale is speech,
  end of speech = 400 ms of windows below the threshold after speech);
* the reply starts a fixed 300 ms after that decision;
* the reply is a fixed, speech-like signal: 1.5 s of a 220 Hz harmonic tone with a 4 Hz
  syllable-rate amplitude modulation, peak 0.3 of full scale, 48 kHz mono, handed to the
  audio source in 10 ms frames paced by the clock.

So the agent's own EoT -> first frame is ``end_silence_ms + reply_delay_ms`` (700 ms by
default) plus the user->agent WebRTC path; AutoRTC adds the agent->probe path to it.

Protocol (``docs/protocol.md``): JSON messages on the reliable data topic ``autortc``; answers
``agent_ready`` to every ``probe_ready``; binds each reply to the latest ``turn_start``'s
``trace_id``; sends ``reply_start`` when the reply's first frame is handed to the source,
``reply_end`` when its last frame has played out (or it was cut by the user speaking again),
then a cumulative ``trace`` and the pre-RTC WAV as a byte stream on ``autortc.pre_rtc``.
Between replies it publishes silence, so the probe has frames to subscribe to before the first reply.

Run it by hand against any room::

    python tests/e2e/minimal_agent.py --url ws://127.0.0.1:7880 --token <agent token>
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import soundfile as sf
from livekit import rtc

log = logging.getLogger("minimal_agent")

PROTOCOL_TOPIC = "autortc"
PRE_RTC_TOPIC = "autortc.pre_rtc"
PROTOCOL_VERSION = 1
_TRACE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


# -- options --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MinimalAgentOptions:
    """Everything that fixes the agent's behaviour (and so its known delay).

    ``end_silence_ms`` + ``reply_delay_ms`` is the agent's own delay from the end of the user's
    speech (as it hears it) to the first frame of its reply.
    """

    sample_rate: int = 48000  # published track, Hz
    frame_ms: int = 10  # published frame length
    listen_rate: int = 16000  # the user's audio is resampled to this for the detector, Hz
    vad_window_ms: int = 20
    vad_rms_threshold: float = 0.01  # of full scale (-40 dBFS)
    vad_min_speech_ms: int = 40  # loud windows in a row before speech counts as started
    end_silence_ms: int = 400
    reply_delay_ms: int = 300
    reply_duration_s: float = 1.5
    reply_f0_hz: float = 220.0
    reply_harmonics: int = 6
    reply_syllable_hz: float = 4.0
    reply_level: float = 0.3  # peak, of full scale
    source_queue_ms: int = 100  # AudioSource buffer; frames are paced, so it holds ~1 frame
    connect_timeout_s: float = 10.0
    agent_label: str = "autortc-minimal-agent/1"

    @property
    def known_delay_ms(self) -> float:
        """End of speech (as heard by the agent) -> first reply frame handed to the source."""
        return float(self.end_silence_ms + self.reply_delay_ms)


# -- the reply signal -----------------------------------------------------------------------


def synth_reply(opts: MinimalAgentOptions) -> np.ndarray:
    """The fixed reply: int16 mono at ``opts.sample_rate``, ``reply_duration_s`` long.

    A harmonic tone (``reply_harmonics`` partials of ``reply_f0_hz``, amplitudes 1/k) under a
    syllable-rate envelope ``0.6 + 0.4 cos(2 pi f_syl t)``: it never drops to silence inside the
    reply (no gaps for continuity metrics to find) and is at full envelope at sample 0, so the
    first audible sample is the first sample. A 10 ms fade-out avoids a click at the end.
    """
    sr = opts.sample_rate
    n = int(round(opts.reply_duration_s * sr))
    t = np.arange(n, dtype=np.float64) / sr
    tone = sum(np.sin(2 * np.pi * opts.reply_f0_hz * k * t) / k for k in range(1, opts.reply_harmonics + 1))
    tone /= np.max(np.abs(tone))
    env = 0.6 + 0.4 * np.cos(2 * np.pi * opts.reply_syllable_hz * t)
    fade = min(n, sr // 100)
    env[n - fade:] *= np.linspace(1.0, 0.0, fade)
    x = opts.reply_level * tone * env
    return np.round(x * 32767.0).astype(np.int16)


# -- end-of-speech detector (pure: no clock, positions in samples) -------------------------------


@dataclass(frozen=True)
class SpeechEvent:
    """``sample``: stream position (samples) at which the event was decided (end of the deciding window)."""

    kind: Literal["speech_start", "end_of_speech"]
    sample: int


class EnergyEndpointer:
    """RMS energy detector over fixed windows of a mono float32 stream (full scale = 1.0).

    Speech starts after ``min_speech_ms`` of windows at or above ``rms_threshold``; it ends
    after ``end_silence_ms`` of windows below it. Feed any chunk size with :meth:`push`.
    """

    def __init__(self, *, sample_rate: int, window_ms: int, rms_threshold: float, min_speech_ms: int,
                 end_silence_ms: int) -> None:
        self._win = sample_rate * window_ms // 1000
        self._thr = rms_threshold
        self._start_windows = max(1, -(-min_speech_ms // window_ms))
        self._end_windows = max(1, -(-end_silence_ms // window_ms))
        self._buf = np.zeros(0, dtype=np.float32)
        self._pos = 0  # samples consumed into whole windows
        self._loud = 0
        self._quiet = 0
        self.in_speech = False

    def push(self, samples: np.ndarray) -> list[SpeechEvent]:
        self._buf = np.concatenate([self._buf, np.asarray(samples, dtype=np.float32)])
        events: list[SpeechEvent] = []
        while len(self._buf) >= self._win:
            w, self._buf = self._buf[: self._win], self._buf[self._win:]
            self._pos += self._win
            loud = float(np.sqrt(np.mean(w * w))) >= self._thr
            self._loud = self._loud + 1 if loud else 0
            self._quiet = 0 if loud else self._quiet + 1
            if not self.in_speech and self._loud >= self._start_windows:
                self.in_speech = True
                events.append(SpeechEvent("speech_start", self._pos))
            elif self.in_speech and self._quiet >= self._end_windows:
                self.in_speech = False
                events.append(SpeechEvent("end_of_speech", self._pos))
        return events


# -- protocol messages ----------------------------------------------------------------------------


class BadMessage(ValueError):
    """A packet on the ``autortc`` topic that is not a valid v1 message."""


def encode_message(type_: str, **fields: Any) -> bytes:
    """One v1 message as UTF-8 JSON (``v``, ``type``, ``t_mono``, ``t_wall`` + ``fields``; ``None`` fields dropped)."""
    msg = {"v": PROTOCOL_VERSION, "type": type_, "t_mono": time.monotonic(), "t_wall": time.time()}
    msg.update({k: v for k, v in fields.items() if v is not None})
    return json.dumps(msg, separators=(",", ":")).encode("utf-8")


def decode_message(payload: bytes) -> dict[str, Any]:
    """Parse and check one packet; :class:`BadMessage` says what is wrong. Extra fields are kept (and ignored)."""
    try:
        msg = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadMessage(f"not UTF-8 JSON: {exc}") from exc
    if not isinstance(msg, dict):
        raise BadMessage(f"expected a JSON object, got {type(msg).__name__}")
    if msg.get("v") != PROTOCOL_VERSION:
        raise BadMessage(f"v={msg.get('v')!r}, expected {PROTOCOL_VERSION}")
    if not isinstance(msg.get("type"), str):
        raise BadMessage("type: expected a string")
    for k in ("t_mono", "t_wall"):
        if isinstance(msg.get(k), bool) or not isinstance(msg.get(k), (int, float)):
            raise BadMessage(f"{k}: expected a number of seconds, got {msg.get(k)!r}")
    if "trace_id" in msg or msg["type"] == "turn_start":
        tid = msg.get("trace_id")
        if not isinstance(tid, str) or not _TRACE_ID.match(tid) or ".." in tid:
            raise BadMessage(f"trace_id {tid!r}: expected 1-128 of [A-Za-z0-9_.:-], starting alphanumeric, no '..'")
    return msg


# -- the agent ------------------------------------------------------------------------------------


@dataclass
class ReplyRecord:
    """What the agent did for one reply (monotonic seconds); the test compares it with AutoRTC's artifacts."""

    reply_index: int
    trace_id: str
    t_end_of_speech: float  # the detector's decision
    t_first_frame: float | None = None  # first frame handed to the AudioSource
    t_end: float | None = None  # last frame played out (estimated from the source queue) or cut
    interrupted: bool = False
    samples_published: int = 0


@dataclass
class _Playback:
    record: ReplyRecord
    pcm: np.ndarray
    first_frame: asyncio.Future[float]
    done: asyncio.Future[None]
    pos: int = 0
    cut: bool = False


@dataclass
class _TurnState:
    stages: dict[str, float] = field(default_factory=dict)


class MinimalAgent:
    """Joins ``url`` with ``token``, publishes one audio track, answers every end of user speech.

    ``await start()`` connects and publishes (raises ``ConnectionError`` on failure);
    ``await aclose()`` (idempotent) cancels and awaits every task it started, then leaves the room.
    ``replies`` lists a :class:`ReplyRecord` per reply, in order.
    """

    def __init__(self, *, url: str, token: str, options: MinimalAgentOptions | None = None) -> None:
        self._url = url
        self._token = token
        self.opts = options or MinimalAgentOptions()
        self._reply_pcm = synth_reply(self.opts)
        self._room = rtc.Room()
        self._source: rtc.AudioSource | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listeners: dict[str, asyncio.Task[None]] = {}
        self._pump_task: asyncio.Task[None] | None = None
        self._scheduled: asyncio.TimerHandle | None = None
        self._pending: deque[_Playback] = deque()
        self._playing: _Playback | None = None
        self._trace_id: str | None = None
        self._turns: dict[str, _TurnState] = {}
        self._next_reply_index = 0
        self._closed = False
        self._close_lock = asyncio.Lock()
        self.replies: list[ReplyRecord] = []
        self.probe_ready_count = 0
        self.disconnected = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._room.on("data_received", self._on_data)
        self._room.on("track_subscribed", self._on_track_subscribed)
        self._room.on("track_unsubscribed", self._on_track_unsubscribed)
        self._room.on("disconnected", self._on_disconnected)
        try:
            await asyncio.wait_for(self._room.connect(self._url, self._token), self.opts.connect_timeout_s)
        except (asyncio.TimeoutError, rtc.ConnectError) as exc:
            raise ConnectionError(f"minimal agent: could not join {self._url}: {exc!r}") from exc
        self._source = rtc.AudioSource(self.opts.sample_rate, 1, queue_size_ms=self.opts.source_queue_ms)
        track = rtc.LocalAudioTrack.create_audio_track("agent-voice", self._source)
        await self._room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
        self._pump_task = asyncio.create_task(self._pump(), name="minimal_agent.pump")
        log.info("room=%s joined as %s, publishing %d Hz mono", self._room.name,
                 self._room.local_participant.identity, self.opts.sample_rate)

    async def aclose(self) -> None:
        async with self._close_lock:
            if self._closed:
                return
            self._closed = True
            if self._scheduled is not None:
                self._scheduled.cancel()
            tasks = [t for t in (self._pump_task, *self._listeners.values(), *self._tasks) if t]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._listeners.clear()
            self._tasks.clear()
            try:
                await self._room.disconnect()
            except Exception:  # the runner may already have deleted the room
                log.debug("disconnect failed", exc_info=True)
            if self._source is not None:
                await self._source.aclose()

    async def __aenter__(self) -> MinimalAgent:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _on_disconnected(self, reason: Any = None) -> None:
        """The room is gone (deleted by the runner, or the server went away): stop speaking into it."""
        log.info("room=%s disconnected (%s)", self._room.name, reason)
        self.disconnected.set()
        if self._pump_task is not None:
            self._pump_task.cancel()

    def _spawn(self, coro: Any, name: str) -> None:
        if self._closed:
            coro.close()
            return
        t = asyncio.create_task(coro, name=name)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # -- protocol: receiving ----------------------------------------------------------------

    def _on_data(self, packet: rtc.DataPacket) -> None:
        if packet.topic != PROTOCOL_TOPIC:
            return
        sender = packet.participant.identity if packet.participant else "server"
        try:
            msg = decode_message(packet.data)
        except BadMessage as exc:
            log.warning("room=%s dropped a packet from %s on %r: %s", self._room.name, sender, PROTOCOL_TOPIC, exc)
            return
        if msg["type"] == "probe_ready":
            self.probe_ready_count += 1
            self._spawn(self._send("agent_ready", agent=self.opts.agent_label), "minimal_agent.agent_ready")
        elif msg["type"] == "turn_start":
            tid = msg["trace_id"]
            self._trace_id = tid
            self._turns.setdefault(tid, _TurnState()).stages["turn_start_received"] = time.monotonic()
            log.info("room=%s trace_id=%s turn_start (case=%s turn=%s)", self._room.name, tid,
                     msg.get("case_id"), msg.get("turn_index"))

    async def _send(self, type_: str, **fields: Any) -> None:
        await self._room.local_participant.publish_data(encode_message(type_, **fields), reliable=True,
                                                        topic=PROTOCOL_TOPIC)

    # -- listening to the user ----------------------------------------------------------------

    def _on_track_subscribed(self, track: rtc.Track, pub: rtc.RemoteTrackPublication,
                             participant: rtc.RemoteParticipant) -> None:
        if (track.kind != rtc.TrackKind.KIND_AUDIO or pub.source != rtc.TrackSource.SOURCE_MICROPHONE
                or participant.kind != rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD or self._closed):
            return
        log.info("room=%s listening to %s (%s)", self._room.name, participant.identity, pub.sid)
        self._listeners[pub.sid] = asyncio.create_task(self._listen(track, participant.identity),
                                                       name=f"minimal_agent.listen.{pub.sid}")

    def _on_track_unsubscribed(self, track: rtc.Track, pub: rtc.RemoteTrackPublication,
                               participant: rtc.RemoteParticipant) -> None:
        task = self._listeners.pop(pub.sid, None)
        if task:
            task.cancel()

    async def _listen(self, track: rtc.Track, who: str) -> None:
        o = self.opts
        vad = EnergyEndpointer(sample_rate=o.listen_rate, window_ms=o.vad_window_ms, rms_threshold=o.vad_rms_threshold,
                               min_speech_ms=o.vad_min_speech_ms, end_silence_ms=o.end_silence_ms)
        stream = rtc.AudioStream(track, sample_rate=o.listen_rate, num_channels=1)
        try:
            async for ev in stream:
                now = time.monotonic()  # arrival of this frame: the detector decides at its last sample
                pcm = np.frombuffer(ev.frame.data, dtype=np.int16).astype(np.float32) / 32768.0
                for sev in vad.push(pcm):
                    if sev.kind == "speech_start":
                        self._on_speech_start(now)
                    else:
                        self._on_end_of_speech(now)
        finally:
            await stream.aclose()

    def _stage(self, name: str, t: float, trace_id: str | None = None) -> None:
        tid = trace_id or self._trace_id
        if tid is not None:
            self._turns.setdefault(tid, _TurnState()).stages.setdefault(name, t)

    def _on_speech_start(self, now: float) -> None:
        self._stage("vad_speech_start", now)
        # the user talks again: a reply still waiting for its delay is dropped, one queued or playing is cut
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        for pb in (*self._pending, self._playing):
            if pb is not None:
                pb.cut = True
        log.info("room=%s trace_id=%s speech start", self._room.name, self._trace_id)

    def _on_end_of_speech(self, now: float) -> None:
        tid = self._trace_id
        if tid is None:
            log.warning("room=%s end of speech before any turn_start: not answering", self._room.name)
            return
        st = self._turns.setdefault(tid, _TurnState()).stages
        st.setdefault("vad_end_of_speech", now)
        st.setdefault("end_of_turn", now)
        log.info("room=%s trace_id=%s end of speech; replying in %d ms", self._room.name, tid, self.opts.reply_delay_ms)
        delay = max(0.0, now + self.opts.reply_delay_ms / 1000.0 - time.monotonic())
        self._scheduled = asyncio.get_running_loop().call_later(delay, self._begin_reply, tid, now)

    # -- speaking -------------------------------------------------------------------------------

    def _begin_reply(self, trace_id: str, t_eos: float) -> None:
        """The fixed delay is over: queue the reply for the pump and follow it with the protocol messages."""
        self._scheduled = None
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        rec = ReplyRecord(reply_index=self._next_reply_index, trace_id=trace_id, t_end_of_speech=t_eos)
        self._next_reply_index += 1
        self.replies.append(rec)
        self._stage("tts_request", time.monotonic(), trace_id)
        pb = _Playback(rec, self._reply_pcm, loop.create_future(), loop.create_future())
        self._pending.append(pb)
        self._spawn(self._follow_reply(pb), f"minimal_agent.reply.{rec.reply_index}")

    async def _follow_reply(self, pb: _Playback) -> None:
        rec, trace_id = pb.record, pb.record.trace_id
        rec.t_first_frame = await pb.first_frame
        if pb.pos == 0:  # cut while still queued: nothing went out, so nothing to announce
            log.info("room=%s trace_id=%s reply %d cut before its first frame", self._room.name, trace_id, rec.reply_index)
            return
        self._stage("first_frame_published", rec.t_first_frame, trace_id)
        await self._send("reply_start", trace_id=trace_id, reply_index=rec.reply_index,
                         t_first_frame_published=rec.t_first_frame)
        await pb.done
        assert rec.t_end is not None
        await asyncio.sleep(max(0.0, rec.t_end - time.monotonic()))  # until the last frame has played out
        self._turns[trace_id].stages["reply_end"] = rec.t_end
        await self._send("reply_end", trace_id=trace_id, reply_index=rec.reply_index, interrupted=rec.interrupted,
                         playback_position_s=rec.samples_published / self.opts.sample_rate, t_end=rec.t_end)
        await self._send("trace", trace_id=trace_id, stages=dict(self._turns[trace_id].stages))
        await self._send_pre_rtc(trace_id, rec.reply_index, pb.pcm[: rec.samples_published])
        log.info("room=%s trace_id=%s reply %d done (interrupted=%s)", self._room.name, trace_id, rec.reply_index,
                 rec.interrupted)

    async def _send_pre_rtc(self, trace_id: str, reply_index: int, pcm: np.ndarray) -> None:
        buf = io.BytesIO()
        sf.write(buf, pcm, self.opts.sample_rate, format="WAV", subtype="PCM_16")
        data = buf.getvalue()
        writer = await self._room.local_participant.stream_bytes(
            f"{trace_id}-reply{reply_index}.wav", total_size=len(data), mime_type="audio/wav",
            attributes={"trace_id": trace_id, "reply_index": str(reply_index)}, topic=PRE_RTC_TOPIC)
        try:
            await writer.write(data)
        finally:
            await writer.aclose()

    async def _pump(self) -> None:
        """The only writer of the AudioSource: one frame every ``frame_ms``, reply audio or silence.

        Frame k is due at ``t0 + k * frame_ms`` (clock pacing, no drift); if the loop falls more
        than 100 ms behind, the schedule restarts instead of bursting.
        """
        assert self._source is not None
        sr, n = self.opts.sample_rate, self.opts.sample_rate * self.opts.frame_ms // 1000
        silence = np.zeros(n, dtype=np.int16)
        dt = self.opts.frame_ms / 1000.0
        t0, k = time.monotonic(), 0
        while True:
            delay = t0 + k * dt - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.1:
                log.warning("room=%s audio pump %.0f ms late; re-anchoring", self._room.name, -delay * 1000)
                t0, k = time.monotonic(), 0
            pb = self._playing
            if pb is None and self._pending:
                pb = self._playing = self._pending.popleft()
            if pb is not None and pb.cut:
                self._finish(pb, interrupted=True)
                pb = None
            if pb is None:
                chunk = silence
            else:
                chunk = pb.pcm[pb.pos: pb.pos + n]
                if len(chunk) < n:
                    chunk = np.concatenate([chunk, np.zeros(n - len(chunk), dtype=np.int16)])
            t_hand = time.monotonic()
            await self._source.capture_frame(rtc.AudioFrame(chunk.tobytes(), sr, 1, n))
            if pb is not None:
                if pb.pos == 0:
                    pb.first_frame.set_result(t_hand)
                pb.pos += n
                pb.record.samples_published = min(pb.pos, len(pb.pcm))
                if pb.pos >= len(pb.pcm):
                    self._finish(pb, interrupted=False)
            k += 1

    def _finish(self, pb: _Playback, *, interrupted: bool) -> None:
        assert self._source is not None
        if interrupted:
            self._source.clear_queue()
        pb.record.interrupted = interrupted
        pb.record.t_end = time.monotonic() + (0.0 if interrupted else self._source.queued_duration)
        if not pb.first_frame.done():  # cut before its first frame: never started
            pb.first_frame.set_result(pb.record.t_end)
        pb.done.set_result(None)
        self._playing = None


async def _main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True, help="LiveKit URL, e.g. ws://127.0.0.1:7880")
    p.add_argument("--token", required=True, help="join token for the room (participant kind 'agent')")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    agent = MinimalAgent(url=args.url, token=args.token)
    async with agent:
        await agent.disconnected.wait()


if __name__ == "__main__":
    asyncio.run(_main())

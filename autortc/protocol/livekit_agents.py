"""AutoRTC protocol for agents built on LiveKit Agents: a few lines in the entrypoint.

    from autortc.protocol.livekit_agents import AutoRTCAgentProtocol

    await session.start(agent=MyAgent(), room=ctx.room)
    autortc = AutoRTCAgentProtocol(room=ctx.room, session=session)
    await autortc.start()          # answers probe_ready, tags turns, records replies

What it does (``docs/protocol.md``): answers ``probe_ready`` with ``agent_ready``; binds
each user turn to the ``trace_id`` of the latest ``turn_start``; puts a recorder in front
of the session's audio output so it knows the exact PCM published for every reply and
when its first frame reached the room (``reply_start``) and when it ended
(``reply_end``); collects the stage times and LiveKit Agents' own metrics into a
``trace`` message; sends the reply's PCM (the pre-RTC copy) as a WAV byte stream, and what
the session's audio input received during the turn (the user's speech as the agent's VAD and
STT got it: the *agent-input* copy) as another.
"""

from __future__ import annotations

import asyncio
import io as _io
import logging
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

import numpy as np
import soundfile as sf
from livekit import rtc
from livekit.agents import metrics as lk_metrics
from livekit.agents.voice import AgentSession
from livekit.agents.voice import io as voice_io

from autortc.protocol.messages import AGENT_INPUT_TOPIC, PRE_RTC_TOPIC, TOPIC, ProtocolError, decode, encode, make

log = logging.getLogger("autortc.protocol.agent")


def _wall_to_mono(t_wall: float) -> float:
    return t_wall - (time.time() - time.monotonic())


@dataclass
class _Reply:
    index: int
    trace_id: str
    sample_rate: int = 0
    frames: list[bytes] = field(default_factory=list)
    t_first_capture: float | None = None
    t_first_frame_published: float | None = None
    t_end: float | None = None
    interrupted: bool = False
    playback_position_s: float | None = None
    # LiveKit Agents' playback runs: [offset s into the reply, monotonic s it began to play, s played];
    # a new run begins after the room output's audio source ran dry (its next frame came late)
    runs: list[tuple[float, float, float]] = field(default_factory=list)


# Stages every generation attempt marks anew. LiveKit Agents' preemptive generation starts an attempt
# on each preflight transcript and discards it when the user goes on, so the first mark of a name can
# belong to a reply nobody heard (run v2: a discarded attempt's first TTS chunk 1.6-5.3 s before the
# heard reply's first frame, reported as its tts_first -> publish time). The trace keeps the attempt
# that fed the turn's first published frame.
ATTEMPT_STAGES = ("llm_request", "llm_first_token", "llm_done", "tts_request", "tts_first_chunk")


def _latest(times: list[float], at_most: float) -> float | None:
    return max((t for t in times if t <= at_most), default=None)


AGENT_INPUT_SR = 16000
"""Rate (Hz) of the agent-input copy sent to the probe: the rate speech recognisers decode at,
and a third of the bytes of the room's 48 kHz."""

MAX_AGENT_INPUT_S = 120.0
"""A turn's agent-input copy keeps at most this much audio (the first seconds): bounds the
agent's memory when a turn never ends."""


@dataclass
class _TurnTrace:
    trace_id: str
    stages: dict[str, float] = field(default_factory=dict)
    lk_metrics: dict[str, float] = field(default_factory=dict)
    transcript: str = ""
    reply_text: str = ""
    replies: list[dict[str, Any]] = field(default_factory=list)
    attempts: dict[str, list[float]] = field(default_factory=dict)  # every mark of ATTEMPT_STAGES
    # the agent-input copy: int16 mono frames as the session's audio input yielded them, their
    # rate, and the monotonic s of the first sample (its frame's receipt minus its duration)
    input_frames: list[np.ndarray] = field(default_factory=list)
    input_sr: int = 0
    input_samples: int = 0
    input_t_first: float | None = None

    def stage(self, name: str, t_mono: float, *, first: bool = True) -> None:
        if name in ATTEMPT_STAGES:
            self.attempts.setdefault(name, []).append(t_mono)
        if first and name in self.stages:
            return
        self.stages[name] = t_mono
        if name == "first_frame_published":
            self._keep_published_attempt(t_mono)

    def _keep_published_attempt(self, t_published: float) -> None:
        """Replace the first-of-name ATTEMPT_STAGES by the chain that ends at the first published frame:
        its TTS first chunk is the latest one at or before that frame, its TTS request the latest one
        before that chunk (a reply's later sentences are requested only after its first sentence is
        synthesized), its LLM token/request the latest before that, its ``llm_done`` the first after
        its token. A stage with no mark in that chain keeps its first-of-name time."""
        a = self.attempts
        chosen: dict[str, float | None] = {"tts_first_chunk": _latest(a.get("tts_first_chunk", []), t_published)}
        chosen["tts_request"] = _latest(a.get("tts_request", []), chosen["tts_first_chunk"] or t_published)
        chosen["llm_first_token"] = _latest(a.get("llm_first_token", []), chosen["tts_request"] or t_published)
        chosen["llm_request"] = _latest(a.get("llm_request", []), chosen["llm_first_token"] or t_published)
        token = chosen["llm_first_token"]
        chosen["llm_done"] = (min((t for t in a.get("llm_done", []) if t >= token), default=None)
                              if token is not None else None)
        for name, t in chosen.items():
            if t is not None:
                self.stages[name] = t


class _ReplyRecorder(voice_io.AudioOutput):
    """Pass-through audio output that keeps a copy of every frame the session publishes."""

    def __init__(self, owner: AutoRTCAgentProtocol, next_output: voice_io.AudioOutput) -> None:
        super().__init__(
            label="AutoRTCRecorder",
            next_in_chain=next_output,
            capabilities=voice_io.AudioOutputCapabilities(pause=True),
        )
        self._owner = owner
        self._reply: _Reply | None = None

    @property
    def sample_rate(self) -> int | None:
        return self.next_in_chain.sample_rate if self.next_in_chain else None

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        if self._reply is None:
            self._reply = self._owner._new_reply()
            self._reply.t_first_capture = time.monotonic()
            self._reply.sample_rate = frame.sample_rate
        self._reply.frames.append(bytes(frame.data))
        if self.next_in_chain:
            await self.next_in_chain.capture_frame(frame)
        await super().capture_frame(frame)

    def flush(self) -> None:
        super().flush()
        if self.next_in_chain:
            self.next_in_chain.flush()

    def clear_buffer(self) -> None:
        if self.next_in_chain:
            self.next_in_chain.clear_buffer()

    def on_playback_started(self, *, created_at: float) -> None:
        super().on_playback_started(created_at=created_at)
        if self._reply is not None and self._reply.t_first_frame_published is None:
            self._reply.t_first_frame_published = _wall_to_mono(created_at)
            self._owner._on_reply_started(self._reply)

    def on_playback_progressed(self, *, started_at: float, offset: float, duration: float) -> None:
        super().on_playback_progressed(started_at=started_at, offset=offset, duration=duration)
        if self._reply is not None:
            self._reply.runs.append((float(offset), _wall_to_mono(started_at), float(duration)))

    def on_playback_finished(
        self, *, playback_position: float, interrupted: bool, synchronized_transcript: str | None = None
    ) -> None:
        super().on_playback_finished(
            playback_position=playback_position,
            interrupted=interrupted,
            synchronized_transcript=synchronized_transcript,
        )
        reply, self._reply = self._reply, None
        if reply is not None:
            reply.t_end = time.monotonic()
            reply.interrupted = interrupted
            reply.playback_position_s = playback_position
            self._owner._on_reply_finished(reply)


class _InputRecorder(voice_io.AudioInput):
    """Pass-through audio input that hands every frame the session reads to the protocol first."""

    def __init__(self, owner: AutoRTCAgentProtocol, source: voice_io.AudioInput) -> None:
        super().__init__(label="AutoRTCInputRecorder", source=source)
        self._owner = owner

    async def __anext__(self) -> rtc.AudioFrame:
        assert self.source is not None
        frame = await self.source.__anext__()
        self._owner._on_input_frame(frame, time.monotonic())
        return frame


class AutoRTCAgentProtocol:
    """Implements the agent side of the AutoRTC protocol on top of an ``AgentSession``.

    ``mark(stage, t_mono)`` lets an agent add its own stage times (e.g. ``tts_first_chunk``)
    to the current turn. All times are ``time.monotonic()`` seconds.
    """

    def __init__(self, *, room: rtc.Room, session: AgentSession, send_pre_rtc: bool = True,
                 trace_fields: Callable[[], dict[str, Any]] | None = None) -> None:
        self._room = room
        self._trace_fields = trace_fields  # extra fields of each trace message (e.g. a fault injector's truth)
        self._session = session
        self._send_pre_rtc = send_pre_rtc
        self._traces: dict[str, _TurnTrace] = {}
        self._trace_id: str | None = None
        self._reply_count = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._recorder: _ReplyRecorder | None = None
        self._closed = False

    @property
    def current_trace_id(self) -> str | None:
        return self._trace_id

    async def start(self) -> None:
        self._room.on("data_received", self._on_data)
        s = self._session
        s.on("user_state_changed", self._on_user_state)
        s.on("user_input_transcribed", self._on_transcribed)
        s.on("metrics_collected", self._on_metrics)
        s.on("conversation_item_added", self._on_item)
        out = s.output.audio
        if out is None:
            raise RuntimeError("AutoRTC: the session has no audio output; start the session with a room first")
        self._recorder = _ReplyRecorder(self, out)
        s.output.audio = self._recorder
        if s.input.audio is not None:
            s.input.audio = _InputRecorder(self, s.input.audio)

    def mark(self, stage: str, t_mono: float | None = None, *, first: bool = True) -> None:
        trace = self._current()
        if trace is not None:
            trace.stage(stage, time.monotonic() if t_mono is None else t_mono, first=first)

    def set_metric(self, name: str, value: float) -> None:
        """Record an agent-reported figure (e.g. ``cpu_s_stt``) of the current turn; it is sent in
        the trace's ``lk_metrics`` beside LiveKit Agents' own (last value wins)."""
        trace = self._current()
        if trace is not None:
            trace.lk_metrics[name] = float(value)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._room.off("data_received", self._on_data)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    # -- inbound --------------------------------------------------------------------------

    def _on_data(self, packet: rtc.DataPacket) -> None:
        if packet.topic != TOPIC:
            return
        try:
            msg = decode(packet.data)
        except ProtocolError as exc:
            log.warning("ignoring bad AutoRTC packet from %s: %s", getattr(packet.participant, "identity", "?"), exc)
            return
        if msg["type"] == "probe_ready":
            self._spawn(self._publish(make("agent_ready", agent="autortc.protocol.livekit_agents")), "agent_ready")
        elif msg["type"] == "turn_start":
            self._trace_id = msg["trace_id"]
            self._traces.setdefault(self._trace_id, _TurnTrace(self._trace_id))
            self._traces[self._trace_id].stage("turn_start_received", time.monotonic())
            log.info("turn_start trace_id=%s", self._trace_id)

    def _current(self) -> _TurnTrace | None:
        return self._traces.get(self._trace_id) if self._trace_id else None

    def _on_user_state(self, ev: Any) -> None:
        trace = self._current()
        if trace is None:
            return
        t = _wall_to_mono(getattr(ev, "created_at", time.time()))
        if ev.new_state == "speaking":
            trace.stage("vad_speech_start", t)
        elif ev.old_state == "speaking" and ev.new_state == "listening":
            trace.stage("vad_end_of_speech", t, first=False)

    def _on_transcribed(self, ev: Any) -> None:
        trace = self._current()
        if trace is None or not ev.is_final:
            return
        trace.stage("stt_final", _wall_to_mono(getattr(ev, "created_at", time.time())), first=False)
        trace.transcript = (trace.transcript + " " + ev.transcript).strip()

    def _on_metrics(self, ev: Any) -> None:
        trace = self._current()
        m = ev.metrics
        if trace is None:
            return
        if isinstance(m, lk_metrics.EOUMetrics):
            trace.lk_metrics.setdefault("end_of_utterance_delay_ms", m.end_of_utterance_delay * 1000)
            trace.lk_metrics.setdefault("transcription_delay_ms", m.transcription_delay * 1000)
            trace.stage("end_of_turn", _wall_to_mono(m.timestamp))
            # the agent's own estimate of when the user stopped speaking: the EoU decision
            # minus LiveKit's end_of_utterance_delay (measured from the VAD's last speech)
            trace.stage("user_speech_end", _wall_to_mono(m.timestamp) - m.end_of_utterance_delay)
        elif isinstance(m, lk_metrics.LLMMetrics):
            trace.lk_metrics.setdefault("llm_ttft_ms", m.ttft * 1000)
        elif isinstance(m, lk_metrics.TTSMetrics):
            trace.lk_metrics.setdefault("tts_ttfb_ms", m.ttfb * 1000)

    def _on_item(self, ev: Any) -> None:
        trace = self._current()
        item = ev.item
        if trace is not None and getattr(item, "role", None) == "assistant":
            trace.reply_text = (trace.reply_text + " " + (item.text_content or "")).strip()

    def _on_input_frame(self, frame: rtc.AudioFrame, t_recv: float) -> None:
        trace = self._current()
        if trace is None or not frame.samples_per_channel:
            return
        if trace.input_sr > 0 and frame.sample_rate != trace.input_sr:
            log.warning("trace_id=%s agent input changed rate %d -> %d Hz: its copy ends here",
                        trace.trace_id, trace.input_sr, frame.sample_rate)
            trace.input_sr = -1
        if trace.input_sr < 0 or trace.input_samples >= MAX_AGENT_INPUT_S * frame.sample_rate:
            return
        pcm = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
        if trace.input_t_first is None:
            trace.input_sr = frame.sample_rate
            trace.input_t_first = t_recv - frame.samples_per_channel / frame.sample_rate
        trace.input_frames.append(pcm[:, 0].copy())
        trace.input_samples += frame.samples_per_channel

    async def _send_agent_input(self, trace: _TurnTrace) -> dict[str, Any] | None:
        """Send the turn's agent-input copy so far as a WAV at :data:`AGENT_INPUT_SR` (cumulative:
        the probe keeps the longest); returns the trace message's ``agent_input`` field, or None."""
        if not trace.input_frames or trace.input_sr <= 0 or trace.input_t_first is None:
            return None
        frames, sr, t_first = list(trace.input_frames), trace.input_sr, trace.input_t_first

        def encode_wav() -> tuple[bytes, int]:
            import soxr

            x = np.concatenate(frames)
            if sr != AGENT_INPUT_SR:
                x = soxr.resample(x, sr, AGENT_INPUT_SR)
            buf = _io.BytesIO()
            sf.write(buf, x, AGENT_INPUT_SR, format="WAV", subtype="PCM_16")
            return buf.getvalue(), int(x.shape[0])

        data, n = await asyncio.to_thread(encode_wav)
        try:
            await self._room.local_participant.send_bytes(
                data, topic=AGENT_INPUT_TOPIC, name=f"{trace.trace_id}-input.wav", mime_type="audio/wav",
                attributes={"trace_id": trace.trace_id, "samples": str(n)}, compress=False)
        except Exception:
            log.exception("trace_id=%s: sending the agent-input audio failed", trace.trace_id)
            return None
        return {"sr": AGENT_INPUT_SR, "samples": n, "t_first_sample": t_first}

    # -- replies --------------------------------------------------------------------------

    def _new_reply(self) -> _Reply:
        reply = _Reply(index=self._reply_count, trace_id=self._trace_id or "untraced")
        self._reply_count += 1
        return reply

    def _on_reply_started(self, reply: _Reply) -> None:
        trace = self._traces.get(reply.trace_id)
        if trace is not None:
            trace.stage("first_frame_published", reply.t_first_frame_published or time.monotonic())
        self._spawn(
            self._publish(
                make(
                    "reply_start",
                    trace_id=reply.trace_id,
                    reply_index=reply.index,
                    t_first_frame_published=reply.t_first_frame_published,
                    t_first_capture=reply.t_first_capture,
                )
            ),
            "reply_start",
        )

    def _on_reply_finished(self, reply: _Reply) -> None:
        trace = self._traces.get(reply.trace_id)
        pcm = np.frombuffer(b"".join(reply.frames), dtype=np.int16)
        played = pcm
        if reply.interrupted and reply.playback_position_s is not None and reply.sample_rate:
            played = pcm[: int(round(reply.playback_position_s * reply.sample_rate))]
        if trace is not None:
            trace.stage("reply_end", reply.t_end or time.monotonic(), first=False)
            trace.replies.append(
                {
                    "reply_index": reply.index,
                    "t_first_capture": reply.t_first_capture,
                    "t_first_frame_published": reply.t_first_frame_published,
                    "t_end": reply.t_end,
                    "interrupted": reply.interrupted,
                    "playback_position_s": reply.playback_position_s,
                    "pre_rtc_sr": reply.sample_rate,
                    "pre_rtc_samples": int(played.size),
                    "runs": [list(r) for r in reply.runs],
                }
            )
        self._spawn(self._finish_reply(reply, trace, played), "reply_end")

    async def _finish_reply(self, reply: _Reply, trace: _TurnTrace | None, played: np.ndarray) -> None:
        if self._send_pre_rtc and reply.trace_id != "untraced" and played.size:
            buf = _io.BytesIO()
            sf.write(buf, played, reply.sample_rate, format="WAV", subtype="PCM_16")
            try:
                await self._room.local_participant.send_bytes(
                    buf.getvalue(),
                    topic=PRE_RTC_TOPIC,
                    name=f"{reply.trace_id}-{reply.index}.wav",
                    mime_type="audio/wav",
                    attributes={"trace_id": reply.trace_id, "reply_index": str(reply.index)},
                    compress=False,
                )
            except Exception:
                log.exception("trace_id=%s: sending the pre-RTC audio failed", reply.trace_id)
        await self._publish(
            make(
                "reply_end",
                trace_id=reply.trace_id,
                reply_index=reply.index,
                interrupted=reply.interrupted,
                playback_position_s=reply.playback_position_s,
                t_end=reply.t_end,
            )
        )
        if trace is not None:
            agent_input = await self._send_agent_input(trace) if self._send_pre_rtc else None
            await self._publish(
                make(
                    "trace",
                    trace_id=trace.trace_id,
                    stages=dict(trace.stages),
                    lk_metrics=dict(trace.lk_metrics),
                    transcript=trace.transcript,
                    reply_text=trace.reply_text,
                    replies=list(trace.replies),
                    **({"agent_input": agent_input} if agent_input else {}),
                    **(self._trace_fields() if self._trace_fields is not None else {}),
                )
            )
        log.info(
            "trace_id=%s reply %d ended (interrupted=%s, %.2f s)",
            reply.trace_id,
            reply.index,
            reply.interrupted,
            played.size / max(reply.sample_rate, 1),
        )

    async def _publish(self, msg: dict[str, Any]) -> None:
        await self._room.local_participant.publish_data(encode(msg), reliable=True, topic=TOPIC)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=f"autortc.{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

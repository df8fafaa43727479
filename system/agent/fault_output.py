"""Wiring of the planted-fault mode (``system/agent/faults.py``) into the bundled worker.

One ``FaultWiring`` per job (room), built from the dispatch metadata (the runner dispatches
the agent with the room's own metadata, docs/protocol.md "Rooms"; ``fault`` is the optional
key the fault bench adds). The worker calls, in this order::

    fw = FaultWiring.from_job(ctx)                      # FaultSpecError names the bad field
    turn_handling = fw.turn_handling(turn_handling)     # no_yield / false_yield overrides
    await session.start(agent=fw.agent(BundledAgent)(), ...)
    fw.install_path(session)      # path faults: between the pre-RTC copy and the room output
    proto = AutoRTCAgentProtocol(..., trace_fields=fw.trace_fields)
    await proto.start()           # the protocol's recorder takes the pre-RTC copy
    fw.install_agent(session)     # agent faults: in front of the recorder (the copy has them)

Audio chain after that: session -> ``FaultOutput(agent)`` -> AutoRTC recorder (pre-RTC copy)
-> ``FaultOutput(path)`` -> room output. With no fault nothing is installed at all, so a clean
room's audio is the very frames the session produced (and ``FaultOutput`` itself passes a
frame object through untouched while its applier is a ``Passthrough``; tested).

Streaming rules (LiveKit Agents 1.8.9 ``AudioOutput``): ``capture_frame`` is async, ``flush``
and ``clear_buffer`` are synchronous. What an applier returns from ``finish()`` (held audio,
``tail_cut``'s whole reply) is captured at ``flush`` and handed on by one owned task, which
awaits the next output's ``capture_frame`` and then flushes it; the next reply's frames wait
for that task. ``clear_buffer`` (barge-in) drops held audio and cancels the task.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import Agent, AgentSession, StopResponse
from livekit.agents.voice import io as voice_io

from autortc.protocol.sound import SoundOnset
from system.agent.faults import FaultPlan, ReplyFaults, StreamApplier

log = logging.getLogger("autortc.agent.faults")

FRAME_MS = 20  # size of the frames a released / delayed stretch is handed on in


class _Replies:
    """The room's replies as the agent-side wrapper starts them; the path side reads the latest."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.count = 0
        self.latest: ReplyFaults | None = None

    def begin(self, sample_rate: int) -> ReplyFaults:
        self.latest = self.plan.for_reply(self.count, sample_rate)
        self.count += 1
        return self.latest


class FaultOutput(voice_io.AudioOutput):
    """Pass-through ``AudioOutput`` that runs one side (``"agent"`` or ``"path"``) of each reply's faults.

    Input: mono int16 frames of the reply (any size). Output: the applier's output, in frames of
    at most ``FRAME_MS`` when the applier changed the stream, else the very frame it was given.
    """

    def __init__(self, side: str, replies: _Replies, next_output: voice_io.AudioOutput) -> None:
        if side not in ("agent", "path"):
            raise ValueError(f"FaultOutput side: expected 'agent' or 'path', got {side!r}")
        super().__init__(label=f"AutoRTCFault.{side}", next_in_chain=next_output,
                         capabilities=voice_io.AudioOutputCapabilities(pause=True))
        self._side = side
        self._replies = replies
        self._ap: StreamApplier | None = None
        self._sr = 0
        self._tail: asyncio.Task[None] | None = None

    @property
    def sample_rate(self) -> int | None:
        return self.next_in_chain.sample_rate if self.next_in_chain else None

    def _applier(self, sr: int) -> StreamApplier:
        if self._ap is None:
            self._sr = sr
            rf = self._replies.begin(sr) if self._side == "agent" else self._replies.latest
            if rf is None:  # path side saw audio the agent side never started: nothing planned
                rf = self._replies.begin(sr)
            self._ap = rf.agent if self._side == "agent" else rf.path
        return self._ap

    async def _emit(self, pcm: np.ndarray) -> None:
        assert self.next_in_chain is not None
        step = max(1, self._sr * FRAME_MS // 1000)
        for i in range(0, pcm.size, step):
            part = np.ascontiguousarray(pcm[i:i + step], dtype=np.int16)
            await self.next_in_chain.capture_frame(
                rtc.AudioFrame(part.tobytes(), self._sr, 1, int(part.size)))

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        if self._tail is not None:  # the previous reply's released audio goes first
            tail, self._tail = self._tail, None
            await asyncio.wait({tail})  # a cancelled (cleared) release is no error here
        await super().capture_frame(frame)
        if frame.num_channels != 1:
            raise ValueError(f"fault injector: expected mono frames, got {frame.num_channels} channels")
        ap = self._applier(frame.sample_rate)
        pcm = np.frombuffer(bytes(frame.data), dtype=np.int16)
        out = ap.process(pcm)
        if out is pcm:  # Passthrough / unchanged: hand on the very frame
            assert self.next_in_chain is not None
            await self.next_in_chain.capture_frame(frame)
        elif out.size:
            await self._emit(out)

    def flush(self) -> None:
        super().flush()
        ap, self._ap = self._ap, None
        rest = ap.finish() if ap is not None else np.zeros(0, np.int16)  # before the output is flushed
        if not rest.size:
            if self.next_in_chain:
                self.next_in_chain.flush()
            return

        async def release() -> None:
            await self._emit(rest)
            if self.next_in_chain:
                self.next_in_chain.flush()

        self._tail = asyncio.get_running_loop().create_task(release(), name=f"autortc.fault.{self._side}.release")
        self._tail.add_done_callback(_log_failure)

    def clear_buffer(self) -> None:
        ap, self._ap = self._ap, None  # held audio of the interrupted reply is dropped
        if ap is not None:
            log.info("fault %s: reply cleared, held audio dropped", self._side)
        if self._tail is not None and not self._tail.done():
            self._tail.cancel()
        self._tail = None
        if self.next_in_chain:
            self.next_in_chain.clear_buffer()


UserAudio = Callable[[], AsyncIterator[rtc.AudioFrame]]


class PrematureReply:
    """The ``premature`` fault: the case's reply, heard ``ms`` before the user's end of speech.

    Two owned tasks, started by ``start()`` and cancelled (and awaited) by ``aclose()``:

    * ``fault.premature.presynth`` synthesises the reply when the room starts, long before it is due,
      so saying it costs no synthesis (synthesising at that moment published it 200-600 ms late on
      fb-bots-1702);
    * ``fault.premature.timer`` anchors on the first sound received from the user
      (``autortc.protocol.sound.SoundOnset`` on the user's mic track: the rule the bench applied to the
      case WAV for ``user_sound_to_eot_ms``) and says the reply ``plan.premature_after_sound_ms`` after
      it.  The VAD's speech-start event, the old anchor, came 85-203 ms after the speech onset
      (fb-bots-1802), which alone ate up to 40 % of the lead.  A spec without ``user_sound_to_eot_ms``
      falls back to that anchor (``premature_start_ms`` after ``user_state_changed`` -> speaking).

    The times it used go to the truth (``plan.premature_timing``: ``t_sound_received``, ``t_say``,
    ``late_ms`` when the synthesis was not ready) on the one host clock, for the bench to check.
    ``clock``/``sleep``/``user_audio`` are parameters so unit tests drive them.
    """

    def __init__(self, plan: FaultPlan, session: Any, text: str, *, room: rtc.Room | None = None,
                 user_audio: UserAudio | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.plan = plan
        self._session = session
        self._text = text
        self._room = room
        self._user_audio = user_audio or self._room_user_audio
        self._clock = clock
        self._sleep = sleep
        self.frames: list[rtc.AudioFrame] = []
        self.presynth: asyncio.Task[None] | None = None
        self.timer: asyncio.Task[None] | None = None
        self.listen: asyncio.Task[None] | None = None
        self._vad_onset: asyncio.Future[float] | None = None
        self._t_anchor: float | None = None
        self._anchor_moved = asyncio.Event()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.presynth = loop.create_task(self._presynthesize(), name="fault.premature.presynth")
        self.presynth.add_done_callback(_log_failure)
        if self.plan.premature_after_sound_ms is None:
            self._vad_onset = loop.create_future()
            self._session.on("user_state_changed", self._on_user_state)
        self.timer = loop.create_task(self._run(), name="fault.premature.timer")
        self.timer.add_done_callback(_log_failure)

    def cancel(self) -> None:
        for t in (self.presynth, self.timer, self.listen):
            if t is not None and not t.done():
                t.cancel()

    async def aclose(self) -> None:
        self.cancel()
        tasks = [t for t in (self.presynth, self.timer, self.listen) if t is not None]
        if tasks:
            await asyncio.wait(tasks)

    async def _presynthesize(self) -> None:
        stream = self._session.tts.synthesize(self._text)
        try:
            async for ev in stream:
                self.frames.append(ev.frame)
        finally:
            await stream.aclose()

    def _on_user_state(self, ev: Any) -> None:
        if ev.new_state == "speaking" and self._vad_onset is not None and not self._vad_onset.done():
            self._vad_onset.set_result(self._clock())

    async def _room_user_audio(self) -> AsyncIterator[rtc.AudioFrame]:
        """The user's mic as the agent receives it (a second reader of the subscribed track)."""
        from livekit.agents.utils.participant import wait_for_participant

        if self._room is None:
            raise RuntimeError("fault premature: no room to hear the user in")
        user = await wait_for_participant(self._room, kind=rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD)
        stream = rtc.AudioStream.from_participant(participant=user, track_source=rtc.TrackSource.SOURCE_MICROPHONE,
                                                  sample_rate=16000, num_channels=1, frame_size_ms=10)
        try:
            async for ev in stream:
                yield ev.frame
        finally:
            await stream.aclose()

    async def _listen(self) -> None:
        """Reader of the user's audio: finds the first sound and keeps re-timing it until the reply is said.

        A frame's time is its arrival (its last sample is here now), but a busy event loop (a new job
        loading its models while the user speaks: fb-prem-3101 b002, the anchor 433 ms late, the VAD
        too) sees frames late and then in a burst.  The receiver hands them over at media pace, so,
        as ``metrics.latency.sample_arrival_time`` does at the probe, the anchor is the lower envelope
        of ``arrival - samples/sr`` over the frames from the onset on, plus the onset's sample."""
        frames = self._user_audio()
        det: SoundOnset | None = None
        n = 0
        try:
            async for f in frames:
                t = self._clock()
                if det is None:
                    det = SoundOnset(f.sample_rate)
                pcm = np.frombuffer(bytes(f.data), dtype=np.int16)[:: max(1, f.num_channels)]
                n += pcm.size
                if det.onset_sample is None:
                    det.push(pcm, t_last=t)
                    if det.onset_sample is not None:
                        self.plan.premature_timing["t_sound_received"] = round(
                            t - (n - 1 - det.onset_sample) / det.sr, 6)
                if det.onset_sample is not None:
                    cand = t - (n - 1 - det.onset_sample) / det.sr
                    if self._t_anchor is None or cand < self._t_anchor:
                        self._t_anchor = cand
                        self._anchor_moved.set()
        finally:
            await frames.aclose()  # type: ignore[attr-defined]

    async def _wait_anchor_or(self, timeout: float) -> None:
        """Until the anchor moves or ``timeout`` s pass (``sleep``: the clock's own wait)."""
        moved = asyncio.ensure_future(self._anchor_moved.wait())
        slept = asyncio.ensure_future(self._sleep(timeout))
        try:
            await asyncio.wait({moved, slept}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (moved, slept):
                t.cancel()
            await asyncio.wait({moved, slept})

    async def _run(self) -> None:
        plan = self.plan
        after = plan.premature_after_sound_ms
        if after is not None:
            self.listen = asyncio.get_running_loop().create_task(self._listen(), name="fault.premature.listen")
            self.listen.add_done_callback(_log_failure)
            try:
                while True:  # say it at anchor + after, the anchor re-timed as frames come
                    self._anchor_moved.clear()
                    if self._t_anchor is None:
                        if self.listen.done():
                            raise RuntimeError("fault premature: the user's audio ended before any sound")
                        moved = asyncio.ensure_future(self._anchor_moved.wait())
                        try:
                            await asyncio.wait({moved, self.listen}, return_when=asyncio.FIRST_COMPLETED)
                        finally:
                            moved.cancel()
                            await asyncio.wait({moved})
                        continue
                    wait = self._t_anchor + after / 1000.0 - self._clock()
                    if wait <= 0:
                        break
                    await self._wait_anchor_or(wait)
            finally:
                self.listen.cancel()
                await asyncio.wait({self.listen})
            assert self._t_anchor is not None
            t_anchor = self._t_anchor
            plan.premature_timing["t_sound_anchor"] = round(t_anchor, 6)
        else:
            assert self._vad_onset is not None and plan.premature_start_ms is not None
            t_anchor = await self._vad_onset
            after = plan.premature_start_ms
            plan.premature_timing["t_vad_onset"] = round(t_anchor, 6)
        due = t_anchor + after / 1000.0
        assert self.presynth is not None
        await asyncio.wait({self.presynth})
        late = self._clock() - due
        if late > 0.005:
            plan.premature_timing["late_ms"] = round(1000.0 * late, 1)
            log.warning("fault premature: reply %.0f ms after its time", 1000.0 * late)
        elif late < 0:
            await self._sleep(-late)
        frames = self.frames if (not self.presynth.cancelled() and self.presynth.exception() is None) else []
        plan.premature_timing["t_say"] = round(self._clock(), 6)
        if frames:
            async def audio() -> AsyncIterator[rtc.AudioFrame]:
                for f in frames:
                    yield f

            self._session.say(self._text, audio=audio(), allow_interruptions=False)
        else:  # synthesis failed: say it the slow way; the truth's times show how late
            log.warning("fault premature: no pre-synthesised reply; synthesising now")
            self._session.say(self._text, allow_interruptions=False)
        log.info("fault premature: reply said %.0f ms after the user's %s", after,
                 "first sound" if "t_sound_anchor" in plan.premature_timing else "VAD onset")


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("fault injector: task %s failed", task.get_name(), exc_info=task.exception())


class FaultWiring:
    """The fault plan of one job and the calls the worker makes (module docstring)."""

    def __init__(self, plan: FaultPlan, *, reply_text_for: Callable[[str], str] | None = None,
                 room: rtc.Room | None = None, user_audio: UserAudio | None = None) -> None:
        self.plan = plan
        self._replies = _Replies(plan)
        self._reply_text_for = reply_text_for
        self._room = room
        self._user_audio = user_audio
        self._premature: PrematureReply | None = None

    @classmethod
    def from_job(cls, ctx: Any, *, reply_text_for: Callable[[str], str] | None = None,
                 user_audio: UserAudio | None = None) -> FaultWiring:
        """From the dispatch metadata (``ctx.job.metadata``), else the room's (``ctx.job.room.metadata``)."""
        job = ctx.job
        raw = job.metadata or getattr(getattr(job, "room", None), "metadata", None)
        plan = FaultPlan.from_metadata(raw, source=f"job {job.id} metadata")
        plan.prepare()  # at the job's start: the harness waits for agent_ready, the user for nothing
        wiring = cls(plan, reply_text_for=reply_text_for, room=getattr(ctx, "room", None), user_audio=user_audio)
        if wiring.active and hasattr(ctx, "add_shutdown_callback"):
            ctx.add_shutdown_callback(wiring.aclose)  # the room's end cancels what the wiring started
        return wiring

    @property
    def active(self) -> bool:
        return self.plan.spec is not None

    def turn_handling(self, turn_handling: dict[str, Any]) -> dict[str, Any]:
        """``turn_handling`` with the plan's overrides merged (a copy; the same dict when clean)."""
        over = self.plan.session_overrides()
        if not over:
            return turn_handling
        out = dict(turn_handling)
        for key, val in over.items():
            out[key] = {**out.get(key, {}), **val}
        return out

    def agent(self, base: type[Agent]) -> type[Agent]:
        """``base`` itself when no hook is needed, else a subclass with the plan's text / turn hooks."""
        plan = self.plan
        if plan.kind == "wrong_words":
            class _WrongWords(base):  # type: ignore[valid-type, misc]
                async def tts_node(self, text: AsyncIterable[str], model_settings: Any) -> Any:
                    whole = "".join([t async for t in text])
                    new = plan.transform_text(whole)

                    async def one() -> AsyncIterable[str]:
                        yield new

                    async for frame in Agent.default.tts_node(self, one(), model_settings):
                        yield frame

            return _WrongWords
        if plan.skip_reply or plan.premature_start_ms is not None:
            class _NoAnswer(base):  # type: ignore[valid-type, misc]
                async def on_user_turn_completed(self, turn_ctx: Any, new_message: Any) -> None:
                    raise StopResponse()  # no_reply; premature: the reply was already given

            return _NoAnswer
        return base

    def install_path(self, session: AgentSession) -> None:
        """Path faults between the recorder and the room output (call BEFORE the protocol's start)."""
        if not self.active:
            return
        out = session.output.audio
        if out is None:
            raise RuntimeError("fault injector: the session has no audio output (start it with a room first)")
        session.output.audio = FaultOutput("path", self._replies, out)

    def install_agent(self, session: AgentSession) -> None:
        """Agent faults in front of the recorder (call AFTER the protocol's start) + the premature timer."""
        if not self.active:
            return
        out = session.output.audio
        assert out is not None
        session.output.audio = FaultOutput("agent", self._replies, out)
        if self.plan.kind == "premature":
            text = self._reply_text_for(self.plan.case_id or "") if self._reply_text_for else "Okay."
            self._premature = PrematureReply(self.plan, session, text, room=self._room, user_audio=self._user_audio)
            self._premature.start()
            session.on("close", lambda _ev: self._premature.cancel() if self._premature else None)

    async def aclose(self) -> None:
        """Cancel and wait for the tasks this wiring started (the premature reply's); idempotent.
        ``from_job`` registers it as a shutdown callback of the job, so a closed room leaves none."""
        if self._premature is not None:
            await self._premature.aclose()

    def trace_fields(self) -> dict[str, Any]:
        """``{"fault", "fault_truth"}`` for the trace message; ``{}`` for a clean room."""
        return self.plan.trace_fields() if self.active else {}

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
from collections.abc import AsyncIterable, Callable
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import Agent, AgentSession, StopResponse
from livekit.agents.voice import io as voice_io

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


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("fault injector: releasing held audio failed", exc_info=task.exception())


class FaultWiring:
    """The fault plan of one job and the calls the worker makes (module docstring)."""

    def __init__(self, plan: FaultPlan, *, reply_text_for: Callable[[str], str] | None = None) -> None:
        self.plan = plan
        self._replies = _Replies(plan)
        self._reply_text_for = reply_text_for
        self._premature: asyncio.TimerHandle | None = None

    @classmethod
    def from_job(cls, ctx: Any, *, reply_text_for: Callable[[str], str] | None = None) -> FaultWiring:
        """From the dispatch metadata (``ctx.job.metadata``), else the room's (``ctx.job.room.metadata``)."""
        job = ctx.job
        raw = job.metadata or getattr(getattr(job, "room", None), "metadata", None)
        return cls(FaultPlan.from_metadata(raw, source=f"job {job.id} metadata"), reply_text_for=reply_text_for)

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
        start_ms = self.plan.premature_start_ms
        if start_ms is not None:
            # The reply is synthesised now, before the user speaks, and handed to say() as audio when
            # the timer fires: synthesising at that moment published it 200-600 ms late (fb-bots-1702:
            # 39 ms after to 143 ms before the user's EoT instead of 500 ms before), so no talk-over.
            text = self._reply_text_for(self.plan.case_id or "") if self._reply_text_for else "Okay."
            frames: list[Any] = []

            async def presynthesize() -> None:
                stream = session.tts.synthesize(text)
                try:
                    async for ev in stream:
                        frames.append(ev.frame)
                finally:
                    await stream.aclose()

            presynth = asyncio.get_running_loop().create_task(presynthesize(), name="fault.premature.presynth")
            presynth.add_done_callback(_log_failure)

            def fire() -> None:
                if presynth.done() and not presynth.cancelled() and presynth.exception() is None and frames:
                    async def audio() -> AsyncIterable[Any]:
                        for f in frames:
                            yield f

                    session.say(text, audio=audio(), allow_interruptions=False)
                else:  # not synthesised yet: late, and the truth's published_before_eot_ms will show it
                    log.warning("fault premature: reply not synthesised in time; synthesising now")
                    session.say(text, allow_interruptions=False)

            def on_user_state(ev: Any) -> None:
                if ev.new_state == "speaking" and self._premature is None:
                    self._premature = asyncio.get_running_loop().call_later(start_ms / 1000.0, fire)
                    log.info("fault premature: reply %.0f ms after the user's speech onset", start_ms)

            session.on("user_state_changed", on_user_state)

    def trace_fields(self) -> dict[str, Any]:
        """``{"fault", "fault_truth"}`` for the trace message; ``{}`` for a clean room."""
        return self.plan.trace_fields() if self.active else {}

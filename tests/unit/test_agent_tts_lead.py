"""The bundled agent's TTS adapter starts each synthesis at its first audible frame.

Ground truth is planted: a known length of digital silence (or of low noise) before a tone.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from system.agent.tts_adapter import LEAD_KEEP_MS, LocalTTS, audible_start, trim_leading_silence
from system.tts import StreamingTTS, TTSAborted, TTSOptions

pytestmark = pytest.mark.unit

SR = 22050


def _tone(ms: float, dbfs: float = -12.0) -> np.ndarray:
    t = np.arange(int(SR * ms / 1000)) / SR
    return (10 ** (dbfs / 20) * 32767 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)


def _silence(ms: float, dbfs: float | None = None) -> np.ndarray:
    n = int(SR * ms / 1000)
    if dbfs is None:
        return np.zeros(n, np.int16)
    return (np.random.default_rng(0).standard_normal(n) * 10 ** (dbfs / 20) * 32767).astype(np.int16)


@pytest.mark.parametrize("lead_ms", [0.0, 35.0, 65.0, 150.0])
def test_trim_keeps_only_keep_ms_before_the_planted_onset(lead_ms: float) -> None:
    pcm = np.concatenate([_silence(lead_ms), _tone(300)])
    out = trim_leading_silence(pcm, SR)
    removed_ms = (pcm.size - out.size) / SR * 1000
    expected_ms = max(0.0, lead_ms - LEAD_KEEP_MS)
    # the onset is found on 5 ms frames: at most one frame late or early
    assert abs(removed_ms - expected_ms) <= 5.0 + 1e-6, (lead_ms, removed_ms)
    np.testing.assert_array_equal(out[-1000:], pcm[-1000:])  # nothing after the onset is touched


def test_low_noise_under_the_floor_counts_as_silence_and_a_long_silent_start_stays() -> None:
    pcm = np.concatenate([_silence(50, dbfs=-60.0), _tone(200)])
    assert abs((pcm.size - trim_leading_silence(pcm, SR).size) / SR * 1000 - 40.0) <= 5.0
    long_pause = np.concatenate([_silence(400), _tone(200)])
    assert trim_leading_silence(long_pause, SR).size == long_pause.size
    assert audible_start(_silence(100), SR) is None


@dataclass(frozen=True, kw_only=True)
class _Opts(TTSOptions):
    lead_ms: float = 60.0


class _LeadTTS(StreamingTTS[_Opts]):
    """Yields ``lead_ms`` of silence then a 400 ms tone, in 20 ms chunks (like piper's first segment)."""

    name: ClassVar[str] = "lead"
    options_class: ClassVar[type[TTSOptions]] = _Opts

    @property
    def sample_rate(self) -> int:
        return SR

    def _synthesize_segment(self, text: str, options: _Opts) -> Iterator[np.ndarray]:
        yield np.concatenate([_silence(options.lead_ms), _tone(400)])


def test_adapter_publishes_from_the_onset_and_loses_no_audible_sample() -> None:
    engine = _LeadTTS(_Opts(lead_ms=60.0, segment=False))
    full = engine.synthesize("hello")

    async def run() -> np.ndarray:
        tts = LocalTTS(engine=engine)
        frames = []
        async with tts.synthesize("hello") as stream:
            async for ev in stream:
                frames.append(np.frombuffer(ev.frame.data, dtype=np.int16))
        await tts.aclose()
        return np.concatenate(frames)

    out = asyncio.run(run())
    onset = int(SR * 0.060)
    lead_out = audible_start(out, SR)
    assert lead_out is not None and lead_out / SR * 1000 <= LEAD_KEEP_MS + 5.0
    # what was cut is the planted silence up to LEAD_KEEP_MS before the onset (5 ms frames), and
    # every sample after the cut is published, in order
    # (the emitter pads its last 20 ms frame with zeros)
    want = onset - int(SR * LEAD_KEEP_MS / 1000)
    ks = [k for k in range(want - int(SR * 0.005), want + int(SR * 0.005) + 1)
          if out.size >= full.size - k and np.array_equal(out[: full.size - k], full[k:])]
    assert ks, "the published audio is not the synthesis cut 10 ms (+-5 ms) before its onset"
    assert not out[full.size - ks[0]:].any()


class _SegmentsTTS(StreamingTTS[_Opts]):
    """Three 200 ms tone segments; records the nice value of the thread that made each one."""

    name: ClassVar[str] = "segments"
    options_class: ClassVar[type[TTSOptions]] = _Opts

    def __init__(self, opts: _Opts) -> None:
        super().__init__(opts)
        self.nices: list[int] = []

    @property
    def sample_rate(self) -> int:
        return SR

    def _synthesize_segment(self, text: str, options: _Opts) -> Iterator[np.ndarray]:
        for _ in range(3):
            self.nices.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            yield _tone(200)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_first_chunk_at_the_callers_priority_the_look_ahead_niced_and_all_of_it_published() -> None:
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    engine = _SegmentsTTS(_Opts(lead_ms=0.0, segment=False))

    async def run(n_texts: int, *, stop_after: int | None = None) -> list[int]:
        tts = LocalTTS(engine=engine, ahead_nice=min(19, mine + 6))
        sizes = []
        for _ in range(n_texts):
            async with tts.synthesize("hello") as stream:
                async for ev in stream:
                    sizes.append(ev.frame.samples_per_channel)
                    if stop_after is not None and len(sizes) >= stop_after:
                        break
        await tts.aclose()
        return sizes

    sizes = asyncio.run(run(2))
    assert engine.nices == [mine, min(19, mine + 6), min(19, mine + 6)] * 2
    assert sum(sizes) >= 2 * 3 * int(SR * 0.2)  # every segment of both texts reached the output
    # a stream closed after its first frame frees the engine for the next one (no lock left held)
    engine.nices.clear()
    asyncio.run(asyncio.wait_for(run(2, stop_after=1), timeout=20))
    assert engine.nices[0] == mine


def test_a_tts_closed_before_the_look_ahead_frees_the_engine() -> None:
    """The look-ahead thread is gone (aclose) when the first chunk is out: the stream ends with the
    executor's error and the engine is freed, not left held for the next room's synthesis."""
    engine = _SegmentsTTS(_Opts(lead_ms=0.0, segment=False))

    async def run() -> tuple[int, BaseException | None]:
        tts = LocalTTS(engine=engine, ahead_nice=1)
        tts._ahead_executor.shutdown()
        frames, err = 0, None
        try:
            async with tts.synthesize("hello") as stream:
                async for _ in stream:
                    frames += 1
        except BaseException as exc:  # noqa: BLE001 - what the stream ended with is asserted below
            err = exc
        assert tts.free_engines() == 1, "the engine is still held"
        return frames, err

    frames, err = asyncio.run(asyncio.wait_for(run(), timeout=20))
    assert frames >= 1 and engine.nices == [engine.nices[0]]  # the first segment only
    assert err is not None


class _BlockingTTS(StreamingTTS[_Opts]):
    """Text "long": a 200 ms tone, then a second engine call that does not return until ``release``
    is set, or until :meth:`abort` when ``abortable`` (piper's ONNX run stops on
    ``RunOptions.terminate``). Any other text: three 200 ms tones at once."""

    name: ClassVar[str] = "blocking"
    options_class: ClassVar[type[TTSOptions]] = _Opts

    def __init__(self, opts: _Opts, *, inside: threading.Event, release: threading.Event,
                 abortable: bool = False) -> None:
        super().__init__(opts)
        self.inside = inside  # set once the blocking call has begun
        self.release = release
        self.abortable = abortable
        self.aborted = False  # the synthesis in progress was aborted
        self.aborts = 0  # abort() calls, over the engine's life

    def synthesize_stream(self, text: str) -> Iterator[np.ndarray]:
        self.aborted = False
        return super().synthesize_stream(text)

    def abort(self) -> None:
        self.aborts += 1
        if self.abortable:
            self.aborted = True
            self.release.set()

    @property
    def sample_rate(self) -> int:
        return SR

    def _synthesize_segment(self, text: str, options: _Opts) -> Iterator[np.ndarray]:
        if text != "long":
            for _ in range(3):
                yield _tone(200)
            return
        yield _tone(200)
        self.inside.set()
        self.release.wait()
        if self.aborted:
            raise TTSAborted("aborted")
        yield _tone(200)


@pytest.mark.parametrize(("n_engines", "abortable"), [(2, False), (1, True)])
def test_a_cancelled_synthesis_inside_an_engine_call_does_not_hold_up_the_next_reply(n_engines, abortable) -> None:
    """A dropped preflight's look-ahead is inside a long engine call when the real reply is asked
    for: with two engines the reply is made whole on the other one, before that call returns; with
    one engine that can abort, the drop aborts the call and the reply gets the engine. With one
    engine that cannot (the code before the pool and the abort) the reply waited for the call: the
    ``done`` assertion fails."""
    inside, release = threading.Event(), threading.Event()
    engines = [_BlockingTTS(_Opts(lead_ms=0.0, segment=False), inside=inside, release=release, abortable=abortable)
               for _ in range(n_engines)]

    async def run() -> tuple[int, int]:
        tts = LocalTTS(engine=engines, ahead_nice=1)
        stale = tts.synthesize("long")
        async for _ in stale:  # the preflight's first chunk is out, its look-ahead goes on
            break
        await asyncio.to_thread(inside.wait)  # ... into the engine call that will not return
        closing = asyncio.ensure_future(stale.aclose())  # dropped, as LiveKit drops a stale preflight

        async def reply() -> tuple[int, int]:
            samples = 0
            async with tts.synthesize("reply") as stream:
                async for ev in stream:
                    samples += ev.frame.samples_per_channel
            return samples, tts.free_engines()

        task = asyncio.ensure_future(reply())
        # the bound only keeps a failing run from hanging: the reply needs ~10 ms of CPU here
        done, _ = await asyncio.wait({task}, timeout=10)
        release.set()  # the stale call returns only now
        await closing
        result = await task
        await tts.aclose()
        assert done, "the reply waited for the stale synthesis's engine call"
        return result

    samples, free_after_reply = asyncio.run(asyncio.wait_for(run(), timeout=60))
    assert samples >= 3 * int(SR * 0.2)  # every segment of the reply
    # two engines: the reply's is free again, the stale one still holds its call; one: it was freed
    assert free_after_reply == 1
    # the drop always asks the held engine to abort (a no-op for an engine that cannot)
    assert sum(e.aborts for e in engines) == 1


def test_tts_pool_rejects_no_engine_and_mixed_rates() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        LocalTTS(engine=[])

    class _Other(_LeadTTS):
        @property
        def sample_rate(self) -> int:
            return 16000

    with pytest.raises(ValueError, match="one sample rate"):
        LocalTTS(engine=[_LeadTTS(_Opts()), _Other(_Opts())])

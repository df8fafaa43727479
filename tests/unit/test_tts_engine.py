"""The streaming TTS interface (system.tts.base) and the bundled piper engine."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from autortc.tts_bench.metrics import detect_repeats, pcm_sha256
from system.tts import StreamingTTS, TTSAborted, TTSError, TTSOptions, engine_class, load_engine

pytestmark = pytest.mark.unit

LONG_TEXT = ("Thanks for calling support. I can see that your router went offline about twenty minutes ago. "
             "Let me send a refresh signal now; the lights should turn green within a minute.")


# -- the interface, with a scripted fake engine -------------------------------------------

@dataclass(frozen=True, kw_only=True)
class FakeOptions(TTSOptions):
    samples_per_char: int = 100
    bad_output: bool = False


class FakeTTS(StreamingTTS[FakeOptions]):
    """Yields ``samples_per_char`` samples per character of each segment (values = char codes)."""

    name: ClassVar[str] = "fake"
    options_class: ClassVar[type[TTSOptions]] = FakeOptions

    def __init__(self, options: FakeOptions | None = None) -> None:
        super().__init__(options)
        self.calls: list[str] = []

    @property
    def sample_rate(self) -> int:
        return 8000

    def _synthesize_segment(self, text: str, options: FakeOptions) -> Iterator[np.ndarray]:
        self.calls.append(text)
        if options.bad_output:
            yield np.zeros(10, dtype=np.float32)
            return
        yield np.repeat(np.frombuffer(text.encode(), dtype=np.uint8).astype(np.int16), options.samples_per_char)


def test_chunks_never_exceed_chunk_ms_and_concatenate_to_the_segments() -> None:
    tts = FakeTTS(FakeOptions(chunk_ms=20.0, samples_per_char=37))
    chunks = list(tts.synthesize_stream(LONG_TEXT))
    limit = tts.chunk_samples()
    assert limit == 160
    assert all(1 <= c.shape[0] <= limit and c.dtype == np.int16 and c.ndim == 1 for c in chunks)
    segments = tts.segments(LONG_TEXT)
    assert tts.calls == segments and len(segments) >= 3
    expected = np.concatenate([np.repeat(np.frombuffer(s.encode(), np.uint8).astype(np.int16), 37) for s in segments])
    np.testing.assert_array_equal(np.concatenate(chunks), expected)


def test_stream_is_lazy_first_chunk_before_later_segments_are_synthesized() -> None:
    tts = FakeTTS()
    stream = tts.synthesize_stream(LONG_TEXT)
    next(stream)
    assert len(tts.calls) == 1
    list(stream)
    assert len(tts.calls) == len(tts.segments(LONG_TEXT))


def test_empty_text_yields_nothing_and_non_str_raises() -> None:
    tts = FakeTTS()
    assert list(tts.synthesize_stream("  ")) == []
    assert tts.synthesize("").shape == (0,)
    with pytest.raises(TypeError, match="text"):
        list(tts.synthesize_stream(b"bytes"))  # type: ignore[arg-type]


def test_wrong_engine_output_is_reported() -> None:
    with pytest.raises(TTSError, match="int16"):
        list(FakeTTS(FakeOptions(bad_output=True)).synthesize_stream("Hello there, friend."))


def test_options_snapshot_update_and_close() -> None:
    tts = FakeTTS()
    stream = tts.synthesize_stream(LONG_TEXT)
    next(stream)
    tts.update_options(samples_per_char=1)
    assert tts.options.samples_per_char == 1
    rest = list(stream)  # the running call keeps its snapshot: 100 samples per char
    assert sum(c.shape[0] for c in rest) > 100 * 10
    with pytest.raises(TypeError):
        tts.update_options(no_such_option=1)
    with pytest.raises(ValueError, match="length_scale"):
        FakeOptions(length_scale=0)
    tts.close()
    tts.close()
    with pytest.raises(TTSError, match="close"):
        list(tts.synthesize_stream("Hello."))


def test_segmentation_can_be_disabled() -> None:
    tts = FakeTTS(FakeOptions(segment=False))
    list(tts.synthesize_stream(LONG_TEXT))
    assert tts.calls == [LONG_TEXT.strip()]


def test_engine_registry_resolves_names_and_paths() -> None:
    assert engine_class("piper").__name__ == "PiperTTS"
    assert engine_class(f"{__name__}:FakeTTS") is FakeTTS
    with pytest.raises(TTSError, match="expected one of"):
        engine_class("nope")
    with pytest.raises(TTSError, match="not a StreamingTTS"):
        engine_class("json:dumps")


# -- piper ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def piper() -> Iterator[StreamingTTS]:
    tts = load_engine("piper")
    yield tts
    tts.close()


def test_piper_describes_the_packaged_voice(piper: StreamingTTS) -> None:
    info = piper.describe()
    assert piper.sample_rate == 22050
    assert info["voice_model"] == "en_US-joe-medium.onnx"
    assert info["options"]["seed"] == 0


def test_piper_is_deterministic_with_a_seed(piper: StreamingTTS) -> None:
    text = "The order contains 3 items, weighs 2.75 kg, and ships on Monday."
    hashes = {pcm_sha256(piper.synthesize(text)) for _ in range(3)}
    assert len(hashes) == 1
    other = load_engine("piper", seed=0)
    try:
        assert pcm_sha256(other.synthesize(text)) in hashes  # same seed, other instance
    finally:
        other.close()


def test_piper_seed_is_what_makes_it_deterministic() -> None:
    text = "Random noise makes every call sound a little different."
    unseeded = load_engine("piper", seed=None)
    reseeded = load_engine("piper", seed=7)
    try:
        assert len({pcm_sha256(unseeded.synthesize(text)) for _ in range(3)}) > 1
        seeded0 = load_engine("piper", seed=0)
        try:
            assert pcm_sha256(reseeded.synthesize(text)) != pcm_sha256(seeded0.synthesize(text))
        finally:
            seeded0.close()
    finally:
        unseeded.close()
        reseeded.close()


def test_piper_streams_first_chunk_before_the_last_segment(piper: StreamingTTS) -> None:
    started: list[str] = []
    impl = piper._synthesize_segment

    def spy(text: str, options: TTSOptions) -> Iterator[np.ndarray]:
        started.append(text)
        yield from impl(text, options)

    piper._synthesize_segment = spy  # type: ignore[method-assign]
    try:
        stream = piper.synthesize_stream(LONG_TEXT)
        first = next(stream)
        assert started == piper.segments(LONG_TEXT)[:1]  # later segments not begun yet
        rest = list(stream)
    finally:
        del piper._synthesize_segment
    assert len(started) == len(piper.segments(LONG_TEXT)) >= 3
    limit = piper.chunk_samples()
    assert all(1 <= c.shape[0] <= limit for c in [first, *rest])
    np.testing.assert_array_equal(np.concatenate([first, *rest]), piper.synthesize(LONG_TEXT))


def test_piper_length_scale_changes_duration(piper: StreamingTTS) -> None:
    text = "Before we book the appointment, I need to confirm a few details."
    base = piper.synthesize(text).shape[0]
    piper.update_options(length_scale=1.3)
    try:
        slow = piper.synthesize(text).shape[0]
    finally:
        piper.update_options(length_scale=1.0)
    assert 1.15 < slow / base < 1.45
    with pytest.raises(ValueError, match="seed"):
        piper.update_options(seed=3)


def test_repetition_metric_on_piper_speech(piper: StreamingTTS) -> None:
    sr = piper.sample_rate
    normal = piper.synthesize("The weather this weekend looks mixed, with light rain on Saturday morning "
                              "and a bright but windy Sunday.")
    looping = piper.synthesize("I will go home now, I will go home now, I will go home now.")
    assert detect_repeats(normal, sr).repeats == 0
    assert detect_repeats(looping, sr).repeats >= 1


def test_piper_bad_voice_path_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(TTSError, match="onnx"):
        load_engine("piper", voice=str(tmp_path / "missing.onnx"))


def test_piper_instance_serves_threads_at_once(piper: StreamingTTS) -> None:
    from concurrent.futures import ThreadPoolExecutor

    texts = ["Sure, one moment while I check.", "Your order ships on Monday; it weighs 2.75 kg.",
             "Thanks for calling. Goodbye!"]
    serial = [pcm_sha256(piper.synthesize(t)) for t in texts]
    with ThreadPoolExecutor(max_workers=3) as pool:
        concurrent = list(pool.map(lambda t: pcm_sha256(piper.synthesize(t)), texts * 2))
    assert concurrent == serial * 2


def test_piper_abort_stops_the_synthesis_in_its_engine_call_and_spares_the_next(piper: StreamingTTS) -> None:
    """A dropped preflight's synthesis is stopped inside its ONNX run (the agent's TTS adapter calls
    ``abort`` when LiveKit drops a stream), and the next synthesis on the same engine is whole."""
    whole_before = piper.synthesize(LONG_TEXT)
    inner = piper._session._session  # type: ignore[attr-defined]
    inside = threading.Event()

    class _Spy:  # says when an ONNX run begins
        def __getattr__(self, name: str):
            return getattr(inner, name)

        def run(self, *args, **kwargs):
            inside.set()
            return inner.run(*args, **kwargs)

    piper._session._session = _Spy()  # type: ignore[attr-defined]
    try:
        stream = piper.synthesize_stream(LONG_TEXT)
        got = [next(stream)]  # the first segment is out
        inside.clear()
        ended: list[BaseException] = []

        def pull() -> None:
            try:
                got.extend(stream)
            except BaseException as exc:  # noqa: BLE001 - asserted below
                ended.append(exc)

        th = threading.Thread(target=pull)
        th.start()
        assert inside.wait(60), "the second segment's ONNX run never began"
        piper.abort()
        th.join(60)
        assert not th.is_alive()
    finally:
        piper._session._session = inner  # type: ignore[attr-defined]
    assert ended and isinstance(ended[0], TTSAborted), ended
    assert sum(c.size for c in got) < whole_before.size // 2  # stopped in the second of >= 3 segments
    again = piper.synthesize(LONG_TEXT)
    assert again.size == whole_before.size  # the abort does not reach the next synthesis

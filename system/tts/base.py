"""The streaming TTS seam: text in, int16 mono PCM chunks out, as soon as each exists.

Every TTS that the bundled agent or ``autortc tts-bench`` drives implements
:class:`StreamingTTS`.  An engine writes one method, :meth:`StreamingTTS._synthesize_segment`
(blocking, yields int16 PCM of any length for one text segment); the public
:meth:`StreamingTTS.synthesize_stream` adds, once for every engine:

* text segmentation (:mod:`system.tts.segmenter`) so the first chunk of a long
  text comes after the first sentence, not after the whole text;
* re-chunking to at most :attr:`TTSOptions.chunk_ms` per yielded array;
* checking that the engine really yields 1-D int16 arrays.

Threading: ``synthesize_stream`` is a blocking generator meant to be run in a
worker thread (the livekit-agents wrapper does that).  One instance may serve
several threads at once: options are an immutable snapshot taken when a call
starts, and engines must keep per-call state local to the call.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from system.tts.segmenter import SegmenterOptions, segment_text

__all__ = ["StreamingTTS", "TTSError", "TTSOptions", "audible_start"]

logger = logging.getLogger("system.tts")


class TTSError(RuntimeError):
    """A TTS engine could not load or synthesize; the message says which engine and why."""


class TTSAborted(TTSError):
    """The synthesis was stopped by :meth:`StreamingTTS.abort` inside an engine call."""


def audible_start(pcm: np.ndarray, sr: int, *, floor_dbfs: float = -40.0, frame_ms: float = 5.0) -> int | None:
    """Index of the first sample of the first ``frame_ms`` frame whose RMS reaches ``floor_dbfs``.

    ``pcm``: ``(n,)`` int16 at ``sr`` Hz. ``None`` when no frame reaches it (or ``pcm`` is shorter
    than one frame). Piper starts every synthesis with 35-65 ms under -40 dBFS (the bundled voice,
    measured on the rules.json replies); the agent trims it (system/agent/tts_adapter.py) and the
    engine can cap it per sentence (``PiperOptions.max_lead_ms``).
    """
    x = np.asarray(pcm, dtype=np.float32).reshape(-1) / 32768.0
    n = max(1, int(sr * frame_ms / 1000))
    k = x.size // n
    if k == 0:
        return None
    rms = np.sqrt(np.mean(x[: k * n].reshape(k, n) ** 2, axis=1))
    loud = np.flatnonzero(rms >= 10 ** (floor_dbfs / 20))
    return int(loud[0] * n) if loud.size else None


@dataclass(frozen=True, kw_only=True)
class TTSOptions:
    """Settings every engine understands; engines subclass it for their own fields.

    Attributes:
        voice: engine-specific voice id or model path; ``None`` = the engine's default voice.
        speaker: speaker index for multi-speaker voices; ``None`` = the voice's default.
        length_scale: phoneme duration multiplier (> 1 slower, < 1 faster).
        chunk_ms: largest chunk that :meth:`StreamingTTS.synthesize_stream` yields, in ms
            of audio (20 ms = one WebRTC frame).  Chunks are exactly this size except the
            last chunk of each segment.
        segment: split text with :func:`system.tts.segmenter.segment_text` before synthesis
            (an engine that streams inside a sentence may set the default to ``False``).
        segmenter: the segmenter's thresholds.
    """

    voice: str | None = None
    speaker: int | None = None
    length_scale: float = 1.0
    chunk_ms: float = 20.0
    segment: bool = True
    segmenter: SegmenterOptions = dataclasses.field(default_factory=SegmenterOptions)

    def __post_init__(self) -> None:
        if isinstance(self.segmenter, dict):  # options read from JSON / the command line
            object.__setattr__(self, "segmenter", SegmenterOptions(**self.segmenter))
        if not self.length_scale > 0:
            raise ValueError(f"length_scale: expected > 0, got {self.length_scale!r}")
        if not self.chunk_ms > 0:
            raise ValueError(f"chunk_ms: expected > 0, got {self.chunk_ms!r}")
        if self.speaker is not None and self.speaker < 0:
            raise ValueError(f"speaker: expected >= 0 or None, got {self.speaker!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (for bench results and gold manifests)."""
        return dataclasses.asdict(self)


OptionsT = TypeVar("OptionsT", bound=TTSOptions)


class StreamingTTS(ABC, Generic[OptionsT]):
    """Blocking streaming TTS: ``synthesize_stream(text)`` yields int16 mono chunks.

    Subclasses set :attr:`options_class`, call ``super().__init__(options)`` and
    implement :attr:`sample_rate` and :meth:`_synthesize_segment`.  Construction
    loads the model (slow, may raise :class:`TTSError`); synthesis never loads.
    """

    name: ClassVar[str] = "tts"
    """Short engine name used in logs, results and gold manifests."""

    options_class: ClassVar[type[TTSOptions]] = TTSOptions

    def __init__(self, options: OptionsT | None = None) -> None:
        opts = options if options is not None else self.options_class()
        if not isinstance(opts, self.options_class):
            raise TypeError(f"{type(self).__name__}: options must be {self.options_class.__name__}, "
                            f"got {type(opts).__name__}")
        self._opts: OptionsT = opts  # type: ignore[assignment]
        self._closed = False
        self._close_lock = threading.Lock()

    # -- options ---------------------------------------------------------------------------
    @property
    def options(self) -> OptionsT:
        """The current (immutable) options."""
        return self._opts

    def update_options(self, **changes: Any) -> None:
        """Replace some options (``dataclasses.replace`` semantics; unknown names raise).

        Calls already running keep the snapshot they started with.
        """
        self._opts = dataclasses.replace(self._opts, **changes)

    # -- engine description ----------------------------------------------------------------
    @property
    @abstractmethod
    def sample_rate(self) -> int:
        """Rate (Hz) of every chunk this engine yields."""

    def describe(self) -> dict[str, Any]:
        """Engine identity for results and gold manifests (name, voice, versions, options)."""
        return {"engine": self.name, "sample_rate": self.sample_rate, "options": self._opts.to_dict()}

    # -- synthesis -------------------------------------------------------------------------
    def chunk_samples(self, options: TTSOptions | None = None) -> int:
        """Largest chunk, in samples, that :meth:`synthesize_stream` yields with ``options``."""
        opts = options or self._opts
        return max(1, int(self.sample_rate * opts.chunk_ms / 1000.0))

    def segments(self, text: str, options: TTSOptions | None = None) -> list[str]:
        """The text segments :meth:`synthesize_stream` synthesizes one after another."""
        opts = options or self._opts
        if not opts.segment:
            stripped = text.strip()
            return [stripped] if stripped else []
        return segment_text(text, opts.segmenter)

    def synthesize_stream(self, text: str) -> Iterator[np.ndarray]:
        """Synthesize ``text``; yield int16 mono arrays of shape ``(n,)``, ``1 <= n <= chunk_samples()``.

        Blocking generator: each chunk is yielded as soon as the engine produced its
        segment, so a consumer can play segment 1 while segment 2 is synthesized.
        Empty or whitespace-only text yields nothing.

        Raises:
            TypeError: ``text`` is not a ``str``.
            TTSError: the engine is closed or failed, or yielded something other than 1-D int16.
        """
        if not isinstance(text, str):
            raise TypeError(f"text: expected str, got {type(text).__name__}")
        if self._closed:
            raise TTSError(f"{self.name}: synthesize_stream() after close()")
        opts = self._opts
        chunk = self.chunk_samples(opts)
        for segment in self.segments(text, opts):
            for pcm in self._synthesize_segment(segment, opts):
                if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
                    raise TTSError(f"{self.name}: engine yielded {type(pcm).__name__} "
                                   f"{getattr(pcm, 'dtype', '')}{getattr(pcm, 'shape', '')}; "
                                   "expected a 1-D int16 numpy array")
                for start in range(0, pcm.shape[0], chunk):
                    yield pcm[start:start + chunk]

    def synthesize(self, text: str) -> np.ndarray:
        """Whole-utterance convenience: the concatenation of :meth:`synthesize_stream`, int16 ``(n,)``."""
        chunks = list(self.synthesize_stream(text))
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

    @abstractmethod
    def _synthesize_segment(self, text: str, options: OptionsT) -> Iterator[np.ndarray]:
        """Synthesize one segment (non-empty, stripped); yield 1-D int16 arrays of any length.

        Must not mutate instance state (may run in several threads at once) and must
        use ``options``, not ``self.options`` (the snapshot of the current call).
        """

    def abort(self) -> None:
        """Stop the synthesis in progress inside its current engine call, if the engine can.

        Callable from any thread. The generator of that synthesis then raises :class:`TTSAborted`;
        a synthesis started after this call is not affected. Default: nothing (the synthesis stops
        only when its consumer stops pulling chunks, after the engine call in progress returns).
        """

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Release the model; idempotent.  Later synthesis raises :class:`TTSError`."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._close_impl()

    def _close_impl(self) -> None:
        """Engine hook for :meth:`close` (free sessions, files); runs once."""

    def __enter__(self) -> StreamingTTS[OptionsT]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Streaming TTS engines of the bundled agent, behind one small interface.

* :mod:`system.tts.base` — :class:`StreamingTTS` (text in → int16 mono chunks out) and
  :class:`TTSOptions`; the seam any engine implements (see ``docs/tts.md``).
* :mod:`system.tts.piper_engine` — the bundled engine (piper + joe voice, deterministic).
* :mod:`system.tts.segmenter` — sentence segmentation for streaming.

:func:`load_engine` builds an engine by registered name (``piper``) or by a
``module:Class`` path, so benches and agents can take an engine name from the
command line without importing every engine.
"""

from __future__ import annotations

import importlib
from typing import Any

from system.tts.base import StreamingTTS, TTSAborted, TTSError, TTSOptions
from system.tts.segmenter import SegmenterOptions, segment_text

__all__ = ["ENGINES", "StreamingTTS", "SegmenterOptions", "TTSAborted", "TTSError", "TTSOptions",
           "engine_class", "load_engine", "segment_text"]

ENGINES: dict[str, str] = {
    "piper": "system.tts.piper_engine:PiperTTS",
}
"""Registered engine names → ``module:Class`` of a :class:`StreamingTTS` subclass."""


def engine_class(engine: str) -> type[StreamingTTS[Any]]:
    """The :class:`StreamingTTS` subclass for a registered name or a ``module:Class`` path.

    Raises:
        TTSError: unknown name, unimportable module, or not a StreamingTTS subclass.
    """
    target = ENGINES.get(engine, engine)
    module_name, sep, class_name = target.partition(":")
    if not sep or not module_name or not class_name:
        raise TTSError(f"engine {engine!r}: expected one of {sorted(ENGINES)} or 'module:Class'")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise TTSError(f"engine {engine!r}: cannot import {target}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, StreamingTTS)):
        raise TTSError(f"engine {engine!r}: {target} is not a StreamingTTS subclass")
    return cls


def load_engine(engine: str = "piper", **options: Any) -> StreamingTTS[Any]:
    """Build an engine with its options class filled from ``options`` (unknown names raise).

    Example: ``load_engine("piper", length_scale=1.3)``.
    """
    cls = engine_class(engine)
    try:
        opts = cls.options_class(**options)
    except TypeError as exc:
        raise TTSError(f"engine {engine!r}: bad options {sorted(options)}: {exc}") from exc
    return cls(opts)

"""Atomic file writes: a reader sees the old file or the whole new one, never half of it.

One helper for the stack's ``state.json``, the run's result/summary JSON and the TTS
bench's gold WAVs and manifests.  In ``system/`` because the stack may import nothing of
the tester but ``autortc.protocol``; the tester imports it from here.

    with atomic_path(dest) as tmp:       # any writer (soundfile, json, ...) writes tmp
        sf.write(tmp, pcm, sr, format="WAV")
    atomic_write_text(dest, text)        # the common case
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text"]


@contextlib.contextmanager
def atomic_path(path: Path | str, *, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error it gets
    permissions ``mode`` and replaces ``path`` (``os.replace``), else it is removed.

    The parent folder is created.  ``mode`` defaults to world-readable (``mkstemp`` alone
    makes 0600); pass ``0o600`` for secrets.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=str(p.parent))
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path | str, data: bytes, *, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path, mode=mode) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: Path | str, text: str, *, mode: int = 0o644, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    return atomic_write_bytes(path, text.encode(encoding), mode=mode)

"""WAV input/output for AutoRTC: int16 (or any format) at the edges, float32 inside.

``load_audio`` reads any sample rate and channel count through ``soundfile`` and
returns mono float32 in [-1, 1]; ``resample`` uses ``soxr``.  Every failure to read
a file raises :class:`AudioFileError`, whose message names the file and says what
was expected, so command-line tools can print it and exit 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Audio", "AudioFileError", "load_audio", "resample", "write_wav"]


class AudioFileError(ValueError):
    """A file that should hold audio is missing, empty, not audio, or unreadable."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True, slots=True)
class Audio:
    """Mono float32 samples with their sample rate.

    ``samples`` has shape ``(n,)``, dtype float32, full scale = 1.0.
    """

    samples: np.ndarray
    sr: int

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / float(self.sr)


def load_audio(path: Path | str, *, sr: int | None = None, mono: bool = True) -> Audio:
    """Read an audio file (WAV, FLAC, ...) as float32.

    Args:
        path: file to read.
        sr: resample to this rate (Hz) with soxr; ``None`` keeps the file's rate.
        mono: average channels to one (shape ``(n,)``); with ``False`` a multi-channel
            file keeps shape ``(n, channels)``.

    Raises:
        AudioFileError: the file does not exist, is not audio, cannot be decoded,
            or holds no samples.
    """
    import soundfile as sf

    p = Path(path)
    if not p.exists():
        raise AudioFileError(p, "file not found")
    if p.is_dir():
        raise AudioFileError(p, "is a directory, expected an audio file")
    if p.stat().st_size == 0:
        raise AudioFileError(p, "file is empty (0 bytes), expected a WAV file")
    try:
        data, file_sr = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        raise AudioFileError(p, f"not a readable audio file ({exc})") from exc
    if data.shape[0] == 0:
        raise AudioFileError(p, "audio file holds no samples")
    if not np.all(np.isfinite(data)):
        raise AudioFileError(p, "audio file holds NaN or infinite samples")
    samples = data.mean(axis=1) if mono else (data[:, 0] if data.shape[1] == 1 else data)
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if sr is not None and sr != file_sr:
        samples = resample(samples, int(file_sr), int(sr))
        file_sr = sr
    return Audio(samples=samples, sr=int(file_sr))


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample ``x`` (shape ``(n,)`` or ``(n, ch)``) from ``sr_in`` to ``sr_out`` Hz with soxr (HQ)."""
    if sr_in == sr_out:
        return np.asarray(x, dtype=np.float32)
    import soxr

    return np.asarray(soxr.resample(np.asarray(x, dtype=np.float32), sr_in, sr_out, quality="HQ"),
                      dtype=np.float32)


def write_wav(path: Path | str, samples: np.ndarray, sr: int) -> Path:
    """Write float samples (clipped to [-1, 1]) as a 16-bit PCM WAV; returns the path."""
    import soundfile as sf

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(p), np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0), int(sr), subtype="PCM_16")
    return p

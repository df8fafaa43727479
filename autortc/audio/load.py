"""Reading a user's audio file: any format libsndfile reads → mono float32 at a wanted rate.

One loader for what enters AutoRTC from outside (``autortc cases new --wav``, the browser
harness's fake-capture WAV): channels are averaged, the rate is converted with soxr's HQ
resampler, level and timing are kept.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class AudioFileError(ValueError):
    """The file is missing, not audio libsndfile can read, or has no samples (message names the file)."""


def load_mono(path: Path | str, sr: int) -> np.ndarray:
    """``path`` as ``(n_samples,) float32`` mono at ``sr`` Hz, full scale ±1.0.

    Raises:
        AudioFileError: the file does not exist, cannot be read as audio, or holds no samples.
    """
    import soundfile as sf
    import soxr

    p = Path(path)
    if not p.is_file():
        raise AudioFileError(f"{p}: file not found")
    try:
        x, src_sr = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioFileError(f"{p}: not a readable audio file ({exc})") from None
    if x.shape[0] == 0:
        raise AudioFileError(f"{p}: no samples")
    y = x.mean(axis=1).astype(np.float32)
    if src_sr != sr:
        y = soxr.resample(y, src_sr, sr, quality="HQ").astype(np.float32)
    return y

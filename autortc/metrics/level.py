"""Level metrics: RMS, clipping ratio, ``audio_valid`` and ``capture_status``."""

from __future__ import annotations

from enum import Enum

import numpy as np

from autortc.audio.energy import AUDIBLE_RMS as AUDIO_VALID_RMS  # seed D9: a capture under it is silent
from autortc.audio.energy import rms
CLIP_LEVEL = 0.999
"""|sample| at or above this counts as clipped (int16 full scale is 32767/32768 = 0.99997)."""


class CaptureStatus(str, Enum):
    """Whether a turn's audio was captured (seed D9 P0-4, plus PRE_SILENT for a silent agent copy)."""

    OK = "OK"
    POST_SILENT = "POST_SILENT"
    PRE_MISSING = "PRE_MISSING"
    POST_MISSING = "POST_MISSING"
    PRE_SILENT = "PRE_SILENT"


def clipping_ratio(x: np.ndarray, *, level: float = CLIP_LEVEL) -> float:
    """Fraction (0..1) of samples with ``|x| >= level``.  Gate: < 0.001 (0.1 %, seed)."""
    x = np.asarray(x)
    return float(np.mean(np.abs(x) >= level)) if x.size else 0.0


def audio_valid(reply_rms: float | None, full_rms: float | None, *, threshold: float = AUDIO_VALID_RMS) -> bool:
    """Seed D9 rule: ``max(reply_rms, full_rms) >= 0.01`` (a bad reply slice must not hide real audio)."""
    vals = [v for v in (reply_rms, full_rms) if v is not None]
    return bool(vals) and max(vals) >= threshold


def capture_status(pre_rms: float | None, post_rms: float | None, *, threshold: float = AUDIO_VALID_RMS) -> CaptureStatus:
    """Classify a turn's capture; ``None`` means the file is missing.

    ``post_rms`` should be ``max(reply_rms, full_rms)``.  Order: POST_MISSING,
    PRE_MISSING, POST_SILENT (agent spoke, probe heard nothing), PRE_SILENT, OK.
    """
    if post_rms is None:
        return CaptureStatus.POST_MISSING
    if pre_rms is None:
        return CaptureStatus.PRE_MISSING
    if post_rms < threshold:
        return CaptureStatus.POST_SILENT
    if pre_rms < threshold:
        return CaptureStatus.PRE_SILENT
    return CaptureStatus.OK

"""Prepare a case WAV for Chromium's fake audio capture.

Chromium's ``--use-file-for-fake-audio-capture`` plays the file into the fake microphone and
LOOPS it when it ends. The file we hand it is therefore: ``lead_s`` of silence (covers the
time between opening the capture and the agent subscribing), the case's speech, then
``pad_s`` of silence (seed: 10 s) during which the user is silent and the agent answers.
A turn must be over before the loop restarts: ``PreparedWav.loop_s`` says when that is,
counted from the moment capture opened.

Thresholds: the page detects speech at 0.015 RMS (seed). A file whose loudest 10 ms stays
below twice that (a quiet-speaker case) gets a threshold of half its loudest 10 ms RMS, so the
page can still find it; ``PreparedWav.detector`` is the configuration to give the page.
The case's annotated end of speech (``speech_end_ms``), when known, is kept as ``eot_sample``:
USER_KPI's EoT is that sample, aligned to the page by the detected onset (a noisy case never
goes below the threshold, so its detected "EoT" would be the end of the noise).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from autortc.audio.load import load_mono

from .detect import DetectorConfig, Segment, detect_segments

CHROMIUM_FAKE_CAPTURE_SR = 48_000


@dataclass(frozen=True)
class PreparedWav:
    """The WAV given to Chromium and where its speech is, in samples of that file."""

    path: Path
    sr: int
    n_samples: int
    lead_samples: int
    pad_samples: int
    segments: tuple[Segment, ...]  # speech found by the page's detector, samples of `path`
    detector: DetectorConfig  # what the page must use to find the same segments
    eot_sample: int | None = None  # annotated end of speech, samples of `path` (None: not given)

    @property
    def user_eot_sample(self) -> int:
        """The user's end of speech: the annotation when given, else the detector's."""
        return self.eot_sample if self.eot_sample is not None else self.speech_end_sample

    @property
    def loop_s(self) -> float:
        return self.n_samples / self.sr

    @property
    def speech_onset_sample(self) -> int:
        return self.segments[0].onset

    @property
    def speech_end_sample(self) -> int:
        return self.segments[-1].end

    @property
    def speech_ms(self) -> float:
        """First speech onset to last speech end, ms: bounds the user's turn on the page."""
        return (self.speech_end_sample - self.speech_onset_sample) * 1000.0 / self.sr


def prepare_chromium_wav(
    src: Path,
    dst: Path,
    *,
    lead_s: float = 1.0,
    pad_s: float = 10.0,
    sr: int = CHROMIUM_FAKE_CAPTURE_SR,
    detector: DetectorConfig | None = None,
    speech_end_ms: float | None = None,
) -> PreparedWav:
    """Convert ``src`` to mono int16 at ``sr`` Hz (soxr, HQ), add ``lead_s`` of leading and
    ``pad_s`` of trailing silence, write it to ``dst``. ``speech_end_ms``: the case's annotated
    end of speech, ms from the start of ``src``.

    Raises ValueError naming the file when it cannot be read, is empty, holds no signal the
    detector could find, or ``speech_end_ms`` lies outside it.
    """
    if lead_s < 0 or pad_s < 0:
        raise ValueError(f"lead_s and pad_s must be >= 0, got lead_s={lead_s}, pad_s={pad_s}")
    mono = np.clip(load_mono(src, sr), -1.0, 32767 / 32768)  # AudioFileError is a ValueError naming the file
    lead = int(round(lead_s * sr))
    pad = int(round(pad_s * sr))
    out = np.concatenate([np.zeros(lead, np.float32), mono, np.zeros(pad, np.float32)])
    pcm = np.round(out * 32768.0).astype(np.int16)
    dst.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(dst), pcm, sr, subtype="PCM_16")
    # Detect on what Chromium will actually read back (int16 / 32768).
    y = pcm.astype(np.float32) / 32768.0
    det = fit_threshold(y, sr, detector or DetectorConfig())
    segs = detect_segments(y, sr, det)
    if not segs:
        raise ValueError(f"{src}: no signal above {det.threshold_rms:.4g} RMS; the browser could not find the speech")
    eot = None
    if speech_end_ms is not None:
        if not 0 < speech_end_ms <= len(mono) * 1000.0 / sr + 1.0:
            raise ValueError(f"{src}: speech_end_ms={speech_end_ms} is outside the file ({len(mono) * 1000.0 / sr:.0f} ms)")
        eot = lead + min(len(mono) - 1, int(round(speech_end_ms * sr / 1000.0)))
    return PreparedWav(
        path=dst, sr=sr, n_samples=len(pcm), lead_samples=lead, pad_samples=pad, segments=tuple(segs),
        detector=det, eot_sample=eot,
    )


def fit_threshold(x: np.ndarray, sr: int, cfg: DetectorConfig) -> DetectorConfig:
    """``cfg``, or, when the loudest 10 ms window of ``x`` is below twice its threshold, a copy
    with the threshold at half that window's RMS (quiet speakers stay detectable)."""
    w = cfg.window_samples(sr)
    n = len(x) // w
    if n == 0:
        return cfg
    peak = float(np.sqrt((x[: n * w].astype(np.float64).reshape(n, w) ** 2).mean(axis=1)).max())
    if peak >= 2 * cfg.threshold_rms or peak == 0.0:
        return cfg
    return replace(cfg, threshold_rms=round(peak / 2, 6))

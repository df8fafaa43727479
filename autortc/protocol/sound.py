"""The first sound of a stream: one rule that the bench and the agent under test share.

The premature fault (``autortc faultbench``) plans "reply N ms after the user's first sound":
the bench finds that sample in the case WAV, the agent in the audio it receives, and both
must name the same sample, so the rule lives here in the protocol package (the only part of
``autortc`` an agent may import) and ``autortc.audio.energy`` re-exports it beside the other
thresholds, whose table documents it (``SOUND_DBFS``, ``SOUND_RUN_MS``).

Rule: the first run of >= ``SOUND_RUN_MS`` (30 ms) of ``SOUND_BLOCK_MS`` (10 ms) blocks whose
RMS is >= ``SOUND_DBFS`` (-50 dBFS), blocks on the stream's own grid.  Pure numpy, no I/O.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SOUND_DBFS", "SOUND_RUN_MS", "SOUND_BLOCK_MS", "SoundOnset", "first_sound_ms"]

SOUND_DBFS = -50.0
"""Block RMS (dBFS, full scale 1.0) at or above which a 10 ms block is sound."""
SOUND_RUN_MS = 30
"""Shortest run of sound blocks (ms) that counts as the first sound."""
SOUND_BLOCK_MS = 10
"""Block length (ms)."""


class SoundOnset:
    """Streaming first sound (``SOUND_DBFS``/``SOUND_RUN_MS`` above) over int16 or float chunks.

    ``push(chunk, t_last=...)`` returns, once, the time of the run's first sample, counted back
    from ``t_last`` (the time of the chunk's last sample, e.g. its arrival); ``onset_sample`` is
    that sample's index in the stream.  The clock is the caller's (a parameter, not read here).
    """

    def __init__(self, sr: int) -> None:
        self.sr = sr
        self._block = max(1, sr * SOUND_BLOCK_MS // 1000)
        self._need = max(1, SOUND_RUN_MS // SOUND_BLOCK_MS)
        self._buf = np.zeros(0, np.float64)
        self._seen = 0  # samples pushed
        self._next_block = 0  # stream index of the first sample of the next block to judge
        self._run_start: int | None = None
        self._run = 0
        self.onset_sample: int | None = None

    def push(self, chunk: np.ndarray, *, t_last: float) -> float | None:
        if self.onset_sample is not None:
            return None
        x = np.asarray(chunk)
        x = x.astype(np.float64) / 32768.0 if x.dtype == np.int16 else x.astype(np.float64)
        self._buf = np.concatenate([self._buf, x])
        self._seen += x.size
        thr = 10.0 ** (SOUND_DBFS / 20.0)
        while self._buf.size >= self._block:
            blk, self._buf = self._buf[: self._block], self._buf[self._block:]
            if float(np.sqrt(np.mean(blk * blk))) >= thr:
                if self._run_start is None:
                    self._run_start = self._next_block
                self._run += 1
            else:
                self._run_start, self._run = None, 0
            self._next_block += self._block
            if self._run >= self._need:
                assert self._run_start is not None
                self.onset_sample = self._run_start
                return t_last - (self._seen - 1 - self._run_start) / self.sr
        return None


def first_sound_ms(x: np.ndarray, sr: int) -> float | None:
    """Time (ms from the first sample) of ``SoundOnset``'s first sound in a whole signal; None if none."""
    det = SoundOnset(sr)
    det.push(np.asarray(x), t_last=0.0)
    return None if det.onset_sample is None else 1000.0 * det.onset_sample / sr

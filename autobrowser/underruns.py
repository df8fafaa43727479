"""Capture slips of Chromium's fake microphone, read from the page's mic ``zero_runs``.

What the page's mic worklet sees in capture mode is not what WebRTC sends: the worklet hangs off
a ``MediaStreamAudioSourceNode``, which Chromium feeds through a FIFO
(``WebAudioMediaStreamAudioSink``) from the capture thread. When the fake capture's 10 ms timer
(``FakeAudioWorker``) runs late, that FIFO runs dry and Chromium zero-fills one whole 10 ms
capture buffer for the page. The fake capture itself skips the missed interval: the file is read
on, no sample is lost or zeroed, so the stimulus WebRTC sends is the file, 10 ms *late* from that
point on (the receiver sees the packets late). On the page that shows as a run of exact zeros
(~412 of the 480 frames are exactly zero: the path's resampling smears the chunk's edges) and a
timeline 480 frames longer after it.

The page also reports the zero runs of the file itself (digital silence inside a case WAV, e.g.
``rate_slow_speaker`` has 24 ms of exact zeros at 3.656 s): those are the stimulus, not a fault.
:func:`classify_zero_runs` tells the two apart by placing each run on the capture file (aligned
at the first speech onset, shifted by the chunks inserted before it): a run that lies on exact
zeros of the file is the source's own; any other is an underrun of ``round(length / chunk)``
chunks (at least one; zeros of the file inside the run not counted).

A slip that the FIFO's slack absorbed leaves no zeros: the count is a lower bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

CHUNK_MS = 10.0  # Chromium's capture buffer (fake device: 10 ms)
_ALIGN_TOL = 16  # samples a run may stick out of the file's zeros (onset alignment error)


@dataclass(frozen=True)
class MicUnderrun:
    """Zeros the browser inserted into the page's mic path (a capture slip)."""

    frame: int  # first exact zero on the page's AudioContext
    zeros: int  # exact zeros the page saw
    chunks: int  # 10 ms capture buffers inserted
    file_sample: int  # where in the capture file the stream was when it happened

    def to_dict(self, sr: int, lead_samples: int) -> dict:
        return {"frame": self.frame, "zeros": self.zeros, "chunks": self.chunks, "file_sample": self.file_sample,
                "at_ms": round((self.file_sample - lead_samples) * 1000.0 / sr, 2),
                "ms": round(self.chunks * CHUNK_MS, 2)}


@dataclass(frozen=True)
class MicZeroRuns:
    """The page's mic zero runs of one turn, split into the file's own and inserted ones."""

    underruns: tuple[MicUnderrun, ...]
    source_runs: int  # runs that are exact zeros of the capture file (digital silence of the case)
    chunk_frames: int

    @property
    def inserted_frames(self) -> int:
        return sum(u.chunks for u in self.underruns) * self.chunk_frames

    def inserted_frames_before(self, file_sample: int) -> int:
        """Frames inserted on the page before the file's ``file_sample`` played."""
        return sum(u.chunks for u in self.underruns if u.file_sample < file_sample) * self.chunk_frames

    def within(self, lo: int, hi: int) -> tuple[MicUnderrun, ...]:
        """Underruns that fell while the file played samples ``[lo, hi]`` (e.g. the speech)."""
        return tuple(u for u in self.underruns if lo <= u.file_sample <= hi)


def _on_file_zeros(zero: np.ndarray, lo: int, hi: int) -> bool:
    """``[lo, hi)`` of the file, less the alignment tolerance at both ends, is all exact zeros."""
    tol = min(_ALIGN_TOL, max(0, (hi - lo) // 4))
    a, b = max(0, lo + tol), min(zero.size, hi - tol)
    return b > a and bool(zero[a:b].all())


def classify_zero_runs(
    zero_runs: Sequence[Sequence[int]],
    *,
    onset_frame: int,
    file_pcm: np.ndarray,
    file_onset_sample: int,
    sr: int,
) -> MicZeroRuns:
    """Split the page's ``mic.zero_runs`` (``[start_frame, length]``) of a capture-mode turn.

    ``onset_frame``: the page's first mic onset; ``file_onset_sample``: the same onset in the
    capture file ``file_pcm`` (the detector is the same: they align to the sample). Runs before
    the onset are skipped (the lead-in). Pure; never raises on odd input (a run off the file is
    an underrun).
    """
    chunk = int(round(sr * CHUNK_MS / 1000.0))
    zero = np.asarray(file_pcm) == 0
    offset = onset_frame - file_onset_sample  # page frame - file sample, before any insertion
    shift = 0
    out: list[MicUnderrun] = []
    source = 0
    for start, length in sorted((int(a), int(n)) for a, n in zero_runs):
        if start < onset_frame or length <= 0:
            continue
        fa = start - offset - shift
        if _on_file_zeros(zero, fa, fa + length):
            source += 1
            continue
        # a chunk may land next to the file's own zeros and merge with them: count only the rest
        seen = int(zero[max(0, fa):max(0, fa + length)].sum())
        n = max(1, int(round((length - seen) / chunk)))
        out.append(MicUnderrun(frame=start, zeros=length, chunks=n, file_sample=fa))
        shift += n * chunk
    return MicZeroRuns(underruns=tuple(out), source_runs=source, chunk_frames=chunk)

"""The user's microphone as a timeline: silence, with speech segments placed at sample positions.

Pacing is by the clock, not by sleeps that drift: frame ``n`` is due at
``t0 + n * frame_s``. Segments can be placed while the mic runs (a barge-in
anchored to the agent's speech), and every sample published is kept so the
published stream is exactly ``user.wav``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class PlacedSegment:
    index: int
    start_sample: int  # in the mic timeline
    pcm: np.ndarray  # (n,) int16
    speech_start: int  # first speech sample, relative to the segment
    speech_end: int  # last speech sample + 1, relative to the segment

    @property
    def end_sample(self) -> int:
        return self.start_sample + self.pcm.size


class MicTimeline:
    """Mixes placed segments into ``frame_samples``-long int16 frames at ``sr`` Hz.

    ``placed_upto`` is the first sample not yet published; a segment placed earlier
    than that raises ``ValueError`` (it would be cut).
    """

    def __init__(self, *, sr: int, frame_samples: int) -> None:
        self.sr = sr
        self.frame_samples = frame_samples
        self.segments: list[PlacedSegment] = []
        self.published: list[np.ndarray] = []
        self.published_samples = 0
        self.t0: float | None = None  # clock time of sample 0
        self.handed: list[tuple[float, int]] = []  # (clock time the frame went to the SDK, its first sample)

    def place(self, seg: PlacedSegment) -> None:
        if seg.start_sample < self.published_samples:
            raise ValueError(
                f"segment {seg.index} placed at sample {seg.start_sample}, already published up to {self.published_samples}"
            )
        self.segments.append(seg)

    def sample_at(self, t: float) -> int:
        """Timeline sample index at clock time ``t`` (requires ``t0``)."""
        assert self.t0 is not None
        return int(round((t - self.t0) * self.sr))

    def time_of(self, sample: int) -> float:
        """Clock time of ``sample``: when its frame was really handed to the SDK (a late frame
        makes its samples late), plus the offset inside the frame; future samples use the schedule."""
        assert self.t0 is not None
        k = sample // self.frame_samples
        if k < len(self.handed):
            t, s0 = self.handed[k]
            return t + (sample - s0) / self.sr
        return self.t0 + sample / self.sr

    def next_frame(self) -> np.ndarray:
        a = self.published_samples
        b = a + self.frame_samples
        out = np.zeros(self.frame_samples, dtype=np.int32)
        for seg in self.segments:
            lo, hi = max(a, seg.start_sample), min(b, seg.end_sample)
            if lo < hi:
                out[lo - a : hi - a] += seg.pcm[lo - seg.start_sample : hi - seg.start_sample]
        frame = np.clip(out, -32768, 32767).astype(np.int16)
        self.published.append(frame)
        self.published_samples = b
        return frame

    def pcm(self) -> np.ndarray:
        return np.concatenate(self.published) if self.published else np.zeros(0, np.int16)

    def last_segment_end(self) -> int:
        return max((s.end_sample for s in self.segments), default=0)


async def run_paced(
    mic: MicTimeline,
    sink: Callable[[np.ndarray], Awaitable[None]],
    *,
    stop: asyncio.Event,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Publish frames until ``stop`` is set; frame n is handed to ``sink`` at ``t0 + n*frame_s``."""
    frame_s = mic.frame_samples / mic.sr
    mic.t0 = clock()
    n = 0
    while not stop.is_set():
        due = mic.t0 + n * frame_s
        delay = due - clock()
        if delay > 0:
            await sleep(delay)
        start = mic.published_samples
        frame = mic.next_frame()
        mic.handed.append((clock(), start))
        await sink(frame)
        n += 1

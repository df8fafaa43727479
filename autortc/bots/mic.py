"""The user's microphone as a timeline: silence, with speech segments placed at sample positions.

Pacing is by the clock, not by sleeps that drift: frame ``n`` is due at
``t0 + n * frame_s``. Segments can be placed while the mic runs (a barge-in
anchored to the agent's speech), and every sample published is kept so the
published stream is exactly ``user.wav``.

The mic is handed to the SDK ``lead_s`` ahead of its time: LiveKit's native audio source
(livekit/rust-sdks ``webrtc-sys/src/audio_track.cpp``, ``InternalSource``) sends 10 ms of its
queue every 10 ms on a thread of its own and **sends nothing when the queue is empty**, so a
harness loop held up longer than what is queued puts a hole into the user's speech on the wire and
makes the rest of it late (the queue cannot send faster than real time). Session 25 measured loop
stalls of 30-119 ms (``scripts/loop_stalls.py``; docs/agent-latency.md: a scheduling delay of the
harness's thread, a full garbage collection, the FFI call itself) and the user side 48-200 ms late
at its end of speech. With frames queued ``lead_s``
ahead, the source's own 10 ms task is the mic's clock, and a stall shorter than ``lead_s`` changes
nothing the agent hears. The time each sample goes out is modelled as that queue sends it: frame
``n`` at ``max(t0 + n * frame_s, its hand-over, frame n-1's + frame_s)``, up to the task's tick
phase (< 10 ms, constant over a room).
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
        # (clock time the frame goes out of the SDK's queue, its first sample): see the module docstring
        self.handed: list[tuple[float, int]] = []

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
        """Clock time of ``sample``: when its frame goes out of the SDK's queue (a frame handed over
        after its time, past the queue's lead, makes it and every later sample late), plus the
        offset inside the frame; future samples use the schedule."""
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
    lead_s: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Publish frames until ``stop`` is set; frame n is handed to ``sink`` at ``t0 + n*frame_s - lead_s``.

    ``lead_s`` (s, >= 0): how far ahead of its time a frame is handed over; the sink must queue that
    much (LiveKit's ``AudioSource(queue_size_ms=...)``). ``mic.handed`` gets each frame's time out
    of that queue (module docstring)."""
    if lead_s < 0:
        raise ValueError(f"lead_s: expected >= 0 s, got {lead_s!r}")
    frame_s = mic.frame_samples / mic.sr
    mic.t0 = clock()
    n = 0
    out = mic.t0 - frame_s  # when the previous frame went out
    while not stop.is_set():
        due = mic.t0 + n * frame_s
        delay = due - lead_s - clock()
        if delay > 0:
            await sleep(delay)
        start = mic.published_samples
        frame = mic.next_frame()
        await sink(frame)
        # the frame is queued by the time the sink returns (the FFI call itself was seen to take 46 ms);
        # a sink that waited for a full queue returns before its frame goes out, so this never dates
        # a frame early
        out = max(due, clock(), out + frame_s)
        mic.handed.append((out, start))
        n += 1

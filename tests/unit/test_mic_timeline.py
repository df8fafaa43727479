import asyncio

import numpy as np
import pytest

from autortc.bots.mic import MicTimeline, PlacedSegment, run_paced

pytestmark = pytest.mark.unit


def test_segments_land_at_their_sample_and_overlaps_mix():
    mic = MicTimeline(sr=16000, frame_samples=160)
    a = np.full(400, 1000, np.int16)
    b = np.full(100, 500, np.int16)
    mic.place(PlacedSegment(index=0, start_sample=250, pcm=a, speech_start=0, speech_end=400))
    mic.place(PlacedSegment(index=1, start_sample=600, pcm=b, speech_start=0, speech_end=100))
    for _ in range(6):
        mic.next_frame()
    out = mic.pcm()
    assert out.size == 960
    assert np.all(out[:250] == 0) and np.all(out[250:600] == 1000)
    assert np.all(out[600:650] == 1500)  # 600..650 is inside both
    assert np.all(out[650:700] == 500) and np.all(out[700:] == 0)


def test_placing_into_published_audio_is_refused():
    mic = MicTimeline(sr=16000, frame_samples=160)
    mic.next_frame()
    with pytest.raises(ValueError, match="already published"):
        mic.place(PlacedSegment(index=0, start_sample=100, pcm=np.ones(10, np.int16), speech_start=0, speech_end=10))


async def test_pacing_follows_the_clock_not_the_sleeps(task_guard):
    """Frame n is handed over at t0 + n*10 ms even when each sleep overshoots."""
    now = [100.0]
    handed: list[float] = []
    stop = asyncio.Event()

    async def oversleep(d: float) -> None:
        now[0] += d + 0.003  # every sleep is 3 ms late

    async def sink(pcm):
        handed.append(now[0])
        if len(handed) == 50:
            stop.set()

    mic = MicTimeline(sr=16000, frame_samples=160)
    await run_paced(mic, sink, stop=stop, clock=lambda: now[0], sleep=oversleep)
    due = [100.0 + n * 0.01 for n in range(50)]
    lateness = np.array(handed) - np.array(due)
    assert lateness.max() < 0.0031  # lateness never accumulates
    assert mic.time_of(160 * 49) == pytest.approx(100.493)  # sample times are the real handovers


class _NativeQueue:
    """LiveKit's native audio source queue on a fake clock, as ``webrtc-sys/src/audio_track.cpp``
    (``InternalSource``) runs it: a task every 10 ms (first tick ``phase`` s after the first capture)
    sends one 10 ms frame if the queue holds one, else nothing; a capture completes at once while
    the queue holds <= ``queue_frames``, else at the tick that brings it down to that. ``sent``
    maps each frame's first sample to the clock time it went out: the truth here."""

    def __init__(self, now: list[float], *, queue_frames: int, phase: float = 0.004) -> None:
        self.now, self.queue_frames, self.phase = now, queue_frames, phase
        self.queue: list[int] = []
        self.sent: dict[int, float] = {}
        self.next_tick: float | None = None

    def _run_ticks(self, until: float) -> None:
        while self.next_tick is not None and self.next_tick <= until:
            if self.queue:
                self.sent[self.queue.pop(0)] = self.next_tick
            self.next_tick += 0.01

    async def capture(self, first_sample: int) -> None:
        if self.next_tick is None:
            self.next_tick = self.now[0] + self.phase
        self._run_ticks(self.now[0])
        self.queue.append(first_sample)
        while len(self.queue) > self.queue_frames:  # the capture waits for the next tick
            self.now[0] = self.next_tick
            self._run_ticks(self.now[0])

    def flush(self) -> None:
        self._run_ticks(self.now[0] + 0.01 * (len(self.queue) + 1))


def _late_s(mic: MicTimeline, n_frames: int) -> float:
    """The most a frame went out after its time by the mic's own dating, s."""
    return max(mic.time_of(k * 160) - (mic.t0 + k * 0.01) for k in range(n_frames))


async def _paced_through_queue(*, lead_frames: int, stall_at: int, stall_s: float, n_frames: int = 60):
    now = [0.0]
    stop = asyncio.Event()
    mic = MicTimeline(sr=16000, frame_samples=160)
    native = _NativeQueue(now, queue_frames=lead_frames + 2)
    calls = [0]

    async def sleep(d: float) -> None:
        now[0] += d

    async def sink(pcm: np.ndarray) -> None:
        calls[0] += 1
        if calls[0] == stall_at:  # the loop is held up before the next frame
            now[0] += stall_s
        await native.capture(mic.published_samples - pcm.size)
        if calls[0] == n_frames:
            stop.set()

    await run_paced(mic, sink, stop=stop, lead_s=lead_frames * 0.01, clock=lambda: now[0], sleep=sleep)
    native.flush()
    return mic, native.sent


@pytest.mark.parametrize("stall_s", [0.0, 0.03, 0.09])
async def test_a_stall_shorter_than_the_lead_leaves_the_wire_untouched(task_guard, stall_s):
    mic, sent = await _paced_through_queue(lead_frames=10, stall_at=30, stall_s=stall_s)
    times = np.array([sent[k * 160] for k in range(60)])
    assert np.allclose(np.diff(times), 0.01)  # no hole: one frame every 10 ms
    model = np.array([mic.time_of(k * 160) for k in range(60)])
    assert np.all(np.abs(model - times) <= 0.01 + 1e-9)  # within the queue task's tick phase
    assert _late_s(mic, 60) == pytest.approx(0.0)


async def test_a_stall_longer_than_the_lead_is_a_hole_and_what_follows_is_late(task_guard):
    mic, sent = await _paced_through_queue(lead_frames=10, stall_at=30, stall_s=0.15)
    times = np.array([sent[k * 160] for k in range(60)])
    gaps = np.diff(times)
    assert gaps.max() == pytest.approx(0.06, abs=0.0101)  # 150 ms held up, 100 ms queued: ~50 ms of nothing
    model = np.array([mic.time_of(k * 160) for k in range(60)])
    assert np.all(np.abs(model - times) <= 0.01 + 1e-9)  # before and after the hole
    assert _late_s(mic, 60) == pytest.approx(times[-1] - (mic.t0 + 59 * 0.01), abs=0.0101)  # the rest stays late


async def test_without_a_lead_every_stall_is_a_hole(task_guard):
    """The mic as it was until session 25 (a 20 ms queue, frames handed at their time)."""
    mic, sent = await _paced_through_queue(lead_frames=0, stall_at=30, stall_s=0.025)
    times = np.array([sent[k * 160] for k in range(60)])
    assert np.diff(times).max() >= 0.02  # a 25 ms stall is a hole on the wire
    model = np.array([mic.time_of(k * 160) for k in range(60)])
    assert np.all(np.abs(model - times) <= 0.01 + 1e-9)  # and the model still dates every frame


def test_a_negative_lead_is_refused():
    mic = MicTimeline(sr=16000, frame_samples=160)
    with pytest.raises(ValueError, match="lead_s"):
        asyncio.run(run_paced(mic, lambda pcm: asyncio.sleep(0), stop=asyncio.Event(), lead_s=-0.01))

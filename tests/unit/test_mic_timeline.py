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


async def test_sample_times_follow_the_real_handover(task_guard):
    """A frame handed over late makes its samples late: EoT is when the SDK got the audio."""
    now = [0.0]
    stop = asyncio.Event()
    n = [0]

    async def sleep(d: float) -> None:
        now[0] += d + (0.025 if n[0] == 5 else 0.0)  # frame 5 is 25 ms late

    async def sink(pcm):
        n[0] += 1
        if n[0] == 10:
            stop.set()

    mic = MicTimeline(sr=16000, frame_samples=160)
    await run_paced(mic, sink, stop=stop, clock=lambda: now[0], sleep=sleep)
    assert mic.time_of(160 * 4 + 80) == pytest.approx(0.045)
    assert mic.time_of(160 * 5) == pytest.approx(0.075)  # 50 ms due + 25 ms late
    assert mic.time_of(160 * 6) == pytest.approx(0.075)  # overdue frames go at once...
    assert mic.time_of(160 * 8) == pytest.approx(0.08)  # ...until the schedule is met again

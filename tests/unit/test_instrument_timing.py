"""The timing instrument alone, while the event loop is deliberately delayed (issue 17 §3).

Probe side: a producer THREAD hands 10 ms frames to the probe's own recording loop
(``ProbeBot._record``, its ``time.monotonic()`` timestamping) at real-time pace and notes when
each frame was produced (the truth: the time the receiver's media clock made the sample
available). The reply's first audible sample is at a known index. Meanwhile a coroutine blocks
the event loop (``time.sleep``) around the onset, so the frames holding it reach Python late
and in a burst. The reconstructed time of the first audible sample (``first_onset`` +
``sample_arrival_time`` on what the probe recorded, as ``metrics.turn`` does) must be within
2 ms of the truth.

User side: ``run_paced`` with the user bot's lead into a simulated native queue that sends 10 ms
every 10 ms on a thread (the truth: when each frame left it), and a loop blocked just before the
frame holding the EoT; ``MicTimeline.time_of(eot_sample)`` (what the runner writes as
``user.t_user_eot``) must be within the queue's tick phase (10 ms) + 2 ms of when that sample
really left, and a block shorter than the lead must leave no hole.
"""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from livekit import rtc

from autortc.bots import probe_bot
from autortc.bots.mic import MicTimeline, PlacedSegment, run_paced
from autortc.metrics import latency

pytestmark = pytest.mark.unit

SR = probe_bot.PROBE_SR
FRAME = SR // 100  # 10 ms, as the SDK's AudioStream delivers
BOUND_MS = 2.0


def reply_signal(onset: int, n: int, seed: int = 3) -> np.ndarray:
    """Silence (with -70 dBFS noise) then speech-like noise from ``onset`` on."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * 10).astype(np.float64)
    x[onset:] += rng.standard_normal(n - onset) * 6000
    return np.clip(x, -32768, 32767).astype(np.int16)


class _Stream:
    """Stands in for ``rtc.AudioStream``: frames arrive from a producer thread."""

    def __init__(self, q: asyncio.Queue) -> None:
        self.q = q

    def __aiter__(self):
        return self

    async def __anext__(self):
        item = await self.q.get()
        if item is None:
            raise StopAsyncIteration
        return SimpleNamespace(frame=SimpleNamespace(data=item.tobytes()))

    async def aclose(self) -> None:
        pass


def run_probe(x: np.ndarray, block_at_frame: int, block_ms: float, monkeypatch) -> tuple[probe_bot.ProbeBot, list[float]]:
    produced: list[float] = []

    async def main():
        loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue()
        monkeypatch.setattr(rtc.AudioStream, "from_track", lambda **kw: _Stream(q))
        probe = probe_bot.ProbeBot(SimpleNamespace(), room="r")
        rec = asyncio.create_task(probe._record(None))  # type: ignore[arg-type]
        block_now = threading.Event()

        def producer():
            t0 = time.monotonic() + 0.05
            for k in range(x.size // FRAME):
                due = t0 + k * FRAME / SR
                while time.monotonic() < due:
                    time.sleep(0.0002)
                produced.append(due)  # the media clock: when the receiver makes the frame available
                if k == block_at_frame:
                    block_now.set()
                loop.call_soon_threadsafe(q.put_nowait, x[k * FRAME:(k + 1) * FRAME])
            loop.call_soon_threadsafe(q.put_nowait, None)

        async def blocker():
            while not block_now.is_set():
                await asyncio.sleep(0.001)
            time.sleep(block_ms / 1000)  # the event loop is stuck: frames pile up, then come as a burst

        th = threading.Thread(target=producer)
        th.start()
        await asyncio.gather(rec, blocker())
        th.join()
        return probe

    return asyncio.run(main()), produced


@pytest.mark.parametrize("block_ms", [0.0, 30.0, 120.0])
@pytest.mark.parametrize("where", ["before_onset", "at_onset"])
def test_probe_first_audible_sample_within_2ms_under_a_delayed_loop(block_ms, where, monkeypatch):
    onset = 40 * FRAME + 173  # inside frame 40
    x = reply_signal(onset, 100 * FRAME)
    block_frame = 37 if where == "before_onset" else 39
    probe, produced = run_probe(x, block_frame, block_ms, monkeypatch)
    assert probe.samples == x.size
    frames = [list(a) for a in probe.arrivals]
    full = probe.pcm().astype(np.float32) / 32768.0
    on = latency.first_onset(full, SR, start=0)
    assert on is not None and abs(on - onset) <= SR // 1000, f"onset found at {on}, planted {onset}"
    t_found = latency.sample_arrival_time(frames, on, SR)
    k = onset // FRAME
    # the probe's convention: a sample's time = its frame's arrival + its offset in the frame;
    # truth = that on the media clock (the frame's scheduled hand-over; the producer thread is
    # itself late by up to ~1 ms on a loaded machine, which the instrument rightly does not see)
    t_true = produced[k] + (onset - k * FRAME) / SR
    err_ms = (t_found - t_true) * 1000.0
    lag_ms = (frames[k][0] - produced[k]) * 1000.0
    print(f"block {block_ms} ms {where}: onset error {err_ms:+.2f} ms (loop lag of that frame {lag_ms:.1f} ms)")
    assert abs(err_ms) <= BOUND_MS, f"first audible sample off by {err_ms:+.2f} ms with the loop blocked {block_ms} ms"


class _NativeQueueThread:
    """LiveKit's native audio source queue in real time, as ``webrtc-sys/src/audio_track.cpp``
    (``InternalSource``) runs it on a thread of its own: every 10 ms it sends one frame if it holds
    one, else nothing; a capture completes at once while it holds <= ``queue_frames``. ``sent``: the
    clock time each frame's first sample went out (the truth)."""

    def __init__(self, queue_frames: int) -> None:
        self.queue_frames = queue_frames
        self.queue: list[int] = []
        self.sent: dict[int, float] = {}
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        tick = time.monotonic()
        while not self.done.is_set():
            tick += 0.01
            time.sleep(max(0.0, tick - time.monotonic()))
            with self.lock:
                if self.queue:
                    self.sent[self.queue.pop(0)] = time.monotonic()

    async def capture(self, first_sample: int) -> None:
        if not self.thread.is_alive():
            self.thread.start()
        with self.lock:
            self.queue.append(first_sample)
        while True:
            with self.lock:
                if len(self.queue) <= self.queue_frames:
                    return
            await asyncio.sleep(0.001)


@pytest.mark.parametrize("block_ms", [0.0, 30.0, 90.0, 250.0])
def test_user_eot_timestamp_within_a_tick_of_the_wire_under_a_delayed_loop(block_ms):
    """The user's EoT as dated by the mic model against when it left a (simulated) native queue
    with the user bot's lead (``MIC_LEAD_MS``): within the queue task's 10 ms tick phase plus 2 ms,
    whether the loop was held up less than the lead (no hole) or more (a hole, the rest late)."""
    from autortc.bots.user_bot import FRAME_MS, MIC_LEAD_MS

    sr, fs = 48000, 480
    mic = MicTimeline(sr=sr, frame_samples=fs)
    speech = np.full(40 * fs, 1000, np.int16)
    mic.place(PlacedSegment(index=0, start_sample=15 * fs, pcm=speech, speech_start=0, speech_end=speech.size - 211))
    eot = 15 * fs + speech.size - 211
    native = _NativeQueueThread(queue_frames=(MIC_LEAD_MS + 2 * FRAME_MS) // FRAME_MS)
    stop = asyncio.Event()

    async def sink(frame: np.ndarray) -> None:
        start = mic.published_samples - frame.size
        await native.capture(start)
        if start > eot + 5 * fs:
            stop.set()

    async def main():
        async def blocker():
            while mic.published_samples < eot - 3 * fs:
                await asyncio.sleep(0.001)
            time.sleep(block_ms / 1000)

        await asyncio.gather(run_paced(mic, sink, stop=stop, lead_s=MIC_LEAD_MS / 1000), blocker())
        while (eot // fs) * fs not in native.sent:
            await asyncio.sleep(0.005)
        native.done.set()

    asyncio.run(main())
    k0 = (eot // fs) * fs
    t_true = native.sent[k0] + (eot - k0) / sr
    err_ms = (mic.time_of(eot) - t_true) * 1000.0
    sends = np.diff([native.sent[k * fs] for k in range(eot // fs)]) * 1000.0
    print(f"block {block_ms} ms: user EoT error {err_ms:+.3f} ms, longest gap between frames out {sends.max():.1f} ms")
    assert abs(err_ms) <= 10.0 + BOUND_MS
    if block_ms <= 90.0:  # the loop stalls session 25 measured (30-50 ms unscheduled, ~96 ms in a full
        # collection; scripts/loop_stalls.py) must not reach the wire: no hole in the user's speech
        assert sends.max() < 10.0 + 5.0, f"a {block_ms} ms stall made a {sends.max() - 10:.0f} ms hole"

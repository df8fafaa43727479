"""The worker's fault wiring (system/agent/fault_output.py) over LiveKit Agents' real AudioOutput chain.

Chain as the worker builds it: session -> FaultOutput(agent) -> recorder (the pre-RTC copy) ->
FaultOutput(path) -> sink. The reply is built here from known words (same construction as
tests/unit/test_faults_inject.py), so where each fault must be follows from the construction,
not from the injector.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from livekit import rtc
from livekit.agents.voice import io as voice_io

from system.agent.fault_output import FaultOutput, FaultWiring, _Replies
from system.agent.faults import FaultPlan

pytestmark = pytest.mark.unit

SR = 24000
MS = SR // 1000
WORDS_MS = [(200, 700), (760, 1400), (1700, 2500)]
TOTAL_MS = 2800


def make_reply(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros(TOTAL_MS * MS, dtype=np.int16)
    for s, e in WORDS_MS:
        x[s * MS : e * MS] = (12000 * rng.choice([-1, 1], size=(e - s) * MS)).astype(np.int16)
    return x


class Sink(voice_io.AudioOutput):
    """The room output stand-in: keeps frames, reports playback like a sink does."""

    def __init__(self, label: str = "sink", next_output: voice_io.AudioOutput | None = None) -> None:
        super().__init__(label=label, next_in_chain=next_output, capabilities=voice_io.AudioOutputCapabilities(pause=True))
        self.frames: list[rtc.AudioFrame] = []
        self.events: list[str] = []

    @property
    def sample_rate(self) -> int | None:
        return SR

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        self.frames.append(frame)
        self.events.append("frame")
        if self.next_in_chain:
            await self.next_in_chain.capture_frame(frame)

    def flush(self) -> None:
        super().flush()
        self.events.append("flush")
        if self.next_in_chain:
            self.next_in_chain.flush()

    def clear_buffer(self) -> None:
        self.events.append("clear")
        if self.next_in_chain:
            self.next_in_chain.clear_buffer()

    def pcm(self) -> np.ndarray:
        return np.concatenate([np.frombuffer(bytes(f.data), np.int16) for f in self.frames]) if self.frames else np.zeros(0, np.int16)


def chain(meta: dict | None):
    """(head, recorder, sink, wiring) built in the worker's order: path wrapper, recorder, agent wrapper."""
    sink = Sink("sink")
    wiring = FaultWiring(FaultPlan.from_metadata(json.dumps(meta) if meta else None))
    session = SimpleNamespace(output=SimpleNamespace(audio=sink))
    wiring.install_path(session)  # type: ignore[arg-type]
    recorder = Sink("recorder", session.output.audio)
    session.output.audio = recorder
    wiring.install_agent(session)  # type: ignore[arg-type]
    return session.output.audio, recorder, sink, wiring


async def play(head: voice_io.AudioOutput, x: np.ndarray, chunk: int = 480) -> list[rtc.AudioFrame]:
    frames = [rtc.AudioFrame(x[i:i + chunk].tobytes(), SR, 1, len(x[i:i + chunk])) for i in range(0, x.size, chunk)]
    for f in frames:
        await head.capture_frame(f)
    head.flush()
    for _ in range(50):  # released audio is handed on by an owned task
        await asyncio.sleep(0)
    return frames


def test_no_fault_installs_nothing_and_the_output_is_the_same_frames():
    x = make_reply()
    head, recorder, sink, wiring = chain({"run_id": "r1", "case_id": "content_weather", "suite": "fast", "attempt": 1})
    assert head is recorder and not wiring.active and wiring.trace_fields() == {}
    frames = asyncio.run(play(head, x))
    assert all(a is b for a, b in zip(sink.frames, frames, strict=True))
    assert sink.pcm().tobytes() == x.tobytes() == recorder.pcm().tobytes()


def test_passthrough_side_hands_on_the_very_frame_objects():
    """A FaultOutput whose applier is a Passthrough (the other side of a fault) changes nothing."""
    x = make_reply()
    sink = Sink()
    out = FaultOutput("agent", _Replies(FaultPlan.from_metadata({"fault": {"kind": "gap", "ms": 60, "at_ms": 300}})), sink)
    frames = asyncio.run(play(out, x))  # gap is a path fault: the agent side passes through
    assert all(a is b for a, b in zip(sink.frames, frames, strict=True))
    assert sink.events[-1] == "flush"


@pytest.mark.parametrize("chunk", [480, 240, 1000])
def test_path_gap_after_the_copy_sample_exact(chunk):
    x = make_reply()
    head, recorder, sink, wiring = chain({"case_id": "c", "fault": {"kind": "gap", "at_ms": 300, "ms": 60, "seed": 1}})
    asyncio.run(play(head, x, chunk))
    assert recorder.pcm().tobytes() == x.tobytes()  # the agent's copy is clean
    y = sink.pcm()
    # constructed truth: first 10 ms grid point >= 300 ms with 20 ms of word either side: 300 ms (word 200-700)
    p, n = 300 * MS, 60 * MS
    assert y.size == x.size
    assert not y[p:p + n].any() and np.array_equal(y[:p], x[:p]) and np.array_equal(y[p + n:], x[p + n:])
    truth = wiring.trace_fields()["fault_truth"]
    assert [(t["kind"], t["planted"], t["start_sample"], t["size_samples"], t["in_agent_copy"]) for t in truth] == [
        ("gap", True, p, n, False)]
    assert sink.events[-1] == "flush" and sink.events.count("flush") == 1


def test_tail_cut_holds_the_reply_and_releases_it_before_the_flush():
    x = make_reply()
    head, recorder, sink, _ = chain({"fault": {"kind": "tail_cut", "fraction": 0.6}})
    asyncio.run(play(head, x))
    assert recorder.pcm().tobytes() == x.tobytes()
    keep = int(round(0.6 * x.size))
    assert np.array_equal(sink.pcm(), x[:keep])
    assert sink.events[-1] == "flush" and "flush" not in sink.events[:-1]


def test_agent_clipping_is_in_the_copy_and_the_output():
    x = make_reply()
    head, recorder, sink, wiring = chain({"fault": {"kind": "clipping", "gain": 6}})
    asyncio.run(play(head, x))
    want = np.clip(x.astype(np.int32) * 6, -32768, 32767).astype(np.int16)
    assert np.array_equal(recorder.pcm(), want) and np.array_equal(sink.pcm(), want)
    assert wiring.trace_fields()["fault"]["kind"] == "clipping"


def test_delay_prepends_exact_silence_before_the_copy():
    x = make_reply()
    head, recorder, sink, _ = chain({"fault": {"kind": "delay", "ms": 300}})
    asyncio.run(play(head, x))
    want = np.concatenate([np.zeros(300 * MS, np.int16), x])
    assert np.array_equal(recorder.pcm(), want) and np.array_equal(sink.pcm(), want)
    assert max(len(f.data) for f in sink.frames) <= 20 * MS  # handed on in <= 20 ms frames


def test_clear_buffer_drops_held_audio_and_the_next_reply_is_clean():
    x = make_reply()
    head, recorder, sink, wiring = chain({"fault": {"kind": "tail_cut", "fraction": 0.6}})

    async def go():
        for i in range(0, 24000, 480):
            await head.capture_frame(rtc.AudioFrame(x[i:i + 480].tobytes(), SR, 1, 480))
        head.clear_buffer()  # barge-in: the held first second never reaches the sink
        await play(head, x)

    asyncio.run(go())
    assert "clear" in sink.events
    assert np.array_equal(sink.pcm(), x)  # reply 1 is not the planted reply_index 0
    assert recorder.pcm().size == 24000 + x.size


def test_turn_handling_overrides_merge_and_agent_hooks():
    base = {"interruption": {"enabled": True, "mode": "vad", "min_duration": 0.5}, "turn_detection": "vad"}
    clean = FaultWiring(FaultPlan.from_metadata(None))
    assert clean.turn_handling(base) is base
    ny = FaultWiring(FaultPlan.from_metadata({"fault": {"kind": "no_yield"}}))
    assert ny.turn_handling(base)["interruption"] == {"enabled": False, "mode": "vad", "min_duration": 0.5}
    assert base["interruption"]["enabled"] is True

    class A:
        pass

    assert clean.agent(A) is A  # type: ignore[arg-type]
    assert FaultWiring(FaultPlan.from_metadata({"fault": {"kind": "no_reply"}})).agent(A) is not A  # type: ignore[arg-type]


def test_from_job_reads_dispatch_then_room_metadata_and_names_a_bad_field():
    job = SimpleNamespace(id="AJ_1", metadata="", room=SimpleNamespace(metadata=json.dumps({"fault": {"kind": "click"}})))
    assert FaultWiring.from_job(SimpleNamespace(job=job)).plan.kind == "click"
    job.metadata = json.dumps({"fault": {"kind": "gap", "ms": -1}})
    with pytest.raises(ValueError, match=r"job AJ_1 metadata: fault\.ms"):
        FaultWiring.from_job(SimpleNamespace(job=job))


def test_from_job_loads_what_a_lowpass_reply_needs_before_the_turn():
    """The lowpass applier's scipy.signal was imported on the reply's first frame, on the agent's event
    loop (~0.9 s: the fault bench's first lowpass turn had 916 ms from first chunk to published). The
    job's wiring now loads it at the start. A fresh interpreter, so nothing imported it before."""
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from types import SimpleNamespace\n"
        "from system.agent.fault_output import FaultWiring\n"
        "def job(kind):\n"
        "    return SimpleNamespace(job=SimpleNamespace(id='AJ', metadata=json.dumps({'fault': {'kind': kind}})))\n"
        "FaultWiring.from_job(job('click'))\n"
        "print('scipy.signal' in sys.modules)\n"
        "FaultWiring.from_job(job('lowpass'))\n"
        "print('scipy.signal' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=str(Path(__file__).resolve().parents[2]))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"], out.stdout + out.stderr


# --- premature: the pre-synthesised reply, anchored on the first sound received from the user ---

PREMATURE = {"case_id": "content_weather",
             "fault": {"kind": "premature", "ms": 500, "user_speech_ms": 1570, "user_sound_to_eot_ms": 1570}}


class _Stream:
    """A TTS stream that gives ``frames`` and then, if ``block``, waits for ever (a synthesis still running)."""

    def __init__(self, frames: list[rtc.AudioFrame], block: bool) -> None:
        self._frames, self._block, self.closed = list(frames), block, False

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> SimpleNamespace:
        if self._frames:
            return SimpleNamespace(frame=self._frames.pop(0))
        if self._block:
            await asyncio.Event().wait()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.closed = True


class _Session:
    def __init__(self, *, block: bool) -> None:
        self.output = SimpleNamespace(audio=Sink("sink"))
        self.streams: list[_Stream] = []
        self.said: list[tuple[str, list[rtc.AudioFrame] | None]] = []
        self.handlers: dict[str, list] = {}
        self._block = block
        reply = rtc.AudioFrame(make_reply()[: 20 * MS].tobytes(), SR, 1, 20 * MS)
        self.tts = SimpleNamespace(synthesize=lambda text: self._stream([reply]))

    def _stream(self, frames: list[rtc.AudioFrame]) -> _Stream:
        self.streams.append(_Stream(frames, self._block))
        return self.streams[-1]

    def on(self, name: str, fn) -> None:
        self.handlers.setdefault(name, []).append(fn)

    def say(self, text: str, *, audio=None, allow_interruptions: bool = True) -> None:
        self.said.append((text, audio))


def _user_mic(sound_at_frame: int, frames: int, clock: list[float], sr: int = 16000, burst: int = 0):
    """The user's mic as received: 10 ms frames of digital silence, then a tone at -20 dBFS;
    each frame "arrives" 10 ms after the previous one on the fake clock, except the first ``burst``
    frames, which all arrive at once when the next one is due (a blocked event loop catching up)."""

    async def gen():
        for i in range(frames):
            if i >= burst:
                clock[0] += 0.010
            elif i == 0:
                clock[0] += 0.010 * burst
            x = np.zeros(sr // 100, np.int16) if i < sound_at_frame else (
                3277 * np.sin(2 * np.pi * 200 * np.arange(sr // 100) / sr)).astype(np.int16)
            yield rtc.AudioFrame(x.tobytes(), sr, 1, x.size)
            await asyncio.sleep(0)
        await asyncio.Event().wait()  # the track stays open

    return gen


async def test_premature_tasks_are_cancelled_when_the_room_closes(task_guard):
    callbacks: list = []
    job = SimpleNamespace(id="AJ_p", metadata=json.dumps(PREMATURE), room=None)
    ctx = SimpleNamespace(job=job, room=None, add_shutdown_callback=callbacks.append)
    clock = [100.0]
    wiring = FaultWiring.from_job(ctx, user_audio=_user_mic(10_000, 3, clock))
    assert callbacks, "from_job must register the wiring's aclose as a shutdown callback of the job"
    session = _Session(block=True)  # the synthesis is still running when the room closes
    wiring.install_agent(session)  # type: ignore[arg-type]
    for _ in range(10):
        await asyncio.sleep(0)
    pre = wiring._premature
    assert pre is not None and pre.presynth is not None and pre.timer is not None
    assert not pre.presynth.done() and not pre.timer.done()
    for cb in callbacks:  # the job's shutdown: the room is closing
        await cb()
    assert pre.presynth.cancelled() and pre.timer.cancelled()
    assert session.streams and session.streams[0].closed  # the TTS stream was closed, not abandoned
    assert session.said == []


async def _premature_on_fake_clock(user_audio):
    """Start a PrematureReply on a fake clock fed by ``user_audio(clock)``; return once its timer ran."""
    clock = [100.0]

    async def fake_sleep(dt: float) -> None:
        clock[0] += dt

    plan = FaultPlan.from_metadata(PREMATURE)
    from system.agent.fault_output import PrematureReply

    session = _Session(block=False)
    pre = PrematureReply(plan, session, "It is sunny.", user_audio=user_audio(clock),
                         clock=lambda: clock[0], sleep=fake_sleep)
    pre.start()
    for _ in range(400):
        if pre.timer is not None and pre.timer.done():
            break
        await asyncio.sleep(0)
    assert pre.timer is not None and pre.timer.done() and pre.timer.exception() is None
    return plan, session, pre


async def test_premature_reply_is_said_at_first_sound_plus_the_planned_time(task_guard):
    from system.agent.faults import PREMATURE_SAY_TO_HEARD_MS, PREMATURE_UPLINK_MS

    plan, session, pre = await _premature_on_fake_clock(lambda clock: _user_mic(30, 33, clock))
    # the sound starts with frame 30, which arrived (its last sample) at 100 + 0.31 s
    t_sound = 100.0 + 0.31 - (160 - 1) / 16000
    after_ms = 1570 - 500 - PREMATURE_UPLINK_MS - PREMATURE_SAY_TO_HEARD_MS
    timing = plan.premature_timing
    assert timing["t_sound_received"] == pytest.approx(t_sound, abs=1e-6)
    assert timing["t_say"] == pytest.approx(t_sound + after_ms / 1000, abs=1e-6)
    assert "late_ms" not in timing
    assert len(session.said) == 1 and session.said[0][1] is not None  # the pre-synthesised audio, not a new synthesis
    truth = plan.trace_fields()["fault_truth"][-1]
    assert truth["kind"] == "premature" and truth["extra"]["say_after_user_sound_ms"] == pytest.approx(after_ms)
    await pre.aclose()


async def test_premature_anchor_is_retimed_when_the_frames_came_late_in_a_burst(task_guard):
    """Frames 0-34 all reach the agent at 100.35 s (its loop was busy); the receiver produced them at
    media pace, so frame 34's arrival dates them all: the onset (frame 30's first sample) was at
    100.35 - (35 * 160 - 1 - 30 * 160) / 16000 s, 20 ms before the first, late, estimate."""
    plan, _, pre = await _premature_on_fake_clock(lambda clock: _user_mic(30, 60, clock, burst=35))
    timing = plan.premature_timing
    assert timing["t_sound_received"] == pytest.approx(100.35 - 479 / 16000, abs=1e-6)  # seen at frame 32, late
    assert timing["t_sound_anchor"] == pytest.approx(100.35 - 799 / 16000, abs=1e-6)
    assert timing["t_say"] >= timing["t_sound_anchor"] + plan.premature_after_sound_ms / 1000 - 1e-6
    await pre.aclose()

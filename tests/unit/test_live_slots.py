"""--jobs opens rooms in parallel; --concurrent-turns bounds how many of them have a turn live.

A turn is live from its ``turn_start`` until the agent is done (``settle``); its files are written
after it gave its slot back. These tests drive ``run_turn`` with the live part and the writing
replaced by recorders (the real ones need a room), and the runner's wiring of the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from autortc.bots.target import Target
from autortc.runner import conversation
from autortc.runner import suite as suite_mod
from autortc.runner.live_slots import LiveSlots
from autortc.runner.suite import RunOptions, SuiteRunner
from autortc.runner.users import BotUser, UserSide

pytestmark = pytest.mark.unit

CASES = Path(__file__).resolve().parents[2] / "cases" / "all_cases.json"
TARGET = Target(livekit_url="ws://127.0.0.1:1", api_key="k", api_secret="s")


class _CountingSlots(LiveSlots):
    """LiveSlots that count the turns holding a slot (``held``)."""

    held = 0

    @contextlib.asynccontextmanager
    async def slot(self, trace_id: str):
        async with super().slot(trace_id):
            self.held += 1
            try:
                yield
            finally:
                self.held -= 1


class _Recorder:
    """Stands in for the live part and the writing of ``run_turn``; logs (event, trace_id) in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, str]] = []
        self.live = 0
        self.max_live = 0
        self.release: dict[str, asyncio.Event] = {}
        self.slots: LiveSlots | None = None
        self.held_while_writing: list[bool] = []

        async def live_turn(user, probe, case, trace_id, turn_index, timeouts):
            self.events.append(("live", trace_id))
            self.live += 1
            self.max_live = max(self.max_live, self.live)
            await self.release.setdefault(trace_id, asyncio.Event()).wait()  # the turn ends when the test says
            self.live -= 1
            self.events.append(("done", trace_id))
            return None, 0, 0, []

        def write(*args, **kwargs):
            self.events.append(("write", args[5]))  # trace_id, positional as run_turn passes it
            if self.slots is not None:
                self.held_while_writing.append(getattr(self.slots, "held", 0) > 0)
            return args[5]

        monkeypatch.setattr(conversation, "_live_turn", live_turn)
        monkeypatch.setattr(conversation, "_write_artifacts", write)

    def turn(self, trace_id: str, slots: LiveSlots | None) -> asyncio.Task:
        self.slots = slots
        return asyncio.ensure_future(conversation.run_turn(
            user=None, probe=None, case=None, trace_id=trace_id, turn_index=0, run_id="r",  # type: ignore[arg-type]
            out_dir=Path("unused"), slots=slots))


async def _until(cond, timeout_s: float = 2.0) -> None:
    """Yield to the loop until ``cond()`` holds (a barrier on the recorder's state, not a sleep)."""
    async def poll():
        while not cond():
            await asyncio.sleep(0)
    await asyncio.wait_for(poll(), timeout_s)


async def test_one_slot_keeps_turns_of_two_rooms_from_being_live_together(monkeypatch):
    rec = _Recorder(monkeypatch)
    slots = _CountingSlots(1)
    a, b = rec.turn("A", slots), rec.turn("B", slots)
    await _until(lambda: ("live", "A") in rec.events)
    for _ in range(20):  # B stays out while A is live, however often the loop turns
        await asyncio.sleep(0)
    assert ("live", "B") not in rec.events
    rec.release["A"].set()
    await _until(lambda: ("live", "B") in rec.events)
    rec.release["B"].set()
    assert await asyncio.gather(a, b) == ["A", "B"]
    assert rec.max_live == 1
    # A gave its slot back before writing its files: B went live no later than A's write
    assert rec.events.index(("done", "A")) < rec.events.index(("live", "B"))
    assert rec.events.index(("write", "A")) < rec.events.index(("done", "B"))
    assert rec.held_while_writing == [False, False]  # no turn writes its files holding the slot
    assert len(slots.waits_s) == 2 and slots.waits_s[1] > 0  # B waited for A; the wait is recorded


async def test_as_many_slots_as_rooms_lets_every_turn_be_live(monkeypatch):
    rec = _Recorder(monkeypatch)
    slots = LiveSlots(2)
    a, b = rec.turn("A", slots), rec.turn("B", slots)
    await _until(lambda: rec.live == 2)
    rec.release["A"].set()
    rec.release["B"].set()
    await asyncio.gather(a, b)
    assert rec.max_live == 2


async def test_without_slots_run_turn_does_not_wait(monkeypatch):
    rec = _Recorder(monkeypatch)
    a, b = rec.turn("A", None), rec.turn("B", None)
    await _until(lambda: rec.live == 2)
    rec.release["A"].set()
    rec.release["B"].set()
    await asyncio.gather(a, b)


async def test_a_turn_that_fails_gives_its_slot_back(monkeypatch):
    slots = LiveSlots(1)

    async def broken(*args, **kwargs):
        raise conversation.TurnError("anchor 'agent_speech_start' never came")

    monkeypatch.setattr(conversation, "_live_turn", broken)
    with pytest.raises(conversation.TurnError):
        await conversation.run_turn(user=None, probe=None, case=None, trace_id="A", turn_index=0,  # type: ignore[arg-type]
                                    run_id="r", out_dir=Path("unused"), slots=slots)
    async with slots.slot("B"):  # free at once, not held by the failed turn
        pass
    assert slots.waits_s[-1] < 0.01


def test_zero_slots_is_refused():
    with pytest.raises(ValueError, match="concurrent turns: expected >= 1, got 0"):
        LiveSlots(0)


@pytest.mark.parametrize("jobs,concurrent,expected", [(2, 1, 1), (3, None, 3), (2, 5, 2), (1, 1, 1)])
async def test_the_runner_gives_every_room_one_shared_limit(tmp_path, monkeypatch, jobs, concurrent, expected):
    @contextlib.asynccontextmanager
    async def no_room(target, name, *, metadata=None):
        yield None

    monkeypatch.setattr(suite_mod, "CaseRoom", no_room)
    runner = SuiteRunner(RunOptions(target=TARGET, cases_path=CASES, suite="fast", out_root=tmp_path, run_id="slots",
                                    jobs=jobs, concurrent_turns=concurrent, progress=False))
    assert runner.slots.n == expected
    u1, u2 = runner._user_side("room-1"), runner._user_side("room-2")  # bots (their probe needs a running loop)
    assert isinstance(u1, BotUser) and u1.slots is runner.slots and u2.slots is runner.slots


def test_the_runner_refuses_zero_concurrent_turns(tmp_path):
    with pytest.raises(ValueError, match="concurrent_turns: expected >= 1 or None, got 0"):
        SuiteRunner(RunOptions(target=TARGET, cases_path=CASES, suite="fast", out_root=tmp_path, run_id="slots",
                               jobs=2, concurrent_turns=0, progress=False))


async def test_a_room_setup_waits_for_the_live_turn_and_goes_before_the_next_turn(monkeypatch):
    rec = _Recorder(monkeypatch)
    slots = LiveSlots(1, rooms=2)
    assert slots.quiet
    go: dict[str, asyncio.Event] = {}

    async def room_setup(name: str) -> None:
        async with slots.between_turns(f"room={name} joining"):
            rec.events.append(("setup", name))
            await go.setdefault(name, asyncio.Event()).wait()
            rec.events.append(("setup done", name))

    a = rec.turn("A", slots)
    await _until(lambda: ("live", "A") in rec.events)
    c = asyncio.ensure_future(room_setup("C"))
    b = rec.turn("B", slots)
    for _ in range(20):  # neither the setup nor the next turn start while A is live
        await asyncio.sleep(0)
    assert ("setup", "C") not in rec.events and ("live", "B") not in rec.events
    rec.release["A"].set()
    await _until(lambda: ("setup", "C") in rec.events)
    for _ in range(20):  # B, already waiting for the slot, still waits for the setup
        await asyncio.sleep(0)
    assert ("live", "B") not in rec.events
    go["C"].set()
    await _until(lambda: ("live", "B") in rec.events)
    d = asyncio.ensure_future(room_setup("D"))  # a setup asked for while B is live waits for B
    for _ in range(20):
        await asyncio.sleep(0)
    assert ("setup", "D") not in rec.events
    rec.release["B"].set()
    go["D"] = asyncio.Event()
    go["D"].set()
    await asyncio.gather(a, b, c, d)
    order = [e for e in rec.events if e[0] in ("live", "done", "setup", "setup done")]
    assert order == [("live", "A"), ("done", "A"), ("setup", "C"), ("setup done", "C"), ("live", "B"),
                     ("done", "B"), ("setup", "D"), ("setup done", "D")]
    assert len(slots.between_waits_s) == 2 and min(slots.between_waits_s) > 0


def test_one_slot_is_quiet_whatever_the_rooms_and_every_room_talking_is_not():
    assert LiveSlots(1).quiet and LiveSlots(1, rooms=3).quiet and LiveSlots(2, rooms=3).quiet
    assert not LiveSlots(2, rooms=2).quiet and not LiveSlots(3).quiet


async def test_with_every_room_talking_setups_do_not_wait(monkeypatch):
    rec = _Recorder(monkeypatch)
    slots = LiveSlots(2, rooms=2)
    assert not slots.quiet
    a = rec.turn("A", slots)
    await _until(lambda: rec.live == 1)
    async with slots.between_turns("room=C joining"):  # at once, beside the live turn (a load test)
        assert rec.live == 1
    rec.release["A"].set()
    await a


async def test_a_setup_cancelled_while_waiting_still_runs_its_body(monkeypatch):
    """A room that has joined must still be left when Ctrl-C comes while its teardown waits."""
    rec = _Recorder(monkeypatch)
    slots = LiveSlots(1, rooms=2)
    a = rec.turn("A", slots)
    await _until(lambda: rec.live == 1)
    left: list[str] = []

    async def leave() -> None:
        async with slots.between_turns("room=C leaving"):
            left.append("C")

    t = asyncio.ensure_future(leave())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not left
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t
    assert left == ["C"]
    rec.release["A"].set()
    await a


class _RoomLog:
    """Every room event of a run in order: rooms created/deleted, users joined/left, turns live/done."""

    events: list[tuple[str, str]] = []


class _LoggedUser(UserSide):
    via = "fake"

    def __init__(self, room: str, slots: LiveSlots) -> None:
        self.room, self.slots = room, slots

    async def join(self) -> None:
        _RoomLog.events.append(("join", self.room))
        await asyncio.sleep(0.01)
        _RoomLog.events.append(("joined", self.room))

    async def play_turn(self, case, *, trace_id, turn_index, out_dir):
        from autortc.runner.live_slots import hold
        from autortc.testing.faults import make_speech, write_turn_folder

        async with hold(self.slots, trace_id):
            _RoomLog.events.append(("live", self.room))
            await asyncio.sleep(0.4)  # longer than an analysis of the previous case's turn folder
            _RoomLog.events.append(("done", self.room))
        s = make_speech(48000, seed=1, sentences=1)
        write_turn_folder(out_dir, pre=s.samples, sr=48000, case_id=case.id, trace_id=trace_id)

    async def _aclose_impl(self) -> None:
        _RoomLog.events.append(("leave", self.room))
        await asyncio.sleep(0.01)
        _RoomLog.events.append(("left", self.room))


class _LoggedReporter:
    """The terminal's side of a run: a case's line is printed when its result is final."""

    def case_started(self, case_id: str) -> None:
        pass

    def case_finished(self, res) -> None:
        _RoomLog.events.append(("finished", res.case_id))

    def close(self) -> None:
        pass


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_runner_keeps_setups_teardowns_and_results_out_of_live_turns(tmp_path, monkeypatch, jobs):
    """With the analysis beside the next case, its results (files, summary, terminal line: work on the
    loop that paces the mic) wait for the live turn to end, at --jobs 1 too."""
    @contextlib.asynccontextmanager
    async def logged_room(target, name, *, metadata=None):
        _RoomLog.events.append(("create", name))
        yield None
        _RoomLog.events.append(("delete", name))

    written = suite_mod.write_json

    def logged_write(path, obj):
        _RoomLog.events.append(("write", Path(path).parent.name))
        return written(path, obj)

    monkeypatch.setattr(suite_mod, "CaseRoom", logged_room)
    monkeypatch.setattr(suite_mod, "write_json", logged_write)
    monkeypatch.setattr(SuiteRunner, "_user_side", lambda self, room: _LoggedUser(room, self.slots))
    _RoomLog.events = []
    cases = ("endpoint_short_hello", "content_weather", "boom_trigger", "endpoint_numbers")
    runner = SuiteRunner(RunOptions(target=TARGET, cases_path=CASES, suite="fast", out_root=tmp_path, run_id="quiet",
                                    jobs=jobs, concurrent_turns=1, only=cases, reporter=_LoggedReporter()))
    out = asyncio.run(runner.run())
    assert not out.harness_errors, out.harness_errors
    live: str | None = None
    in_room: set[str] = set()
    overlapped = False
    for kind, room in _RoomLog.events:
        if kind == "live":
            assert live is None
            live = room
        elif kind == "done":
            live = None
        else:
            assert live is None, f"{kind} of {room} while the turn of {live} was live: {_RoomLog.events}"
        if kind == "joined":
            in_room.add(room)
            overlapped |= len(in_room) > 1
        elif kind == "left":
            in_room.discard(room)
    assert overlapped == (jobs > 1), "the two rooms were never open at once: --jobs 2 gained nothing"
    kinds = [k for k, _ in _RoomLog.events]
    assert kinds.count("finished") == len(cases) and kinds.count("live") == len(cases)
    assert kinds.count("write") >= 2 * len(cases)  # each case's turn result and case result, plus summaries
    # joining, leaving, the turn's result, the case's result
    assert out.summary.extra["between_turns_wait_s"] >= 0 and len(runner.slots.between_waits_s) == 4 * len(cases)


def _one_case_run(out_root: Path, monkeypatch: pytest.MonkeyPatch, user_cls: type, transcriber: str):
    """endpoint_short_hello through the runner with no room, ``user_cls`` as its user side and the
    analysis worker's transcriber spec ``transcriber``; returns the run's outcome."""
    @contextlib.asynccontextmanager
    async def no_room(target, name, *, metadata=None):
        yield None

    monkeypatch.setattr(suite_mod, "CaseRoom", no_room)
    monkeypatch.setattr(SuiteRunner, "_user_side", lambda self, room: user_cls(room, self.slots))
    _RoomLog.events = []
    runner = SuiteRunner(RunOptions(target=TARGET, cases_path=CASES, suite="fast", out_root=out_root, run_id="one",
                                    only=("endpoint_short_hello",), progress=False, transcriber=transcriber))
    return asyncio.run(runner.run())


def test_the_analysis_worker_is_up_before_the_first_room(tmp_path, monkeypatch):
    """Spawned by the first analysis, the worker's imports and STT model load ran beside the second
    case's live turn; the runner starts it before any room (its initializer loads the transcriber)."""
    stamp = tmp_path / "stamp"
    monkeypatch.setenv("AUTORTC_TEST_STAMP", str(stamp))
    joins: list[float] = []

    class TimedUser(_LoggedUser):
        async def join(self) -> None:
            joins.append(time.monotonic())
            await super().join()

    out = _one_case_run(tmp_path / "runs", monkeypatch, TimedUser, "_stamp_transcriber:factory")
    assert not out.harness_errors, out.harness_errors
    loads = [float(x) for x in stamp.read_text().split()]
    assert len(loads) == 1 and loads[0] < joins[0], (loads, joins)  # one worker, up before the room


def test_an_analysis_worker_that_cannot_start_is_a_harness_error_before_any_room(tmp_path, monkeypatch):
    out = _one_case_run(tmp_path, monkeypatch, _LoggedUser, "no_such_module:f")
    assert out.exit_code == suite_mod.EXIT_HARNESS
    assert out.harness_errors and out.harness_errors[0].startswith("analysis worker:"), out.harness_errors

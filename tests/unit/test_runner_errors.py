"""The runner retries only "the harness could not set the turn up" and lets every other error
fail its case (traceback in result.json) while the run goes on; owned tasks' errors surface."""

import asyncio
import contextlib
import json
from pathlib import Path

import numpy as np
import pytest

from autortc.bots.barrier import BarrierTimeout, raise_task_errors
from autortc.runner import suite as suite_mod
from autortc.runner.suite import EXIT_HARNESS, RunOptions, SuiteRunner
from autortc.runner.users import UserSide
from autortc.testing.faults import make_speech, write_turn_folder

pytestmark = pytest.mark.unit

CASES = Path(__file__).resolve().parents[2] / "cases" / "all_cases.json"


class ScriptedUser(UserSide):
    """A user side whose turns follow a script per case id: an exception to raise or 'ok'."""

    via = "fake"
    script: dict[str, list] = {}
    joined: list[str] = []

    def __init__(self, room: str) -> None:
        self.room = room

    async def join(self) -> None:
        ScriptedUser.joined.append(self.room)

    async def play_turn(self, case, *, trace_id, turn_index, out_dir):
        step = ScriptedUser.script[case.id].pop(0)
        if isinstance(step, BaseException):
            raise step
        s = make_speech(48000, seed=1, sentences=1)
        write_turn_folder(out_dir, pre=s.samples, sr=48000, case_id=case.id, trace_id=trace_id)

    async def _aclose_impl(self) -> None:
        pass


@pytest.fixture()
def runner(tmp_path, monkeypatch):
    @contextlib.asynccontextmanager
    async def no_room(target, name, *, metadata=None):
        yield None

    monkeypatch.setattr(suite_mod, "CaseRoom", no_room)
    monkeypatch.setattr(SuiteRunner, "_user_side", lambda self, room: ScriptedUser(room))
    ScriptedUser.joined = []
    opts = RunOptions(target=None, cases_path=CASES, suite="fast", out_root=tmp_path, run_id="errs",  # type: ignore[arg-type]
                      only=("endpoint_short_hello", "content_weather", "boom_trigger"), progress=False)
    return SuiteRunner(opts)


def test_only_setup_errors_are_retried_and_a_bug_fails_its_case_only(runner):
    ScriptedUser.script = {
        "endpoint_short_hello": [BarrierTimeout("agent_ready", 30.0), "ok"],  # retried, then passes
        "content_weather": [KeyError("a bug in AutoRTC"), "ok"],              # not retried
        "boom_trigger": ["ok"],
    }
    out = asyncio.run(runner.run())
    res = {c: json.loads((out.run_dir / c / "result.json").read_text()) for c in ScriptedUser.script}
    assert res["endpoint_short_hello"]["attempts"] == 2 and res["endpoint_short_hello"]["turns"]
    assert "agent_ready" in runner.retry_reasons["endpoint_short_hello"][0]
    bug = res["content_weather"]
    assert bug["verdict"] == "FAIL" and bug["attempts"] == 1 and not bug["turns"]
    assert "KeyError" in bug["error"] and "Traceback" in bug["error"] and "play_turn" in bug["error"]
    assert ScriptedUser.script["content_weather"] == ["ok"]  # never retried
    assert res["boom_trigger"]["turns"]  # the run went on
    assert out.exit_code == EXIT_HARNESS and any("content_weather" in e for e in out.harness_errors)
    # each attempt had its own room
    assert [r for r in ScriptedUser.joined if "endpoint_short_hello" in r] == \
        ["errs-endpoint_short_hello-a1", "errs-endpoint_short_hello-a2"]


def test_task_errors_are_raised_on_close():
    async def main():
        async def crash():
            raise ValueError("mic device gone")

        async def fine():
            await asyncio.sleep(0)

        t1, t2 = asyncio.create_task(crash(), name="user.mic"), asyncio.create_task(fine(), name="other")
        await asyncio.sleep(0.01)
        with pytest.raises(RuntimeError, match="task 'user.mic' failed: ValueError: mic device gone"):
            await raise_task_errors([t1, t2, None], owner="user bot")
        t3 = asyncio.create_task(asyncio.sleep(10))
        t3.cancel()
        await raise_task_errors([t3], owner="x")  # a cancellation is not an error

    asyncio.run(main())


def test_barrier_timeout_is_a_setup_error_and_names_the_barrier():
    e = BarrierTimeout("mic_published", 5.0, "the mic reached sample 10, not 20")
    assert isinstance(e, suite_mod.HarnessSetupError) and isinstance(e, TimeoutError)
    assert isinstance(e, suite_mod.RETRYABLE)
    assert "mic_published" in str(e) and "sample 10" in str(e)


def test_agent_failures_are_case_fails_with_cause_never_retried_and_late_passes_are_flaky(runner, tmp_path):
    """Issue 18 item 8: NO_REPLY / AGENT_GONE fail the case with their cause (exit 1, not 2),
    are not retried; a case that passed only on a later attempt is FLAKY in summary and JUnit."""
    from autortc.runner.users import AgentFailure, NoReplyError

    ScriptedUser.script = {
        "endpoint_short_hello": [NoReplyError("no reply_start for trace_id=x"), "ok"],
        "content_weather": [AgentFailure("AGENT_GONE", "the agent left the room"), "ok"],
        "boom_trigger": [BarrierTimeout("agent_ready", 30.0), "ok"],
    }
    out = asyncio.run(runner.run())
    res = {c: json.loads((out.run_dir / c / "result.json").read_text()) for c in ScriptedUser.script}
    for cid, cause in (("endpoint_short_hello", "NO_REPLY"), ("content_weather", "AGENT_GONE")):
        r = res[cid]
        assert r["verdict"] == "FAIL" and r["cause"] == cause and r["attempts"] == 1, r
        assert ScriptedUser.script[cid] == ["ok"]  # never retried
        t = r["turns"][0]
        assert t["no_reply"] is True
        assert any(v["gate"] == "no_reply" and v["status"] == "FAIL" for v in t["verdicts"])
    assert not any("endpoint_short_hello" in e or "content_weather" in e for e in out.harness_errors)
    assert out.exit_code != EXIT_HARNESS
    flaky = res["boom_trigger"]
    assert flaky["attempts"] == 2 and flaky["flaky"] is True
    summary = json.loads((out.run_dir / "summary.json").read_text())
    entry = {e["case_id"]: e for e in summary["cases"]}
    assert entry["boom_trigger"]["flaky"] is True and entry["endpoint_short_hello"]["cause"] == "NO_REPLY"
    assert summary["extra"]["flaky"] == ["boom_trigger"]
    junit = (out.run_dir / "junit.xml").read_text()
    assert 'name="flaky" value="true"' in junit and "FLAKY: passed only on attempt 2" in junit
    assert 'type="AgentFailure.NO_REPLY"' in junit
    report = (out.run_dir / "report.md").read_text()
    assert "FLAKY" in report and "NO_REPLY" in report


async def test_cancelling_the_owner_during_aclose_is_not_swallowed():
    """Ctrl-C (the run's task cancelled) while a bot awaits its owned tasks in aclose() must reach the
    runner: swallowing it made `autortc run` finish every case after a SIGINT."""
    from autortc.bots.barrier import raise_task_errors

    owned = asyncio.create_task(asyncio.sleep(30), name="mic")
    closing = asyncio.create_task(raise_task_errors([owned], owner="user bot"), name="aclose")
    await asyncio.sleep(0)  # closing now awaits the owned task
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    owned.cancel()
    with pytest.raises(asyncio.CancelledError):
        await owned


async def test_an_owned_task_that_was_cancelled_is_not_an_error():
    from autortc.bots.barrier import raise_task_errors

    owned = asyncio.create_task(asyncio.sleep(30), name="mic")
    await asyncio.sleep(0)
    owned.cancel()
    await raise_task_errors([owned], owner="user bot")  # returns: a cancelled owned task is how aclose stops it


class SlowLeaveUser(ScriptedUser):
    """Joins, then hangs until cancelled; leaving its room after the cancel takes a few awaits
    (as ``join_room`` letting a half-made join settle, then disconnecting)."""

    joining: asyncio.Event
    left: list[str] = []

    async def join(self) -> None:
        SlowLeaveUser.joining.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            for _ in range(5):
                await asyncio.sleep(0.01)
            SlowLeaveUser.left.append(self.room)
            raise


def test_ctrl_c_lets_the_case_in_flight_finish_leaving_its_room(runner, monkeypatch):
    """gather() ends on the first cancelled child (a case waiting for a job slot) while the case in
    flight is still leaving its room: the runner must not cancel that cleanup a second time."""
    monkeypatch.setattr(SuiteRunner, "_user_side", lambda self, room: SlowLeaveUser(room))
    SlowLeaveUser.left = []

    async def main():
        SlowLeaveUser.joining = asyncio.Event()
        run = asyncio.create_task(runner.run())
        await SlowLeaveUser.joining.wait()  # the first case is in its room, the others wait for the slot
        run.cancel()  # what asyncio.run does on Ctrl-C
        return await run

    out = asyncio.run(main())
    assert SlowLeaveUser.left == ["errs-endpoint_short_hello-a1"], "the cancelled case did not finish leaving its room"
    assert set(out.cut) == {"endpoint_short_hello", "content_weather", "boom_trigger"}

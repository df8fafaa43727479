"""BrowserUser: which page failures are the agent's (not retried) and which are the harness's (retried).

The page's own cause and the probe beside it decide: nothing played on the page *and* no
``reply_start`` at the probe is the agent not answering (NO_REPLY, as the bots decide it); a page
that played nothing while the probe got a reply is a harness problem.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autortc.bots.barrier import HarnessSetupError
from autortc.bots.probe_bot import ReplyEvents, TraceEvents
from autortc.bots.target import Target
from autortc.cases import load_case_file
from autortc.runner.suite import RETRYABLE
from autortc.runner.users import AgentFailure, BrowserUser, NoReplyError

pytestmark = pytest.mark.unit


class _Room:
    def __init__(self, identities: list[str]) -> None:
        self.remote_participants = {i: type("P", (), {"identity": i})() for i in identities}


class _Probe:
    """The probe's surface BrowserUser uses; ``reply``: a reply_start arrives for the trace."""

    def __init__(self, *, reply: bool, agent_here: bool = True) -> None:
        self.reply, self.agent_identity, self.room_name = reply, "agent-1", "r"
        self.room = _Room(["agent-1"] if agent_here else [])
        self.closed = False

    def begin_trace(self, trace_id: str) -> TraceEvents:
        tr = TraceEvents(trace_id)
        if self.reply:
            tr.replies[0] = ReplyEvents(0, start_msg={"type": "reply_start"})
        return tr

    async def ready(self, timeout_s: float) -> None:
        await asyncio.Event().wait()  # the page fails first; BrowserUser cancels this

    async def wait_agent_left(self, *, timeout_s: float) -> bool:
        return True

    async def aclose(self) -> None:
        self.closed = True


@pytest.fixture
def case(tmp_path: Path):
    sf.write(str(tmp_path / "u.wav"), np.zeros(16000, dtype=np.float32), 16000, subtype="PCM_16")
    seg = [{"wav": "u.wav", "after": "start", "expect": "respond", "speech_start_ms": 100, "speech_end_ms": 900}]
    (tmp_path / "cases.json").write_text(json.dumps({"v": 1, "suites": {"s": {"mode": "per_case", "cases": ["c"]}},
                                                     "cases": [{"id": "c", "p_level": "P0", "description": "d",
                                                                "segments": seg}]}))
    return load_case_file(tmp_path / "cases.json").case("c")


async def _play(monkeypatch, tmp_path: Path, case, probe: _Probe, cause: str):
    import autobrowser.harness as h

    async def page(*a, **k):
        raise h.BrowserTurnError(h.BrowserFailure(cause), "scripted page failure")

    monkeypatch.setattr(h, "arun_browser_case", page)
    user = BrowserUser(Target(livekit_url="ws://127.0.0.1:1", api_key="k", api_secret="s"), room="r", run_id="run",
                       token_url="http://127.0.0.1:1")
    user.probe = probe  # type: ignore[assignment]
    try:
        await user.play_turn(case, trace_id="t1", turn_index=0, out_dir=tmp_path / "t1")
    finally:
        await user.aclose()


async def test_no_playout_and_no_reply_at_the_probe_is_the_agents_no_reply(monkeypatch, tmp_path, case):
    with pytest.raises(NoReplyError) as ei:
        await _play(monkeypatch, tmp_path, case, _Probe(reply=False), "no_playout")
    assert ei.value.cause == "NO_REPLY" and "no_playout" in str(ei.value)
    assert not isinstance(ei.value, RETRYABLE)  # never retried: a retry would launder the agent


async def test_no_playout_after_the_agent_left_is_agent_gone(monkeypatch, tmp_path, case):
    with pytest.raises(AgentFailure) as ei:
        await _play(monkeypatch, tmp_path, case, _Probe(reply=False, agent_here=False), "no_playout")
    assert ei.value.cause == "AGENT_GONE"


@pytest.mark.parametrize("reply, cause", [(True, "no_playout"), (False, "no_agent_ready"), (False, "no_audio_track")])
async def test_other_page_failures_stay_harness_problems(monkeypatch, tmp_path, case, reply, cause):
    probe = _Probe(reply=reply)
    with pytest.raises(HarnessSetupError) as ei:
        await _play(monkeypatch, tmp_path, case, probe, cause)
    assert isinstance(ei.value, RETRYABLE) and cause in str(ei.value) and probe.closed


class _ProbeThatFailsToo(_Probe):
    """A probe whose own ready fails at once (an agent that never answers), beside the page's failure."""

    async def ready(self, timeout_s: float) -> None:
        raise RuntimeError("probe ready failed")


async def test_the_probes_own_error_is_retrieved_when_the_pages_error_wins(monkeypatch, tmp_path, case, caplog):
    # An unretrieved task error is logged at GC, wherever GC runs next (on CPython 3.11, inside an
    # ast.parse that then fails with "AST constructor recursion depth mismatch").
    caplog.set_level(logging.INFO, logger="autortc.runner")
    unretrieved: list[dict] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: unretrieved.append(ctx))
    with pytest.raises(HarnessSetupError):
        await _play(monkeypatch, tmp_path, case, _ProbeThatFailsToo(reply=True), "no_playout")
    gc.collect()
    assert not unretrieved, [c.get("message") for c in unretrieved]
    assert any("t1" in r.getMessage() and "probe ready failed" in r.getMessage() for r in caplog.records)

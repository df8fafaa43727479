"""Issue 18 item 8 through the real SFU: an agent that never joins is the agent's failure.

The case's room is created with an explicit dispatch to an agent name no worker serves, so the
LiveKit server never sends an agent in. The user bot and the probe join for real and wait for
the agent's track. The case must FAIL with cause ``NO_AGENT`` on its first attempt: retrying in
a fresh room would hide a worker that does not take jobs, and exit 2 (harness) would blame AutoRTC.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from autortc.results import CaseResult, read_json
from autortc.runner.conversation import TurnTimeouts
from autortc.runner.suite import EXIT_HARNESS, RunOptions, SuiteRunner

pytestmark = pytest.mark.e2e

CASE_ID = "endpoint_short_hello"
JOIN_S = 5.0  # the agent would have joined within ~1 s on an idle stack (probe ready logs)


@pytest.mark.timeout(180)
async def test_an_agent_that_never_joins_fails_the_case_with_no_agent_and_is_not_retried(stack, tmp_path: Path,
                                                                                       task_guard) -> None:
    target = dataclasses.replace(stack.target, agent_name="autortc-no-such-agent")
    opts = RunOptions(target=target, cases_path=Path("cases/all_cases.json"), suite="fast", only=(CASE_ID,),
                      run_id="no-agent-e2e", out_root=tmp_path, progress=False, max_attempts=3,
                      timeouts=TurnTimeouts(join_s=JOIN_S))
    runner = SuiteRunner(opts)
    outcome = await asyncio.wait_for(runner.run(), 150)

    result = read_json(outcome.run_dir / CASE_ID / "result.json", CaseResult)
    assert result.verdict == "FAIL" and result.cause == "NO_AGENT", (result.verdict, result.cause, result.error)
    assert result.attempts == 1 and not runner.retry_reasons.get(CASE_ID), runner.retry_reasons
    assert f"no-agent-e2e-{CASE_ID}-a1" in (result.error or ""), result.error
    turn = result.turns[0]
    assert turn.no_reply is True
    assert any(v.gate == "no_reply" and v.status == "FAIL" for v in turn.verdicts)
    assert outcome.exit_code not in (0, EXIT_HARNESS), outcome.exit_code
    assert not outcome.harness_errors, outcome.harness_errors

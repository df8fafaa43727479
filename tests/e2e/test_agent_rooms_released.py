"""The rooms a run served leave nothing running in the agent's process.

A room the server deletes while the agent is still in it strands the agent's published audio track
in the LiveKit SDK: one native ``AudioSourceCapture`` thread per room for the life of the process
(livekit/rust-sdks#1443), each ticking every 10 ms. Before the bundled agent unpublished its track when
its user left, its idle CPU grew from 2.8 % to 17 % of a core over 64 rooms, and the clean turns of a
183-room fault bench were ~100 ms slower (median) in its last third than in its first. Planted truth:
the rooms served; measured: the agent's native capture threads, read from /proc (docs/protocol.md
"Leaving a room").
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psutil
import pytest

from autortc.runner.suite import RunOptions, SuiteRunner

pytestmark = pytest.mark.e2e

CASES = Path(__file__).resolve().parents[2] / "cases" / "all_cases.json"
THREAD = "AudioSourceCapt"  # libwebrtc's audio source capture thread, as /proc shows its name (15 chars)


def _agent_pids() -> list[int]:
    from system.procgroup import group_members
    from system.stack import Stack

    agent = next(c for c in Stack().status() if c.name == "agent")
    assert agent.running and agent.pid is not None, "the bundled agent is not running"
    return group_members(agent.pid)


def _capture_threads() -> int:
    n = 0
    for pid in _agent_pids():
        for t in Path(f"/proc/{pid}/task").glob("*"):
            try:
                n += (t / "comm").read_text().startswith(THREAD)
            except OSError:  # the thread ended while listed
                continue
    return n


def test_rooms_served_leave_no_capture_thread_in_the_agent(stack, tmp_path):
    before = _capture_threads()
    cases = ("endpoint_short_hello", "endpoint_trailing_silence")
    runner = SuiteRunner(RunOptions(target=stack.target, cases_path=CASES, suite="fast", only=cases,
                                    out_root=tmp_path, run_id="e2e-rooms-released", progress=False))
    outcome = asyncio.run(runner.run())
    assert not outcome.harness_errors, outcome.harness_errors
    # the agent releases a room's track as it leaves, a few ms after the probe saw it go: wait for
    # the count to settle (a stranded thread never goes, so this fails after the deadline)
    deadline = time.monotonic() + 5.0
    while (after := _capture_threads()) > before and time.monotonic() < deadline:
        time.sleep(0.1)
    print(f"agent {THREAD} threads: {before} before, {after} after {len(cases)} rooms; "
          f"agent process threads now {sum(psutil.Process(p).num_threads() for p in _agent_pids())}")
    assert after <= before, f"{after - before} of {len(cases)} rooms left a capture thread running in the agent"

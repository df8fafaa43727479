"""``--jobs N --concurrent-turns 1``: rooms overlap, live turns do not — seen from the agent's side.

Each turn's live window is read from the bundled agent's own trace (the agent's clock is the host's
monotonic clock, ``agent.clock_offset_s`` 0): from the agent receiving ``turn_start`` to the end of its
last reply. With one live slot no two windows of the run may overlap, while the cases' rooms were
open at the same time (their wall times add up to more than the run's), and no room's job starts,
session starts or session closes inside another room's live window — read from the agent worker's
own log (``output/stack/logs/agent.log``), not from the runner. With as many slots as rooms the same
cases' windows do overlap, so the check can fail.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import time
from pathlib import Path

import pytest

from autortc.artifacts import load_turn
from autortc.runner.suite import RunOptions, SuiteRunner

pytestmark = pytest.mark.e2e

CASES = Path(__file__).resolve().parents[2] / "cases" / "all_cases.json"
# two rooms: the bundled worker took every dispatch at --jobs 2 in the A/B runs of session 20; a third
# room waiting for its slot once got no agent (NO_AGENT, docs/agent-latency.md "Parallel rooms")
SHORT = ("endpoint_short_hello", "endpoint_trailing_silence")


# the agent worker's per-room lines (LiveKit Agents' and the bundled agent's): its job starting, its
# session starting, its session closing when the user leaves
_ROOM_EVENTS = ("received job request", "session started in room", "closing agent session")


def _agent_room_events(run_id: str, since_wall: float) -> list[tuple[float, str, str]]:
    """(wall time s, room, message) of the agent log's per-room lines for ``run_id``'s rooms."""
    from system.paths import stack_dir

    out = []
    for line in (stack_dir() / "logs" / "agent.log").read_text(errors="replace").splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue
        msg = str(d.get("message", ""))
        if not msg.startswith(_ROOM_EVENTS) or "timestamp" not in d:
            continue
        m = re.search(r"in room (\S+)", msg)
        room = d.get("room") or (m.group(1) if m else "")
        t = datetime.datetime.fromisoformat(d["timestamp"]).timestamp()
        if room.startswith(f"{run_id}-") and t >= since_wall:
            out.append((t, room, msg[:40]))
    return out


def _run(stack, tmp_path: Path, run_id: str, cases: tuple[str, ...], concurrent: int):
    runner = SuiteRunner(RunOptions(target=stack.target, cases_path=CASES, suite="fast", only=cases, jobs=len(cases),
                                    concurrent_turns=concurrent, out_root=tmp_path, run_id=run_id, progress=False))
    since_wall = time.time()
    t0 = time.monotonic()
    outcome = asyncio.run(runner.run())
    wall = time.monotonic() - t0
    assert not outcome.harness_errors, outcome.harness_errors
    windows = {}
    for case_id in cases:
        (turn_dir,) = [d for d in (outcome.run_dir / case_id).iterdir() if d.is_dir()]
        art = load_turn(turn_dir).artifacts
        assert art is not None and art.agent is not None, f"{case_id}: no agent trace"
        assert not art.agent.clock_offset_s, "the bundled agent shares the host clock"
        start = art.agent.stages["turn_start_received"]
        end = max(r.t_end for r in art.agent.replies if r.t_end is not None)
        windows[case_id] = (start + art.wall_offset_s, end + art.wall_offset_s)  # host wall clock, s
    durations = [json.loads((outcome.run_dir / c / "result.json").read_text())["duration_s"] for c in cases]
    return windows, wall, sum(durations), outcome.summary.extra, _agent_room_events(run_id, since_wall)


def _overlaps(windows: dict[str, tuple[float, float]]) -> list[tuple[str, str, float]]:
    items = sorted(windows.items(), key=lambda kv: kv[1][0])
    return [(a, b, wa[1] - wb[0]) for i, (a, wa) in enumerate(items) for b, wb in items[i + 1:] if wb[0] < wa[1]]


def _inside(windows: dict[str, tuple[float, float]], events: list[tuple[float, str, str]]) -> list[str]:
    """Agent-log room events that fall inside the live window of another case's turn."""
    return [f"{msg!r} of {room} at {t - w[0]:+.2f} s into {case}'s live turn"
            for t, room, msg in events for case, w in windows.items()
            if f"-{case}-" not in room and w[0] <= t <= w[1]]


def test_one_live_slot_keeps_the_agents_turns_apart_while_rooms_overlap(stack, tmp_path):
    windows, wall, busy, extra, events = _run(stack, tmp_path, "e2e-live-1", SHORT, concurrent=1)
    print("live windows (wall):", {k: (round(v[0], 2), round(v[1], 2)) for k, v in windows.items()},
          f"run wall {wall:.1f} s, case walls {busy:.1f} s, slot waits {extra['live_slot_wait_s']} s",
          "agent room events:", [(round(t, 2), r, m) for t, r, m in events])
    assert _overlaps(windows) == [], "two turns were live in the agent at once"
    assert busy > wall, "the rooms did not overlap: --jobs gained nothing"
    assert extra["concurrent_turns"] == 1 and extra["live_slot_wait_s"] > 0
    # every room's job start, session start and close is in the agent's log, none inside another's live turn
    assert {m[:8] for _, _, m in events} == {"received", "session ", "closing "}, events
    assert len(events) == 3 * len(SHORT), events
    assert _inside(windows, events) == [], "a room was set up or torn down while another room's turn was live"


def test_as_many_live_slots_as_rooms_lets_the_turns_overlap(stack, tmp_path):
    windows, _, _, extra, _ = _run(stack, tmp_path, "e2e-live-2", SHORT, concurrent=2)
    assert extra["concurrent_turns"] == 2
    assert _overlaps(windows), f"the control did not overlap: {windows}"

"""Running the bench: the plan's items through the normal runner, and the scoring input from its results.

Each ``BenchItem`` becomes one ``RunItem`` of ``autortc.runner.suite`` (one room, the item's
``{"case_id", "bench_item", "fault"}`` merged into the room's / dispatch's metadata), so the
turn goes through the same user side, probe, metrics, gates and report as ``autortc run``;
there is no bench-only detector. Afterwards ``outcomes()`` turns each entry's ``CaseResult``
(the turn's gate verdicts, its latency) and its ``trace.json`` (``agent.extra["fault_truth"]``,
the agent's own ground truth) into ``TurnOutcome`` records for ``score.score``.

``timing()`` decomposes each turn's latency on the bundled stack's one host clock (the agent's
stages are on the runner's CLOCK_MONOTONIC, ``artifacts.AgentBlock.stages``):

* uplink   = agent ``end_of_turn`` - user EoT (``user.t_user_eot``),
* agent    = agent ``first_frame_published`` - ``end_of_turn``,
* downlink = first audible sample at the probe (``latency.first_audio_t``) - ``first_frame_published``;

the three add up to ``first_audio_t - t_user_eot`` (= ``eot_to_first_audio_ms``).

``receivers()`` (``--via browser``): the page's own USER_KPI against the probe on the same
turns (``autortc.metrics.receivers``: bias, its interval, spread, pairing counts).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autortc.artifacts import TRACE_FILE, TraceFileError, read_trace
from autortc.faultbench.plan import BenchPlan
from autortc.faultbench.score import BenchScore, TurnOutcome, Verdict
from autortc.metrics.receivers import ReceiverAgreement, agreement, pairs_from_turns
from autortc.runner.suite import RunItem

NO_REPLY_FAULTS = ("no_reply",)


def entry_id(item: Any) -> str:
    """Result folder / summary entry of a plan item: ``b007-gap_60-content_weather``."""
    return f"b{item.index:03d}-{item.fault or 'clean'}-{item.case_id}"


def run_items(plan: BenchPlan) -> tuple[RunItem, ...]:
    """One ``RunItem`` per plan item. ``no_reply`` turns get one attempt: the missing reply is the
    fault, a retry in a fresh room would only plant it again."""
    return tuple(RunItem(entry_id(it), it.case_id, it.metadata(),
                         max_attempts=1 if it.fault in NO_REPLY_FAULTS else None) for it in plan.items)


@dataclass
class TurnRecord:
    """What the bench keeps of one entry besides the scoring input: its folder and timing parts (ms)."""

    outcome: TurnOutcome
    turn_dir: Path | None
    uplink_ms: float | None = None
    agent_ms: float | None = None
    downlink_ms: float | None = None
    note: str = ""
    turn: Any = None  # the runner's TurnResult (None: no turn)


def _trace(turn_dir: Path) -> Any:
    try:
        return read_trace(turn_dir / TRACE_FILE)
    except TraceFileError:
        return None


def outcomes(plan: BenchPlan, results: dict[str, Any], run_dir: Path) -> list[TurnRecord]:
    """Scoring input (+ timing parts) from the runner's ``results`` (entry id -> ``CaseResult``).

    An entry with no turn is a harness error (``TurnOutcome.error``), not scored, except a
    ``no_reply`` turn whose only problem is that no reply came: that turn ran, and no gate
    flagged it (today's runner calls a missing reply a harness error; issue 18 item 8).
    """
    out = []
    for it in plan.items:
        eid = entry_id(it)
        res = results.get(eid)
        if res is None:
            out.append(TurnRecord(TurnOutcome(item=it.index, case_id=it.case_id, fault=it.fault, pair=it.pair,
                                              error="not run (cut)"), None))
            continue
        if not res.turns:
            err = (res.error or "no turn").splitlines()[0][:300]
            note = ""
            if it.fault in NO_REPLY_FAULTS and "NoReply" in (res.error or ""):
                note, err = f"no reply came; the runner reported a harness error, no gate verdict ({err})", ""
            out.append(TurnRecord(TurnOutcome(item=it.index, case_id=it.case_id, fault=it.fault, pair=it.pair,
                                              error=err), None, note=note))
            continue
        turn = res.turns[0]
        turn_dir = run_dir / eid / turn.trace_id
        art = _trace(turn_dir)
        truth: tuple[dict[str, Any], ...] = ()
        rec = TurnRecord(TurnOutcome(item=it.index, case_id=it.case_id, fault=it.fault, pair=it.pair), turn_dir, turn=turn)
        if art is not None and art.agent is not None:
            truth = tuple(art.agent.extra.get("fault_truth") or ())
            st = art.agent.stages
            eot, fa = art.user.t_user_eot, turn.latency.first_audio_t
            dec, pub = st.get("end_of_turn"), st.get("first_frame_published")
            if eot is not None and dec is not None:
                rec.uplink_ms = 1000.0 * (dec - eot)
            if dec is not None and pub is not None:
                rec.agent_ms = 1000.0 * (pub - dec)
            if pub is not None and fa is not None:
                rec.downlink_ms = 1000.0 * (fa - pub)
        elif it.fault is not None:
            rec.note = "no agent block in trace.json: fault truth unknown"
        rec.outcome = TurnOutcome(
            item=it.index, case_id=it.case_id, fault=it.fault, pair=it.pair, truth=truth,
            verdicts=tuple(Verdict(v.gate, v.status, v.measured) for v in turn.verdicts),  # type: ignore[arg-type]
            latency_ms=turn.latency.eot_to_first_audio_ms,
            error=next((e.splitlines()[0] for e in turn.errors if e.startswith("analysis error")), ""))
        out.append(rec)
    return out


def _spread(xs: list[float]) -> dict[str, Any]:
    if not xs:
        return {"n": 0}
    a = np.asarray(xs, dtype=float)
    return {"n": int(a.size), "median": round(float(np.median(a)), 1), "p05": round(float(np.percentile(a, 5)), 1),
            "p95": round(float(np.percentile(a, 95)), 1), "std": round(float(a.std(ddof=1)), 1) if a.size > 1 else 0.0}


def timing(records: list[TurnRecord]) -> dict[str, Any]:
    """Latency and its parts over the turns that have all three (ms): median, 5th/95th percentile,
    std. ``path`` = uplink + downlink, the WebRTC path's share; ``sum_error`` = how far the parts'
    sum is from the measured latency (should be ~0: one clock)."""
    full = [r for r in records if None not in (r.uplink_ms, r.agent_ms, r.downlink_ms) and r.outcome.latency_ms is not None
            and r.outcome.fault not in ("delay_300", "delay_600", "premature_500")]
    out: dict[str, Any] = {
        "turns": len(full),
        "latency_ms": _spread([r.outcome.latency_ms for r in full]),  # type: ignore[misc]
        "uplink_ms": _spread([r.uplink_ms for r in full]),  # type: ignore[misc]
        "agent_ms": _spread([r.agent_ms for r in full]),  # type: ignore[misc]
        "downlink_ms": _spread([r.downlink_ms for r in full]),  # type: ignore[misc]
        "path_ms": _spread([r.uplink_ms + r.downlink_ms for r in full]),  # type: ignore[operator]
    }
    if full:
        errs = [abs(r.uplink_ms + r.agent_ms + r.downlink_ms - r.outcome.latency_ms) for r in full]  # type: ignore[operator]
        out["sum_error_ms_max"] = round(max(errs), 3)
    return out


def receivers(records: list[TurnRecord], plan: BenchPlan) -> ReceiverAgreement:
    """Browser USER_KPI vs probe over every bench turn that has a turn (clean and faulted: both
    receivers hear the same reply, whatever the agent did to it); only turns both measured pair."""
    return agreement(pairs_from_turns((entry_id(plan.items[r.outcome.item]), r.turn) for r in records
                                      if r.turn is not None))


def instrument_for(via: str, base: dict[str, Any], recv: ReceiverAgreement | None) -> dict[str, Any]:
    """The instrument's error bar as it applies to this path.  Bots: the unit-tested figures.
    Browser: the user's EoT is the page's (its AudioContext frame, on the page clock), brought to
    the host clock by the clock sync, good to RTT/2: that bound (the run's worst turn) replaces
    the bots' MicTimeline figure."""
    if via != "browser":
        return dict(base)
    out = dict(base)
    out["user_eot_max_error_ms"] = None if recv is None or recv.sync_error_max_ms is None else round(recv.sync_error_max_ms, 2)
    out["user_eot_source"] = ("the page's EoT brought to the host clock by the clock sync: RTT/2 of this run's worst turn; "
                              "the page's own frame -> time mapping (getOutputTimestamp) is not in this bound")
    return out


def summary_extra(score: BenchScore, plan: BenchPlan, tim: dict[str, Any], instrument: dict[str, Any],
                  recv: ReceiverAgreement | None = None) -> dict[str, Any]:
    """The compact bench section of ``summary.json`` (``extra.faultbench``) the report renders."""
    rows = []
    for r in score.rows:
        if not r.scored:
            continue
        planted = [v["planted"] for v in r.values if v["planted"] is not None]
        measured = [v["measured"] for v in r.values if v["measured"] is not None]
        rows.append({"fault": r.name, "side": r.side, "gates": list(r.gates), "level": r.level, "caught": r.caught,
                     "planted": r.planted, "recall": r.recall, "wilson95": list(r.wilson95) if r.wilson95 else None,
                     "planted_median": statistics.median(planted) if planted else None,
                     "measured_median": statistics.median(measured) if measured else None,
                     "not_planted": r.not_planted, "harness_errors": r.harness_errors, "passed": r.passed})
    d = score.delay
    return {
        "seed": plan.seed, "k": plan.k, "clean": plan.clean, "delay_pairs": plan.delay_pairs,
        "rows": rows, "clean_turns": score.clean_turns, "false_alarms": score.false_alarms,
        "false_alarm_total": score.false_alarm_total,
        "delay": None if d is None else {"planted_diff_ms": d.planted_diff_ms, "pairs": d.pairs, "median_ms": d.median_ms,
                                         "ci95_ms": list(d.ci95_ms) if d.ci95_ms else None, "error_ms": d.error_ms},
        "timing": tim, "instrument": instrument,
        "receivers": None if recv is None else recv.to_dict(),
        "min_recall": score.min_recall, "max_false_alarms": score.max_false_alarms, "passed": score.passed,
        "reasons": score.reasons,
    }

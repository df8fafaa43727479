"""Running the bench: the plan's items through the normal runner, and the scoring input from its results.

Each ``BenchItem`` becomes one ``RunItem`` of ``autortc.runner.suite`` (one room, the item's
``{"case_id", "bench_item", "fault"}`` merged into the room's / dispatch's metadata), so the
turn goes through the same user side, probe, metrics, gates and report as ``autortc run``;
there is no bench-only detector. Afterwards ``outcomes()`` turns each entry's ``CaseResult``
(the turn's gate verdicts, its latency) and its ``trace.json`` (``agent.extra["fault_truth"]``,
the agent's own ground truth) into ``TurnOutcome`` records for ``score.score``.

``timing()`` decomposes each turn's latency on the bundled stack's one host clock (the agent's
stages are on the runner's CLOCK_MONOTONIC, ``artifacts.AgentBlock.stages``) with
``autortc.metrics.instrument`` (uplink, agent, downlink; they add up to ``eot_to_first_audio_ms``).

``receivers()`` (``--via browser``): the page's own USER_KPI against the probe on the same
turns (``autortc.metrics.receivers``: bias, its interval, spread, pairing counts).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autortc.artifacts import TRACE_FILE, TraceFileError, read_trace
from autortc.faultbench.plan import BenchPlan
from autortc.faultbench.score import BenchScore, TurnOutcome, Verdict
from autortc.metrics.instrument import heard_reply, timing_summary
from autortc.metrics.turn import SPECTRUM_MIN_S
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
    split_note: str | None = None  # why the latency is not split (Latency.split_note)


def _trace(turn_dir: Path) -> Any:
    try:
        return read_trace(turn_dir / TRACE_FILE)
    except TraceFileError:
        return None


PREMATURE_MIN_LEAD_MS = 200.0
"""A premature reply is planted when the agent published its first frame at least this long before
the user's EoT (one host clock): more than the downlink's 95th percentile on this machine (56-162 ms,
docs/faultbench.md), so its audio sounds before the EoT.  The agent's hook says the reply at a time
after the user's VAD onset; VAD and TTS latency made it publish 4-143 ms before the EoT or 39 ms
after on fb-bots-1702, heard 10-90 ms after the EoT in 4 of 5 turns: no talk-over happened."""

SPECTRUM_KINDS = ("rate_22k_as_24k", "lowpass")
"""Truth kinds judged on the reply's long-term spectrum (the ``speed`` and ``hf_loss`` gates). Such a
fault in a reply cut after less than :data:`autortc.metrics.turn.SPECTRUM_MIN_S` was never heard as
one: the metrics judge no band or rate on so little (fb-bots-s20 b008: the slow speaker answered into
its pause, the resampled reply 0 cut after 102 ms, speed and hf_loss not measured, scored a miss)."""


def heard_truth(truth: tuple[dict[str, Any], ...], agent: Any, *, t_user_eot: float | None = None,
                first_audio_t: float | None = None) -> tuple[dict[str, Any], ...]:
    """The agent's truth, checked against what it published (its own stages, one host clock):

    * a fault planted into a reply the agent cancelled before that reply's first frame (it took a
      pause in the user's sentence for the end of turn, then the user went on) never reached
      anyone (fb-bots-1702 b001: a gap in reply 0, never published; the heard reply 1 was clean),
      nor did one placed after the point where an interrupted reply was cut;
    * a premature reply published less than ``PREMATURE_MIN_LEAD_MS`` before the user's EoT did
      not talk over the user;
    * a band or rate fault (:data:`SPECTRUM_KINDS`) in a reply cut after less than
      ``SPECTRUM_MIN_S`` of audio was too short to be heard as one;
    * a delay planted into a reply that is not the one heard after the user's EoT (``first_audio_t``,
      ``instrument.heard_reply``) is not in the measured latency: the agent answered into a pause,
      that reply was cut, the reply heard is a later, undelayed one (fb-browser-1903 b003, b040, b098).

    Such records get ``planted: false`` and the reason, so the turn counts apart, not as a miss.
    """
    unheard = {r.reply_index for r in agent.replies
               if r.t_first_frame_published is None and not (r.pre_rtc_samples or 0)}
    # interrupted replies -> seconds of them played before the cut (their pre-RTC copy's length)
    cut_s = {r.reply_index: r.pre_rtc_samples / r.pre_rtc_sr for r in agent.replies
             if r.interrupted and r.pre_rtc_samples and r.pre_rtc_sr}
    pub = agent.stages.get("first_frame_published")
    heard = heard_reply(agent.replies, first_audio_t)
    out = []
    for t in truth:
        played_s = cut_s.get(t.get("reply_index"))
        if t.get("planted") and t.get("reply_index") in unheard:
            t = {**t, "planted": False,
                 "reason": f"never heard: reply {t['reply_index']} was cancelled before its first frame"}
        elif t.get("planted") and played_s is not None and t.get("kind") in SPECTRUM_KINDS and played_s < SPECTRUM_MIN_S:
            t = {**t, "planted": False,
                 "reason": f"never heard as one: reply {t['reply_index']} was cut after "
                           f"{1000 * played_s:.0f} ms, under the {SPECTRUM_MIN_S:.1f} s a band "
                           "or rate change is judged on (metrics.turn.SPECTRUM_MIN_S)"}
        elif (t.get("planted") and played_s is not None and t.get("start_sample") is not None and t.get("sample_rate")
              and t["start_sample"] / t["sample_rate"] >= played_s):
            # b116: reply 0 was cut after 150 ms; its lost frame was due at 660 ms
            t = {**t, "planted": False,
                 "reason": f"never heard: reply {t['reply_index']} was cut at {1000 * played_s:.0f} ms, "
                           f"before the fault's place ({1000 * t['start_sample'] / t['sample_rate']:.0f} ms)"}
        elif (t.get("planted") and t.get("kind") == "delay" and heard is not None and t.get("reply_index") is not None
              and int(t["reply_index"]) != heard.reply_index):
            t = {**t, "planted": False,
                 "reason": f"never heard: the delay was in reply {t['reply_index']}, the reply heard after the user's "
                           f"EoT is reply {heard.reply_index}"}
        elif t.get("planted") and t.get("kind") == "premature" and pub is not None and t_user_eot is not None:
            lead = 1000.0 * (t_user_eot - pub)
            t = {**t, "extra": {**(t.get("extra") or {}), "published_before_eot_ms": round(lead, 1)}}
            if lead < PREMATURE_MIN_LEAD_MS:
                t = {**t, "planted": False,
                     "reason": f"injector missed its time: first frame published {lead:.0f} ms before the user's EoT "
                               f"(< {PREMATURE_MIN_LEAD_MS:.0f} ms), no talk-over reached the user"}
        out.append(t)
    return tuple(out)


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
            truth = heard_truth(tuple(art.agent.extra.get("fault_truth") or ()), art.agent, t_user_eot=art.user.t_user_eot,
                                first_audio_t=turn.latency.first_audio_t)
            # the split metrics.turn.compute made on the stack's one clock (TurnResult.latency)
            rec.uplink_ms, rec.agent_ms, rec.downlink_ms = turn.latency.uplink_ms, turn.latency.agent_ms, turn.latency.downlink_ms
            rec.split_note = turn.latency.split_note
        elif it.fault is not None:
            rec.note = "no agent block in trace.json: fault truth unknown"
        rec.outcome = TurnOutcome(
            item=it.index, case_id=it.case_id, fault=it.fault, pair=it.pair, truth=truth,
            verdicts=tuple(Verdict(v.gate, v.status, v.measured) for v in turn.verdicts),  # type: ignore[arg-type]
            latency_ms=turn.latency.eot_to_first_audio_ms,
            error=next((e.splitlines()[0] for e in turn.errors if e.startswith("analysis error")), ""),
            downlink_ms=rec.downlink_ms)
        out.append(rec)
    return out


def timing(records: list[TurnRecord]) -> dict[str, Any]:
    """Latency and its parts (``autortc.metrics.instrument.timing_summary``) over the turns whose
    latency is not itself planted (delay and premature faults are left out)."""
    return timing_summary((r.outcome.latency_ms, r.uplink_ms, r.agent_ms, r.downlink_ms, r.split_note) for r in records
                          if r.outcome.latency_ms is not None
                          and r.outcome.fault not in ("delay_300", "delay_600", "premature_500"))


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
                     "not_planted": r.not_planted, "not_planted_why": dict(r.not_planted_why),
                     "harness_errors": r.harness_errors, "passed": r.passed})
    def delay(d: Any) -> dict[str, Any] | None:
        return None if d is None else {"planted_diff_ms": d.planted_diff_ms, "pairs": d.pairs, "median_ms": d.median_ms,
                                       "ci95_ms": list(d.ci95_ms) if d.ci95_ms else None, "error_ms": d.error_ms,
                                       "part": d.part, "left_out": dict(d.left_out),
                                       "incomplete_pairs": d.incomplete_pairs}

    return {
        "seed": plan.seed, "k": plan.k, "clean": plan.clean, "delay_pairs": plan.delay_pairs,
        "rows": rows, "clean_turns": score.clean_turns, "false_alarms": score.false_alarms,
        "false_alarm_total": score.false_alarm_total,
        "delay": delay(score.delay), "delay_downlink": delay(score.delay_downlink),
        "timing": tim, "instrument": instrument,
        "receivers": None if recv is None else recv.to_dict(),
        "min_recall": score.min_recall, "max_false_alarms": score.max_false_alarms, "passed": score.passed,
        "reasons": score.reasons,
    }

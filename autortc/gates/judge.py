"""Verdicts: every PASS/WARN/FAIL/SKIP of a run is decided here and nowhere else.

    rg = RunGates.load(gates_path, suite_table=suite.gates, suite_source="cases.json:suites.fast")
    case_gates = rg.for_case(case.id, case.gates, source="cases.json:<id>")   # remembered
    judge_turn(turn, case_gates)                        # turn.verdicts, turn.verdict
    case.verdict = judge_case(case)
    summary = judge_run(run_id, cases, rg, suite="fast")  # run gates, case entries, JUnit verdicts

Per-case overrides hold at run level too: a turn is judged, in the run aggregate, by the
gate as its case overrode it (see :func:`evaluate_run`).  The report renders what this
module produced (``summary.json``) and judges nothing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from autortc.gates.spec import GateSet, GateSpec, load_gates
from autortc.results import ORIGIN_TEXT, CaseEntry, CaseResult, GateVerdict, RunSummary, Status, TurnResult, worst

__all__ = ["RunGates", "judge_turn", "judge_case", "judge_run", "judge_values", "evaluate_turn", "evaluate_run"]


def _num(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


class RunGates:
    """The gates of one run: ``base`` (defaults -> ``--gates`` file -> suite table) and the
    gate set of every case that overrides it.

    :meth:`for_case` builds a case's gates and remembers them under its id (the
    ``CaseResult.case_id``, i.e. the entry id ``turn03-x`` in conversation suites), so
    :func:`judge_run` judges each turn by its own case's gates.
    """

    def __init__(self, base: GateSet) -> None:
        self.base = base
        self._cases: dict[str, GateSet] = {}

    @classmethod
    def load(cls, gates_path: Path | str | None = None, *, suite_table: Mapping[str, Any] | None = None,
             suite_source: str = "suite") -> "RunGates":
        """Defaults, then the ``--gates`` file, then the suite's ``gates`` table.

        Raises:
            GateConfigError: naming the file/table and the bad gate or key.
        """
        return cls(load_gates(gates_path).override(suite_table, source=suite_source))

    def for_case(self, case_id: str, overrides: Mapping[str, Any] | None = None, *, source: str = "") -> GateSet:
        """The case's gates (``base`` with ``overrides``: ``{gate: threshold}`` or gate tables)."""
        gs = self.base.override(overrides, source=source or f"case {case_id}") if overrides else self.base
        self._cases[case_id] = gs
        return gs

    def of(self, case_id: str) -> GateSet:
        """Gates a case was judged with (``base`` for a case never registered)."""
        return self._cases.get(case_id, self.base)

    def overridden(self) -> dict[str, list[GateSpec]]:
        """``case_id -> gates its overrides changed`` (cases without overrides left out)."""
        out = {cid: gs.changed_from(self.base) for cid, gs in self._cases.items()}
        return {cid: specs for cid, specs in out.items() if specs}


# ---------------------------------------------------------------------------------- turn


def evaluate_turn(turn: TurnResult, gates: GateSet) -> list[GateVerdict]:
    """Verdicts of every enabled gate for one turn.

    Turn gates decide PASS/WARN/FAIL here.  A run gate over a percentile/mean (e.g.
    a P95) cannot be decided by one turn: a turn beyond its threshold gets WARN
    ("pushes the P95").  Rate/max/min run gates are failed by any failing turn.
    """
    out: list[GateVerdict] = []
    for g in gates:
        if not g.applies_to(turn.p_level):
            continue
        v = _num(turn.metric(g.metric))
        status, thr = g.judge(v)
        if g.scope == "run" and status == "FAIL" and g.aggregate in ("p95", "p50", "mean", "sum"):
            status = "WARN"
        if v is not None:
            msg = f"{g.metric} = {v!r} {'meets' if status == 'PASS' else 'violates'} {g.op} {thr}"
            detail = _detail(turn, g.name)
            if detail:
                msg += f" ({detail})"
        elif g.metric in turn.expected and turn.p_level in UNMEASURED_FAILS:
            # unmeasured is not green: the turn should have measured it (issue 18 item 7)
            status = "FAIL"
            msg = f"not measured: {turn.expected[g.metric] or 'no value'}"
        else:
            msg = f"{g.metric} not measured"
        out.append(GateVerdict(gate=g.name, status=status, measured=v, threshold=thr, op=g.op, scope="turn",
                               metric=g.metric, case_id=turn.case_id, trace_id=turn.trace_id,
                               turn_index=turn.turn_index, warn_threshold=g.warn, n=1, message=msg))
    return out


UNMEASURED_FAILS = ("P0",)
"""Priority levels on which a gate whose metric the turn should have measured (``TurnResult.expected``)
but did not is FAIL "not measured: <reason>" (issue 18 item 7); elsewhere it stays SKIP."""


def _detail(turn: TurnResult, gate: str) -> str:
    """What a violated gate is about, in words (ratio, missing keywords, where it arose)."""
    parts: list[str] = []
    if gate == "speed" and turn.fingerprints.speed_ratio is not None:
        r = turn.fingerprints.speed_ratio
        parts.append(f"speed/pitch change: plays x{r:.4f} ({'faster/higher' if r > 1 else 'slower/lower'})")
    elif gate == "hf_loss" and turn.fingerprints.hf_ratio_drop is not None:
        parts.append(f"HF loss: 4-8 kHz share down {turn.fingerprints.hf_ratio_drop:.0%} vs the agent's copy")
    elif gate == "keywords" and turn.content.missing_keywords:
        parts.append(f"missing keywords: {', '.join(turn.content.missing_keywords)}")
    elif gate == "talk_over" and turn.latency.premature:
        parts.append("premature reply: talk-over, left out of the latency distribution")
    elif gate == "max_gap" and turn.continuity.agent_gaps:
        parts.append(f"{len(turn.continuity.agent_gaps)} silence(s) already in the agent's own copy")
    if gate in turn.origin:
        o = turn.origin[gate]
        parts.append(ORIGIN_TEXT.get(o, o))
    return "; ".join(parts)


def judge_turn(turn: TurnResult, gates: GateSet, *, failed: bool = False) -> TurnResult:
    """Set ``turn.verdicts`` and ``turn.verdict`` (worst of them) and return the turn.

    ``failed``: the turn's artifacts could not be read (e.g. no ``trace.json``); the turn
    is FAIL whatever its gates say.
    """
    turn.verdicts = evaluate_turn(turn, gates)
    turn.verdict = worst([v.status for v in turn.verdicts] + (["FAIL"] if failed else []))
    return turn


def judge_case(case: CaseResult) -> Status:
    """Worst verdict of a case's turns (FAIL if the case errored or has no turn)."""
    if case.error or not case.turns:
        return "FAIL"
    return worst([t.verdict for t in case.turns])


# ----------------------------------------------------------------------------------- run


def _aggregate(values: list[float], how: str) -> float:
    a = np.asarray(values, dtype=np.float64)
    return float({"p95": lambda: np.percentile(a, 95), "p50": lambda: np.percentile(a, 50), "max": a.max,
                  "min": a.min, "mean": a.mean, "rate": a.mean, "sum": a.sum}[how]())


def _judge_group(g: GateSpec, rows: list[tuple[TurnResult, float]], extra: list[float]):
    """``(status, measured, threshold, worst turn, label, n)`` of one gate over turns judged by the same spec."""
    vals = [v for _, v in rows] + extra
    worst_t = None
    if rows:
        # the worst turn is the one furthest on the failing side
        key = (lambda r: r[1]) if g.op in ("<=", "<") else (lambda r: -r[1]) if g.op in (">=", ">") \
            else (lambda r: abs(r[1] - (g.threshold or 0.0)))
        worst_t = max(rows, key=key)[0]
    if g.scope == "run":
        measured = _aggregate(vals, g.aggregate)
        status, thr = g.judge(measured)
        label = f"{g.aggregate}({g.metric}) over {len(vals)}"
    else:
        statuses = [g.judge(v)[0] for v in vals]
        status = worst(statuses)
        measured = _num(worst_t.metric(g.metric)) if worst_t else max(vals)
        thr = g.threshold
        nbad = sum(1 for s in statuses if s in ("FAIL", "WARN"))
        label = f"worst {g.metric}; {nbad}/{len(vals)} turns violate"
    return status, measured, thr, worst_t, label, len(vals)


def evaluate_run(cases: Iterable[CaseResult], gates: GateSet | RunGates, *,
                 extra_values: Mapping[str, list[float]] | None = None) -> list[GateVerdict]:
    """Run-level verdicts: run gates on their aggregate, turn gates as the worst turn.

    With :class:`RunGates`, each turn is judged by its case's gates: turns whose case
    changed a gate are aggregated and judged apart, by their own threshold (a case that
    allows a 900 ms first reply does not push the run's P95 over 650 ms, and its own
    turns must still meet 900 ms).  The verdict is the worst of the groups; measured and
    threshold are those of the run's own gate (the group of turns without an override),
    the message names the overriding cases and their outcome.

    ``extra_values`` adds values measured outside turn folders, by metric path (e.g.
    ``{"latency.user_kpi_ms": [...]}`` from the browser harness), judged by the run's gate.
    Each verdict names the case/turn with the worst value.
    """
    rg = gates if isinstance(gates, RunGates) else RunGates(gates)
    cases = list(cases)
    out: list[GateVerdict] = []
    for base in rg.base:
        groups: dict[GateSpec, list[tuple[TurnResult, float]]] = {}
        owners: dict[GateSpec, list[str]] = {}
        expected_n = 0
        unmeasured: list[str] = []
        for c in cases:
            spec = rg.of(c.case_id).get(base.name)
            for t in c.turns:
                if not spec.applies_to(t.p_level):
                    continue
                v = _num(t.metric(spec.metric))
                if spec.metric in t.expected:
                    expected_n += 1
                    if v is None and t.p_level in UNMEASURED_FAILS:
                        unmeasured.append(f"{t.case_id}/{t.trace_id}: {t.expected[spec.metric] or 'no value'}")
                if v is not None:
                    groups.setdefault(spec, []).append((t, v))
                    if spec != base and c.case_id not in owners.setdefault(spec, []):
                        owners[spec].append(c.case_id)
        extra = [float(x) for x in (extra_values or {}).get(base.metric, []) if x is not None] if base.enabled else []
        if extra:
            groups.setdefault(base, [])
        miss = (f"; not measured on {len(unmeasured)} P0 turn(s): " + "; ".join(unmeasured[:3])
                + (" ..." if len(unmeasured) > 3 else "")) if unmeasured else ""
        if not groups:
            if base.enabled:
                out.append(GateVerdict(gate=base.name, status="FAIL" if unmeasured else "SKIP", measured=None,
                                       threshold=base.threshold, op=base.op, scope="run", metric=base.metric,
                                       warn_threshold=base.warn, n=0, expected_n=expected_n,
                                       message=f"no turn measured {base.metric}{miss}"))
            continue
        judged = {spec: _judge_group(spec, rows, extra if spec == base else []) for spec, rows in groups.items()}
        main = base if base in judged else max(judged, key=lambda s: {"SKIP": 0, "PASS": 1, "WARN": 2, "FAIL": 3}[judged[s][0]])
        status, measured, thr, worst_t, label, n = judged[main]
        others = [(s, j) for s, j in judged.items() if s is not main]
        for spec, (st, m, th, _, _, k) in others:
            label += (f"; {', '.join(owners.get(spec, []))} judged by their override {spec.op} {th}: "
                      f"{st} ({m:.4g} over {k})")
        status = worst([status] + [j[0] for _, j in others] + (["FAIL"] if unmeasured else []))
        label += miss
        if base.name == "eot_to_first_audio":
            prem = sum(1 for c in cases for t in c.turns if t.latency.premature)
            if prem:
                label += f"; {prem} premature (talk-over) turn(s) left out of the distribution"
        out.append(GateVerdict(gate=base.name, status=status, measured=measured, threshold=thr, op=main.op, expected_n=expected_n,
                               scope="run", metric=base.metric, case_id=worst_t.case_id if worst_t else None,
                               trace_id=worst_t.trace_id if worst_t else None,
                               turn_index=worst_t.turn_index if worst_t else None, warn_threshold=main.warn,
                               n=sum(j[5] for j in judged.values()), message=label))
    return out


def judge_run(run_id: str, cases: list[CaseResult], gates: GateSet | RunGates, *, suite: str = "",
              started_at: str | None = None, ended_at: str | None = None,
              extra_values: Mapping[str, list[float]] | None = None,
              result_paths: Mapping[str, str] | None = None) -> RunSummary:
    """The ``summary.json`` content: case entries, run gate verdicts, overall verdict, and the
    gates that applied (``gate_specs``, ``gate_sources``, ``case_gates``) for the report.

    The run verdict is the worst of the run-gate verdicts and the case verdicts (a case
    WARN stays WARN); a case's verdict (also its JUnit verdict) is :func:`judge_case`.
    ``result_paths`` maps case_id -> result.json path relative to the run dir (default
    ``<case_id>/result.json``).
    """
    rg = gates if isinstance(gates, RunGates) else RunGates(gates)
    run_gates = evaluate_run(cases, rg, extra_values=extra_values)
    entries = [CaseEntry(case_id=c.case_id, verdict=judge_case(c), p_level=c.p_level, turns=len(c.turns),
                         result=(result_paths or {}).get(c.case_id, f"{c.case_id}/result.json"), error=c.error,
                         cause=c.cause, flaky=c.flaky)
               for c in cases]
    verdict = worst([v.status for v in run_gates] + [e.verdict for e in entries])
    return RunSummary(run_id=run_id, suite=suite, verdict=verdict, started_at=started_at, ended_at=ended_at,
                      cases=entries, gates=run_gates, gate_specs=[g.info() for g in rg.base],
                      gate_sources=list(rg.base.sources),
                      case_gates={cid: [g.info() for g in specs] for cid, specs in rg.overridden().items()})


# ------------------------------------------------------------------------- flat figures


def judge_values(values: Mapping[str, Any], gates: GateSet, *,
                 skip: Mapping[str, str] | None = None) -> list[GateVerdict]:
    """Verdicts of gates whose metric is a key of ``values`` (figures already aggregated,
    e.g. the TTS bench's summary); ``None``/NaN or a missing key is SKIP.

    ``skip`` maps gate name -> reason to report SKIP without judging (e.g. fidelity
    gates right after gold was regenerated).
    """
    out: list[GateVerdict] = []
    for g in gates:
        if not g.enabled:
            continue
        v = _num(values.get(g.metric))
        if skip and g.name in skip:
            status, thr, msg = "SKIP", g.threshold, skip[g.name]
        else:
            status, thr = g.judge(v)
            msg = "" if v is not None else f"{g.metric} not measured"
        out.append(GateVerdict(gate=g.name, status=status, measured=v, threshold=thr, op=g.op, scope="run",
                               metric=g.metric, warn_threshold=g.warn, n=1, message=msg))
    return out

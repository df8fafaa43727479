"""The bench table as Markdown (terminal, report section, docs) and as ``faultbench.json``."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from autortc.faultbench.plan import BenchPlan
from autortc.faultbench.score import BenchScore, FaultRow
from autortc.metrics.receivers import ReceiverAgreement, summary_line

SCHEMA_VERSION = 1


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "–"
    if unit == "ratio":
        return f"{v:.4g}"
    return f"{v:.0f}" if abs(v) >= 10 else f"{v:.3g}"


def _pairs(row: FaultRow) -> str:
    planted = [v["planted"] for v in row.values if v["planted"] is not None]
    measured = [v["measured"] for v in row.values if v["measured"] is not None]
    if not planted and not measured:
        return "–"
    p = _fmt(statistics.median(planted), row.unit) if planted else "–"
    m = _fmt(statistics.median(measured), row.unit) if measured else "not measured"
    return f"{p} → {m}"


def to_markdown(score: BenchScore, *, plan: BenchPlan | None = None, title: str = "Fault bench",
                receivers: ReceiverAgreement | dict[str, Any] | None = None) -> str:
    """One table row per fault, then false alarms per gate, delay recovery, the two receivers
    (``--via browser``) and the verdict."""
    lines = [f"## {title}", ""]
    if plan is not None:
        lines += [f"seed `{plan.seed}`, K = {plan.k} per fault, {plan.clean} clean turns, "
                  f"{plan.delay_pairs} delay pairs, cases: {', '.join(plan.cases)}", ""]
    lines += [
        "| fault | where | must flag (level) | caught | recall | 95 % Wilson | planted → measured (median) | not planted / harness |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in score.rows:
        if not r.scored:
            continue
        ci = f"{r.wilson95[0]:.2f}–{r.wilson95[1]:.2f}" if r.wilson95 else "–"
        rec = f"{r.recall:.2f}" if r.recall is not None else "–"
        mark = "" if r.passed else " ✗"
        lines.append(f"| {r.name}{mark} | {r.side} | {' or '.join(r.gates)} ({r.level}) | {r.caught}/{r.planted} | {rec} "
                     f"| {ci} | {_pairs(r)} | {r.not_planted} / {r.harness_errors} |")
    why = [(r.name, k, n) for r in score.rows if r.scored for k, n in sorted(r.not_planted_why.items())]
    if why:
        # turns the agent's truth (checked against what it published) says never got the fault: shown, not hidden
        lines += ["", "Not planted (the fault did not reach the user; not scored): "
                  + "; ".join(f"{name} {n}× {k}" for name, k, n in why)]
    lines += ["", f"False alarms on {score.clean_turns} clean turns (WARN or FAIL of any gate): "
              f"**{score.false_alarm_total}**" + (f" ({score.clean_harness_errors} clean turns not run)" if score.clean_harness_errors else "")]
    if score.false_alarms:
        lines += ["", "| gate | WARN | FAIL |", "|---|---|---|"]
        for g, c in sorted(score.false_alarms.items()):
            lines.append(f"| {g} | {c['WARN']} | {c['FAIL']} |")
    for d, what in ((score.delay, "EoT → first audio"), (score.delay_downlink, "downlink part")):
        if d is None:
            continue
        lines.append("")
        if d.median_ms is None:
            lines.append(f"Delay recovery ({what}): no complete pair (planted difference {d.planted_diff_ms:.0f} ms).")
        else:
            ci = f"{d.ci95_ms[0]:.1f} … {d.ci95_ms[1]:.1f}" if d.ci95_ms else "–"
            lines.append(f"Delay recovery ({what}): planted {d.planted_diff_ms:.0f} ms, measured median {d.median_ms:.1f} ms "
                         f"(95 % bootstrap {ci} ms, {d.pairs} pairs), error {d.error_ms:+.1f} ms.")
        if d.left_out:
            lines[-1] += (f" Left out: {d.incomplete_pairs} pair(s) without both sides; turns: "
                          + "; ".join(f"{n}× {k}" for k, n in sorted(d.left_out.items())) + ".")
    if receivers is not None:
        lines += ["", summary_line(receivers)]
    lines += ["", f"Exit rule: recall ≥ {score.min_recall} for every fault, false alarms ≤ {score.max_false_alarms}: "
              + ("**PASS**" if score.passed else "**FAIL** — " + "; ".join(score.reasons))]
    return "\n".join(lines) + "\n"


def to_json(score: BenchScore, *, plan: BenchPlan | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """``faultbench.json``: the score (rows with per-turn planted/measured), the plan and ``extra`` (command, commit...)."""
    out: dict[str, Any] = {"v": SCHEMA_VERSION, "score": score.to_dict()}
    if plan is not None:
        out["plan"] = {
            "seed": plan.seed, "k": plan.k, "clean": plan.clean, "delay_pairs": plan.delay_pairs, "cases": list(plan.cases),
            "items": [{"index": i.index, "case_id": i.case_id, "fault": i.fault, "spec": i.spec, "repeat": i.repeat,
                       "pair": i.pair} for i in plan.items],
        }
    if extra:
        out.update(extra)
    return out


def write(run_dir: Path | str, score: BenchScore, *, plan: BenchPlan | None = None,
          extra: dict[str, Any] | None = None,
          receivers: ReceiverAgreement | dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``faultbench.json`` and ``faultbench.md`` into ``run_dir``; returns both paths."""
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    j, m = d / "faultbench.json", d / "faultbench.md"
    j.write_text(json.dumps(to_json(score, plan=plan, extra=extra), indent=2, allow_nan=False) + "\n")
    m.write_text(to_markdown(score, plan=plan, receivers=receivers))
    return j, m

"""Planted-fault bench (issue 17): the catalogue, the seeded plan and the scoring.

``catalogue``: each fault, the gate(s) that must flag it and at which level, and why.
``plan``: ``make_plan(cases, seed=...)`` -> ``BenchPlan`` whose items carry the room metadata
the bundled agent's fault mode reads (``system/agent/faults.py``).
``score``: ``score(turns)`` over ``TurnOutcome`` records (fault truth + gate verdicts) ->
``BenchScore`` with recall and Wilson intervals, false alarms, delay recovery, the exit rule.
``render``: Markdown table and ``faultbench.json``.

Pure: no stack, no I/O but ``render.write``. The ``autortc faultbench`` command that runs the
plan through the runner is the next step (docs/faultbench.md).
"""

from autortc.faultbench.catalogue import CATALOGUE, FaultEntry, by_name, gate_coverage
from autortc.faultbench.plan import BenchCase, BenchItem, BenchPlan, PlanError, make_plan
from autortc.faultbench.score import BenchScore, ScoreInputError, TurnOutcome, Verdict, score, wilson

__all__ = [
    "CATALOGUE",
    "BenchCase",
    "BenchItem",
    "BenchPlan",
    "BenchScore",
    "FaultEntry",
    "PlanError",
    "ScoreInputError",
    "TurnOutcome",
    "Verdict",
    "by_name",
    "gate_coverage",
    "make_plan",
    "score",
    "wilson",
]

"""Gates: the one stage that decides verdicts (thresholds in ``defaults.toml``,
overridable by a ``--gates`` file, per suite and per case).

    rg = RunGates.load(gates_path, suite_table=suite.gates)      # defaults -> file -> suite
    judge_turn(turn, rg.for_case(case.id, case.gates))           # turn verdicts
    summary = judge_run(run_id, cases, rg, suite="fast")         # run gates, case + JUnit verdicts

:mod:`.spec` holds what a gate is and how layers override it; :mod:`.judge` every
verdict.  Verdicts carry the measured value, the threshold and the case/turn they are about.
"""

from __future__ import annotations

from autortc.gates.judge import (RunGates, evaluate_run, evaluate_turn, judge_case, judge_run, judge_turn,
                                 judge_values)
from autortc.gates.spec import DEFAULTS_PATH, GateConfigError, GateSet, GateSpec, load_gates

__all__ = ["GateSpec", "GateSet", "GateConfigError", "RunGates", "load_gates", "judge_turn", "judge_case",
           "judge_run", "judge_values", "evaluate_turn", "evaluate_run", "build_run_summary", "case_verdict",
           "DEFAULTS_PATH"]

# The names the runner used before the gates stage owned every verdict (kept until the merge).
case_verdict = judge_case
build_run_summary = judge_run

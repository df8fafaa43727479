"""``autortc run --repeat N --baseline NAME``: the same cases N times, flake rates, a baseline comparison.

Each repeat is an ordinary run with its own folder (``<run_id>-r1`` .. ``-rN``; one repeat keeps
``<run_id>``), so ``autortc baseline save`` can pool them later.  The last repeat's summary (and so
its report and console) carries what is about all of them, through the runner's ``summarize`` hook:

* ``summary.extra["repeat"]`` = ``{"n", "runs": [run ids], "flake": [FlakeRate as dict]}``
  (:func:`autortc.baseline.flake_rates` over every repeat's verdicts), when N > 1;
* ``summary.extra["baseline"]`` = ``{"name", "runs": [...], "rows": [MetricDelta as dict],
  "regression": bool}``: every repeat's turns pooled against the baseline
  (:func:`autortc.baseline.compare`).

Exit code: the worst repeat's (2 harness > 1 gate fail > 0), and 1 when a metric regressed
significantly (interval excludes 0 on the bad side and the shift is at least the minimum effect)
— never for a non-significant delta.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from autortc.baseline import (Baseline, Effect, TurnValue, compare, flake_rates, has_regression, summary_values,
                              verdicts_by_case)
from autortc.results import RunSummary

__all__ = ["RepeatOutcome", "repeat_extra", "repeat_run_ids", "run_repeated", "combine_exit_codes"]


def repeat_run_ids(base: str, n: int) -> list[str]:
    """``[base]`` for one run, else ``[base-r1, ..., base-rN]``."""
    if n < 1:
        raise ValueError(f"--repeat {n}: expected at least 1")
    return [base] if n == 1 else [f"{base}-r{i}" for i in range(1, n + 1)]


def repeat_extra(summary: RunSummary, run_dir: Path, earlier: Sequence[tuple[RunSummary, Path]], *, n: int,
                 baseline: Baseline | None, effects: Sequence[Effect] | None = None) -> dict[str, Any]:
    """``summary.extra`` additions for the last repeat (see the module doc).

    Args:
        summary: the last repeat's final summary (in memory; its cases' ``result.json`` are on disk).
        run_dir: that repeat's folder.
        earlier: the earlier repeats' ``(summary, run folder)``.
        n: repeats asked for.
        baseline: the baseline to compare with (``None``: no comparison).
        effects: minimum effects (default ``autortc/baseline_effects.toml``).
    """
    extra: dict[str, Any] = {}
    runs = [*earlier, (summary, run_dir)]
    if n > 1:
        extra["repeat"] = {"n": n, "runs": [s.run_id for s, _ in runs],
                           "flake": [dataclasses.asdict(f) for f in flake_rates(verdicts_by_case([s for s, _ in runs]))]}
    if baseline is not None:
        pooled: dict[str, list[TurnValue]] = {}
        for s, d in runs:
            for metric, vals in summary_values(s, d).items():
                pooled.setdefault(metric, []).extend(vals)
        rows = compare(baseline, pooled, effects)
        extra["baseline"] = {"name": baseline.name, "runs": [s.run_id for s, _ in runs],
                             "baseline_runs": [r.run_id for r in baseline.runs],
                             "rows": [dataclasses.asdict(r) for r in rows], "regression": has_regression(rows)}
    return extra


def combine_exit_codes(codes: Sequence[int], regression: bool) -> int:
    """Worst repeat's code (2 > 1 > 0); a significant regression makes a passing run exit 1."""
    code = 2 if 2 in codes else max(codes, default=0)
    return max(code, 1) if regression else code


@dataclasses.dataclass
class RepeatOutcome:
    outcomes: list[Any]  # RunOutcome per repeat
    exit_code: int
    extra: dict[str, Any]  # the last summary's "repeat" / "baseline" entries


async def run_repeated(opts: Any, n: int, *, baseline: Baseline | None, effects: Sequence[Effect] | None = None,
                       run: Callable[[Any], Awaitable[Any]] | None = None,
                       on_repeat: Callable[[int, Any], None] | None = None) -> RepeatOutcome:
    """Run ``opts`` (:class:`autortc.runner.suite.RunOptions`) ``n`` times, one run folder each.

    ``run`` is the coroutine that runs one repeat (default :func:`autortc.runner.suite.run_suite`;
    ``--profile`` passes its own).  ``on_repeat(i, outcome)`` is called after each repeat but the
    last (the console prints its closing line).  A Ctrl-C stops after the repeat it interrupts.
    """
    from autortc.runner.paths import new_run_id
    from autortc.runner.suite import run_suite

    run = run or run_suite
    ids = repeat_run_ids(opts.run_id or new_run_id(), n)
    earlier: list[tuple[RunSummary, Path]] = []
    outcomes = []
    holder: dict[str, Any] = {}
    for i, rid in enumerate(ids):
        last = i == len(ids) - 1
        run_dir = opts.out_root / rid

        def summarize(summary: RunSummary, run_dir=run_dir) -> dict[str, Any]:
            holder["extra"] = repeat_extra(summary, run_dir, earlier, n=n, baseline=baseline, effects=effects)
            return holder["extra"]

        label = opts.suite if n == 1 else f"{opts.suite} {i + 1}/{n}"
        o = await run(dataclasses.replace(opts, run_id=rid, summarize=summarize if last else None,
                                          label=label))
        outcomes.append(o)
        earlier.append((o.summary, o.run_dir))
        if o.cut:  # interrupted: do not start the next repeat
            break
        if not last and on_repeat is not None:
            on_repeat(i, o)
    extra = holder.get("extra", {})
    regression = bool(extra.get("baseline", {}).get("regression"))
    return RepeatOutcome(outcomes, combine_exit_codes([o.exit_code for o in outcomes], regression), extra)

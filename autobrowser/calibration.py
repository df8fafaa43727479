"""Calibration of the browser's USER_KPI against the probe's EoT → first audio (pure).

Inputs are per-run pairs for each case (same case run through both paths, ``repeat`` times):
``browser_ms`` (USER_KPI raw from browser_trace.json) and ``probe_ms`` (the probe bot's
EoT → first audio from the bots' result.json). Output: per case the mean of each path, their
difference's mean and spread, and each path's repeatability (sample stdev across runs);
overall, the difference's mean / stdev / median / P95 of |diff|. ``ground_truth_error``
states a measurement's error against a known delay (goal in issue 6: median ≤ 2 ms, P95 ≤ 5 ms).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CalibrationRun:
    case_id: str
    run_index: int
    browser_ms: float | None
    probe_ms: float | None


@dataclass(frozen=True)
class CaseCalibration:
    case_id: str
    runs: int  # runs where both paths measured
    browser_mean_ms: float | None
    browser_stdev_ms: float | None  # repeatability across runs
    probe_mean_ms: float | None
    probe_stdev_ms: float | None
    diff_mean_ms: float | None  # browser - probe
    diff_min_ms: float | None
    diff_max_ms: float | None


@dataclass(frozen=True)
class ErrorSummary:
    n: int
    mean_ms: float | None
    stdev_ms: float | None
    median_abs_ms: float | None
    p95_abs_ms: float | None


def _stdev(x: list[float]) -> float | None:
    return statistics.stdev(x) if len(x) >= 2 else None


def _mean(x: list[float]) -> float | None:
    return statistics.fmean(x) if x else None


def error_summary(errors_ms: list[float]) -> ErrorSummary:
    if not errors_ms:
        return ErrorSummary(0, None, None, None, None)
    a = np.abs(np.asarray(errors_ms, dtype=np.float64))
    return ErrorSummary(
        n=len(errors_ms),
        mean_ms=statistics.fmean(errors_ms),
        stdev_ms=_stdev(errors_ms),
        median_abs_ms=float(np.median(a)),
        p95_abs_ms=float(np.percentile(a, 95)),
    )


def calibrate(runs: list[CalibrationRun]) -> tuple[list[CaseCalibration], ErrorSummary]:
    """Per-case table (sorted by case id) and the overall browser − probe difference."""
    by_case: dict[str, list[CalibrationRun]] = defaultdict(list)
    for r in runs:
        by_case[r.case_id].append(r)
    table, all_diffs = [], []
    for case_id in sorted(by_case):
        rs = by_case[case_id]
        b = [r.browser_ms for r in rs if r.browser_ms is not None]
        p = [r.probe_ms for r in rs if r.probe_ms is not None]
        d = [r.browser_ms - r.probe_ms for r in rs if r.browser_ms is not None and r.probe_ms is not None]
        all_diffs += d
        table.append(
            CaseCalibration(
                case_id=case_id, runs=len(d), browser_mean_ms=_mean(b), browser_stdev_ms=_stdev(b),
                probe_mean_ms=_mean(p), probe_stdev_ms=_stdev(p), diff_mean_ms=_mean(d),
                diff_min_ms=min(d) if d else None, diff_max_ms=max(d) if d else None,
            )
        )
    return table, error_summary(all_diffs)


def ground_truth_error(measured_ms: list[float], true_ms: list[float]) -> ErrorSummary:
    """Error of ``measured_ms`` against known ``true_ms`` (same length, paired)."""
    if len(measured_ms) != len(true_ms):
        raise ValueError(f"measured ({len(measured_ms)}) and true ({len(true_ms)}) must pair up")
    return error_summary([m - t for m, t in zip(measured_ms, true_ms)])


def _f(x: float | None, nd: int = 1) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def calibration_markdown(table: list[CaseCalibration], overall: ErrorSummary, *, command: str,
                         ground_truth: ErrorSummary | None = None) -> str:
    """``calibration_report.md``: the table, the overall difference, the ground-truth error."""
    lines = [
        "# Calibration: browser USER_KPI vs probe EoT → first audio", "",
        f"Produced by `{command}`.", "",
        "| case | runs | browser mean (ms) | browser σ | probe mean (ms) | probe σ | diff mean (ms) | diff min | diff max |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in table:
        lines.append(
            f"| {c.case_id} | {c.runs} | {_f(c.browser_mean_ms)} | {_f(c.browser_stdev_ms)} | {_f(c.probe_mean_ms)} | "
            f"{_f(c.probe_stdev_ms)} | {_f(c.diff_mean_ms)} | {_f(c.diff_min_ms)} | {_f(c.diff_max_ms)} |"
        )
    lines += [
        "", f"Overall browser − probe over {overall.n} paired runs: mean {_f(overall.mean_ms)} ms, "
        f"σ {_f(overall.stdev_ms)} ms, median |diff| {_f(overall.median_abs_ms)} ms, P95 |diff| {_f(overall.p95_abs_ms)} ms.",
    ]
    if ground_truth is not None:
        lines += [
            "", f"Ground truth (known delay), {ground_truth.n} turns: median |error| {_f(ground_truth.median_abs_ms, 2)} ms, "
            f"P95 |error| {_f(ground_truth.p95_abs_ms, 2)} ms (goal: median ≤ 2 ms, P95 ≤ 5 ms).",
        ]
    return "\n".join(lines) + "\n"

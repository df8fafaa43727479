"""Baselines: what a metric looked like in earlier runs, and whether a run moved it for real.

A *baseline* is every turn's value of every numeric metric of one or more runs, stored as
``output/baselines/<name>.json`` (:class:`Baseline`; written atomically).  A run is compared
with it metric by metric (:func:`compare`), using the effects of ``baseline_effects.toml``
(:func:`load_effects`): each says which direction is worse and the smallest shift that matters.

Statistic and interval.  For each metric we compare the **difference of medians**
``median(run) - median(baseline)`` with a 95 % two-sample **percentile bootstrap**
(``scipy.stats.bootstrap``, each sample resampled on its own, 9 999 resamples, seeded):

* median, not mean: turn metrics are skewed with rare stalls (one 3 s EoT turn moves the mean
  of 16 turns by 100 ms; the median does not move), and the issue's effects are P50 shifts;
* median, not P95: a run has 16-48 turns, so its P95 is one or two turns; the bootstrap
  distribution of such an extreme quantile is lumpy and its interval under-covers.  Tails are
  the gates' job (P95 thresholds), shifts of the bulk are the baseline's;
* percentile, not BCa (scipy's default): BCa's acceleration comes from the jackknife, which
  for the median of a small sample with ties is degenerate (scipy warns and returns NaN).

A metric is a ``REGRESSION`` only when the interval excludes zero on the bad side **and** the
point estimate is at least ``min_effect`` in the bad direction; ``IMPROVED`` is the mirror;
``UNCHANGED`` otherwise (``reason`` says which condition failed); ``NO_DATA`` when either side
has fewer than :data:`MIN_SAMPLES` values.

Flake: :func:`flake_rates` takes each case's verdicts over repeated runs (``--repeat N``) and
returns the share of runs that disagree with the case's usual outcome, with a Wilson interval.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autortc.results import CaseResult, ResultFileError, RunSummary, TurnResult, read_json, write_json

__all__ = [
    "BASELINE_VERSION",
    "DEFAULT_EFFECTS",
    "MIN_SAMPLES",
    "Baseline",
    "BaselineError",
    "Effect",
    "FlakeRate",
    "MetricDelta",
    "TurnValue",
    "baseline_path",
    "compare",
    "compare_values",
    "delta_table",
    "has_regression",
    "compare_run",
    "flake_rates",
    "flake_table",
    "summary_values",
    "list_baselines",
    "load_baseline",
    "load_effects",
    "read_run_values",
    "save_baseline",
    "verdicts_by_case",
]

BASELINE_VERSION = 1
DEFAULT_EFFECTS = Path(__file__).with_name("baseline_effects.toml")
DEFAULT_BASELINES = Path("output/baselines")
MIN_SAMPLES = 5
"""Fewest values per side for a comparison: below it a bootstrap interval of a median is
mostly the sample itself (with 4 values the median takes at most ~6 distinct resampled values)."""
CONFIDENCE = 0.95
N_RESAMPLES = 9999

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class BaselineError(ValueError):
    """A baseline, effects file or run that cannot be used; the message names the file and field."""


# --------------------------------------------------------------------------- stored baseline


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TurnValue(_Strict):
    """One turn's value of one metric."""

    case_id: str
    trace_id: str
    turn_index: int = 0
    run_id: str
    value: float


class BaselineRun(_Strict):
    run_id: str
    path: str
    suite: str = ""
    verdict: str = ""
    turns: int = 0


class Baseline(_Strict):
    """``output/baselines/<name>.json``: metric path -> the turns' values, and where they came from."""

    v: Literal[1] = BASELINE_VERSION
    name: str
    created_at: str
    runs: list[BaselineRun] = Field(min_length=1)
    metrics: dict[str, list[TurnValue]]

    def values(self, metric: str) -> np.ndarray:
        """Values of ``metric`` over the baseline's turns, float64 ``(n,)`` (empty when never measured)."""
        return np.array([tv.value for tv in self.metrics.get(metric, [])], dtype=np.float64)


def _numeric_leaves(d: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, float]]:
    for k, v in d.items():
        path = f"{prefix}{k}"
        if isinstance(v, Mapping):
            yield from _numeric_leaves(v, path + ".")
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            yield path, float(v)


_SKIP_LEAVES = {"v", "turn_index", "latency.first_audio_t"}  # ids and host clocks are not metrics


def turn_values(turn: TurnResult) -> dict[str, float]:
    """Every numeric scalar metric of a turn by dotted path (lists, strings, bools and ``None`` left out)."""
    # dataclasses.asdict: only numeric leaves are wanted, no JSON conversion.
    return {p: v for p, v in _numeric_leaves(dataclasses.asdict(turn)) if p not in _SKIP_LEAVES}


def read_run_values(run_dir: Path | str) -> tuple[RunSummary, dict[str, list[TurnValue]]]:
    """A run's summary and, per metric path, the value of each of its turns.

    Reads ``summary.json`` and each case's ``result.json`` through :mod:`autortc.results`.

    Raises:
        BaselineError: the folder has no readable summary or a case result is unreadable.
    """
    run = Path(run_dir)
    try:
        summary = read_json(run / "summary.json", RunSummary)
    except ResultFileError as exc:
        raise BaselineError(f"{run}: not a run folder ({exc})") from exc
    return summary, summary_values(summary, run)


def summary_values(summary: RunSummary, run_dir: Path | str) -> dict[str, list[TurnValue]]:
    """Per metric path, the value of each turn of the cases ``summary`` lists (their ``result.json``
    under ``run_dir``); what :func:`read_run_values` returns for a summary already in memory
    (the runner's ``--baseline`` hook, before the final ``summary.json`` is written).

    Raises:
        BaselineError: a case result is unreadable.
    """
    run = Path(run_dir)
    values: dict[str, list[TurnValue]] = {}
    for entry in summary.cases:
        path = run / (entry.result or f"{entry.case_id}/result.json")
        if not path.exists() and entry.error:
            continue  # a case the harness never finished has no turns
        try:
            case = read_json(path, CaseResult)
        except ResultFileError as exc:
            raise BaselineError(str(exc)) from exc
        for t in case.turns:
            for metric, v in turn_values(t).items():
                values.setdefault(metric, []).append(
                    TurnValue(case_id=t.case_id, trace_id=t.trace_id, turn_index=t.turn_index, run_id=summary.run_id,
                              value=v))
    return values


def baseline_path(name: str, root: Path | str = DEFAULT_BASELINES) -> Path:
    if not _NAME_RE.match(name) or ".." in name:
        raise BaselineError(f"baseline name {name!r}: expected 1-64 characters from A-Z a-z 0-9 _ . - "
                            "starting with a letter or digit")
    return Path(root) / f"{name}.json"


def save_baseline(runs: Sequence[Path | str], name: str, *, root: Path | str = DEFAULT_BASELINES,
                  now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> tuple[Path, Baseline]:
    """Pool the turns of ``runs`` into baseline ``name``; returns its path and content.

    Several runs (e.g. the N repeats of ``--repeat N``) make a wider, truer baseline than one.
    """
    if not runs:
        raise BaselineError("baseline save: give at least one run folder")
    path = baseline_path(name, root)
    metrics: dict[str, list[TurnValue]] = {}
    meta: list[BaselineRun] = []
    for r in runs:
        summary, values = read_run_values(r)
        n_turns = len({(tv.case_id, tv.trace_id) for vs in values.values() for tv in vs})
        meta.append(BaselineRun(run_id=summary.run_id, path=str(r), suite=summary.suite, verdict=summary.verdict,
                                turns=n_turns))
        for metric, vs in values.items():
            metrics.setdefault(metric, []).extend(vs)
    if not metrics:
        raise BaselineError(f"baseline {name!r}: the run(s) {[str(r) for r in runs]} have no measured turn")
    base = Baseline(name=name, created_at=now().isoformat(timespec="seconds"), runs=meta, metrics=metrics)
    write_json(path, base.model_dump(mode="json"))
    return path, base


def load_baseline(name_or_path: str | Path, *, root: Path | str = DEFAULT_BASELINES) -> Baseline:
    """A baseline by name (under ``root``) or by path to its JSON file."""
    p = Path(name_or_path)
    if p.suffix != ".json":
        p = baseline_path(str(name_or_path), root)
    try:
        return Baseline.model_validate_json(p.read_bytes())
    except FileNotFoundError:
        known = ", ".join(b.stem for b in list_baselines(root)) or "none saved yet"
        raise BaselineError(f"{p}: no such baseline (known: {known}; save one with `autortc baseline save RUN`)") from None
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()[:6])
        raise BaselineError(f"{p}: not a valid baseline file ({errs})") from None


def list_baselines(root: Path | str = DEFAULT_BASELINES) -> list[Path]:
    return sorted(Path(root).glob("*.json"))


# --------------------------------------------------------------------------- effects


class Effect(_Strict):
    """One compared metric (an entry of ``baseline_effects.toml``)."""

    key: str
    metric: str = Field(min_length=1)
    statistic: Literal["median", "mean", "p90", "p95"] = "median"
    worse: Literal["higher", "lower"]
    min_effect: float = Field(gt=0)
    valid_min: float | None = None
    source: str = Field(min_length=1)

    @property
    def sign(self) -> int:
        """+1 when a higher value is worse, -1 when a lower one is."""
        return 1 if self.worse == "higher" else -1


def load_effects(path: Path | str | None = None) -> list[Effect]:
    """The effects of ``path`` (default :data:`DEFAULT_EFFECTS`), in file order.

    Raises:
        BaselineError: not TOML, no ``[effects.*]`` tables, or a bad field (named).
    """
    p = Path(path) if path is not None else DEFAULT_EFFECTS
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError(f"{p}: effects file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise BaselineError(f"{p}: not valid TOML ({exc})") from None
    tables = raw.get("effects")
    if not isinstance(tables, dict) or not tables:
        raise BaselineError(f"{p}: expected [effects.<name>] tables")
    out = []
    for key, table in tables.items():
        try:
            out.append(Effect.model_validate({"key": key, **table}))
        except ValidationError as exc:
            errs = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise BaselineError(f"{p}: effects.{key}: {errs}") from None
    return out


# --------------------------------------------------------------------------- comparison

Verdict = Literal["REGRESSION", "IMPROVED", "UNCHANGED", "NO_DATA"]


@dataclass
class MetricDelta:
    """One row of the delta table.  Values in the metric's unit; ``delta = run - baseline``;
    ``ci_low``/``ci_high``: 95 % bootstrap interval of ``delta``."""

    key: str
    metric: str
    statistic: str
    worse: str
    n_baseline: int
    n_run: int
    baseline: float | None
    run: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    min_effect: float
    verdict: Verdict
    reason: str
    source: str = ""


def _stat_fn(statistic: str) -> Callable[[np.ndarray, int], np.ndarray]:
    if statistic == "median":
        return lambda x, axis: np.median(x, axis=axis)
    if statistic == "mean":
        return lambda x, axis: np.mean(x, axis=axis)
    q = {"p90": 90.0, "p95": 95.0}[statistic]
    return lambda x, axis: np.percentile(x, q, axis=axis)


def compare_values(effect: Effect, base: np.ndarray, run: np.ndarray, *, seed: int = 0) -> MetricDelta:
    """Compare one metric's values (float arrays ``(n,)``) under ``effect``; see the module doc."""
    base = np.asarray(base, dtype=np.float64)
    run = np.asarray(run, dtype=np.float64)
    base, run = base[np.isfinite(base)], run[np.isfinite(run)]
    if effect.valid_min is not None:
        base, run = base[base >= effect.valid_min], run[run >= effect.valid_min]
    stat = _stat_fn(effect.statistic)
    row = MetricDelta(key=effect.key, metric=effect.metric, statistic=effect.statistic, worse=effect.worse,
                      n_baseline=int(base.size), n_run=int(run.size),
                      baseline=float(stat(base, -1)) if base.size else None,
                      run=float(stat(run, -1)) if run.size else None, delta=None, ci_low=None, ci_high=None,
                      min_effect=effect.min_effect, verdict="NO_DATA", reason="", source=effect.source)
    if base.size < MIN_SAMPLES or run.size < MIN_SAMPLES:
        row.reason = f"needs >= {MIN_SAMPLES} values on each side (baseline {base.size}, run {run.size})"
        return row
    from scipy.stats import bootstrap

    def diff(r: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return stat(r, axis) - stat(b, axis)

    row.delta = float(diff(run, base))
    if np.ptp(base) == 0 and np.ptp(run) == 0:  # no spread at all: the difference is exact
        row.ci_low = row.ci_high = row.delta
    else:
        res = bootstrap((run, base), diff, n_resamples=N_RESAMPLES, vectorized=True, paired=False, axis=-1,
                        confidence_level=CONFIDENCE, method="percentile", rng=np.random.default_rng(seed))
        row.ci_low, row.ci_high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    # Interval and shift in "worse" units (> 0 = worse), whichever direction is bad for this metric.
    lo, hi = sorted((effect.sign * row.ci_low, effect.sign * row.ci_high))
    bad_lo, good_lo = lo, -hi  # > 0: the interval excludes 0 on that side
    shift = effect.sign * row.delta
    if bad_lo > 0 and shift >= effect.min_effect:
        row.verdict, row.reason = "REGRESSION", "interval excludes 0 on the bad side and the shift >= min effect"
    elif good_lo > 0 and -shift >= effect.min_effect:
        row.verdict, row.reason = "IMPROVED", "interval excludes 0 on the good side and the shift >= min effect"
    elif bad_lo > 0 or good_lo > 0:
        row.verdict, row.reason = "UNCHANGED", "significant but smaller than the minimum effect"
    else:
        row.verdict, row.reason = "UNCHANGED", "interval includes 0 (within run-to-run noise)"
    return row


def compare(baseline: Baseline, run_values: Mapping[str, Sequence[TurnValue] | Sequence[float]],
            effects: Sequence[Effect] | None = None, *, seed: int = 0) -> list[MetricDelta]:
    """The delta table of a run against ``baseline``, one row per effect (file order)."""
    rows = []
    for eff in effects if effects is not None else load_effects():
        vals = run_values.get(eff.metric, [])
        run = np.array([v.value if isinstance(v, TurnValue) else float(v) for v in vals], dtype=np.float64)
        rows.append(compare_values(eff, baseline.values(eff.metric), run, seed=seed))
    return rows


def compare_run(run_dir: Path | str, baseline: Baseline, effects: Sequence[Effect] | None = None) -> list[MetricDelta]:
    """:func:`compare` on a run folder (read with :func:`read_run_values`)."""
    _, values = read_run_values(run_dir)
    return compare(baseline, values, effects)


def has_regression(rows: Sequence[MetricDelta]) -> bool:
    return any(r.verdict == "REGRESSION" for r in rows)


# --------------------------------------------------------------------------- flake


@dataclass
class FlakeRate:
    """A case's outcomes over ``n`` repeats.

    ``flake_rate``: share of agent verdicts (PASS/WARN vs FAIL) that disagree with the majority,
    0 when every repeat agreed; ``fail_rate`` with its 95 % Wilson interval (``ci_low``, ``ci_high``);
    ``errors``: repeats the harness could not finish (not counted as the agent's fails).
    """

    case_id: str
    n: int
    passed: int
    failed: int
    errors: int
    skipped: int
    fail_rate: float | None
    flake_rate: float | None
    flaky: bool
    ci_low: float | None = None
    ci_high: float | None = None
    verdicts: list[str] = field(default_factory=list)


_PASSING = {"PASS", "WARN"}


def flake_rates(verdicts: Mapping[str, Sequence[str]]) -> list[FlakeRate]:
    """Flake per case from its verdicts over repeated runs.

    Args:
        verdicts: case id -> that case's verdict in each repeat, e.g.
            ``{"endpoint_short_hello": ["PASS", "FAIL", "PASS"]}``; verdicts are
            PASS, WARN, FAIL, SKIP or ERROR (harness failure, see :func:`verdicts_by_case`).

    Returns:
        One :class:`FlakeRate` per case, flakiest first, then by case id.

    Raises:
        ValueError: an unknown verdict (names the case and the repeat).
    """
    from scipy.stats import binomtest

    out = []
    for cid, vs in verdicts.items():
        for i, v in enumerate(vs):
            if v not in ("PASS", "WARN", "FAIL", "SKIP", "ERROR"):
                raise ValueError(f"case {cid!r} repeat {i}: unknown verdict {v!r}; expected PASS, WARN, FAIL, SKIP or ERROR")
        passed = sum(v in _PASSING for v in vs)
        failed = sum(v == "FAIL" for v in vs)
        judged = passed + failed
        fr = FlakeRate(case_id=cid, n=len(vs), passed=passed, failed=failed, errors=sum(v == "ERROR" for v in vs),
                       skipped=sum(v == "SKIP" for v in vs), fail_rate=None, flake_rate=None, flaky=False,
                       verdicts=list(vs))
        if judged:
            fr.fail_rate = failed / judged
            fr.flake_rate = min(passed, failed) / judged
            fr.flaky = passed > 0 and failed > 0
            ci = binomtest(failed, judged).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
            fr.ci_low, fr.ci_high = float(ci.low), float(ci.high)
        out.append(fr)
    return sorted(out, key=lambda f: (-(f.flake_rate or 0.0), f.case_id))


def verdicts_by_case(summaries: Sequence[RunSummary]) -> dict[str, list[str]]:
    """case id -> its verdict in each summary (``ERROR`` for a harness error, ``SKIP`` when absent)."""
    ids: list[str] = []
    for s in summaries:
        for c in s.cases:
            if c.case_id not in ids:
                ids.append(c.case_id)
    out: dict[str, list[str]] = {cid: [] for cid in ids}
    for s in summaries:
        by_id = {c.case_id: c for c in s.cases}
        for cid in ids:
            c = by_id.get(cid)
            out[cid].append("SKIP" if c is None else "ERROR" if c.error else c.verdict)
    return out


# --------------------------------------------------------------------------- rendering


def _signed(metric: str, v: float | None) -> str:
    from autortc.console import format_value

    if v is None:
        return "—"
    s = format_value(metric, abs(v))
    return ("+" if v > 0 else "−" if v < 0 else "±") + s


def _interval(metric: str, lo: float | None, hi: float | None) -> str:
    """``[−478, −108] ms``: the unit once, after the bracket."""
    if lo is None or hi is None:
        return "—"
    a, b = _signed(metric, lo), _signed(metric, hi)
    unit = ""
    for u in (" ms", " %", " dB"):
        if a.endswith(u) and b.endswith(u):
            a, b, unit = a[: -len(u)], b[: -len(u)], u
    return f"[{a}, {b}]{unit}"


def delta_table(rows: Sequence[MetricDelta], *, title: str = "") -> Any:
    """A :class:`rich.table.Table`: effect (metric, statistic), n, baseline, run, delta, 95 % CI, min effect, verdict."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from autortc.console import format_value

    style = {"REGRESSION": "bold red", "IMPROVED": "green", "UNCHANGED": "", "NO_DATA": "dim"}
    t = Table(title=title or None, box=box.SIMPLE, title_justify="left", show_edge=False, pad_edge=False)
    for col, just in (("effect", "left"), ("n", "right"), ("baseline", "right"), ("run", "right"),
                      ("delta", "right"), ("95 % CI", "right"), ("min", "right"), ("verdict", "left")):
        # numbers and the verdict never wrap; on a narrow terminal the effect name and the interval fold
        t.add_column(col, justify=just, no_wrap=col not in ("effect", "95 % CI"),  # type: ignore[arg-type]
                     overflow="fold")
    for r in rows:
        t.add_row(r.key.removesuffix("_p50"), f"{r.n_baseline}/{r.n_run}", format_value(r.metric, r.baseline),
                  format_value(r.metric, r.run), _signed(r.metric, r.delta), _interval(r.metric, r.ci_low, r.ci_high),
                  _signed(r.metric, r.min_effect if r.worse == "higher" else -r.min_effect),
                  Text(r.verdict, style=style[r.verdict]))
    return t


def flake_table(rows: Sequence[FlakeRate], *, title: str = "") -> Any:
    """A :class:`rich.table.Table` of :func:`flake_rates`: case, verdicts per repeat, flake rate,
    fail rate with its 95 % Wilson interval."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title or None, box=box.SIMPLE, title_justify="left", show_edge=False, pad_edge=False)
    for col in ("", "case", "verdicts", "flake", "fail rate [95 % CI]"):
        t.add_column(col, no_wrap=col != "case", overflow="fold")
    for f in rows:
        rate = "—" if f.flake_rate is None else f"{100 * f.flake_rate:.0f} %"
        fail = "—" if f.fail_rate is None or f.ci_low is None or f.ci_high is None else \
            f"{100 * f.fail_rate:.0f} % [{100 * f.ci_low:.0f}, {100 * f.ci_high:.0f}] %"
        label, style = ("FLAKY", "yellow") if f.flaky else ("ok", "green") if f.fail_rate is not None else ("n/a", "dim")
        t.add_row(Text(label, style=style), f.case_id,
                  " ".join(f.verdicts), rate, fail)
    return t

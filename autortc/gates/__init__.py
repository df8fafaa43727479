"""Gates: thresholds from one TOML file (``defaults.toml``), overridable per suite and per case.

    gates = load_gates()                                   # defaults
    gates = gates.override(suite_cfg.get("gates", {}), source="suites/fast.toml")
    case_gates = gates.override(case_cfg.get("gates", {}), source="cases/x.json")
    turn.verdicts = evaluate_turn(turn, case_gates)         # compute_turn_metrics does this
    run_verdicts = evaluate_run(case_results, gates)        # runner, for summary.json

Verdicts carry the measured value, the threshold and the case/turn they are about.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

import numpy as np

from autortc.results import CaseResult, GateVerdict, RunSummary, CaseEntry, TurnResult, worst

__all__ = ["GateSpec", "GateSet", "GateConfigError", "load_gates", "evaluate_turn", "evaluate_run",
           "build_run_summary", "case_verdict", "DEFAULTS_PATH"]

DEFAULTS_PATH = Path(__file__).with_name("defaults.toml")
_OPS = {"<=": lambda a, b: a <= b, "<": lambda a, b: a < b, "==": lambda a, b: a == b,
        ">=": lambda a, b: a >= b, ">": lambda a, b: a > b}
_AGG = ("p95", "p50", "max", "min", "mean", "rate", "sum")


class GateConfigError(ValueError):
    """A gate table (defaults, suite or case override) has an unknown gate, key or bad value."""


@dataclass(frozen=True)
class GateSpec:
    """One gate; see the header of ``defaults.toml`` for the meaning of each field."""

    name: str
    metric: str
    op: Literal["<=", "<", "==", ">=", ">"]
    scope: Literal["turn", "run"] = "turn"
    aggregate: Literal["p95", "p50", "max", "min", "mean", "rate", "sum"] = "p95"
    fail: float | None = None
    warn: float | None = None
    p_levels: tuple[str, ...] | None = None
    enabled: bool = True
    title: str = ""
    source: str = ""
    fix: str = ""

    def judge(self, measured: float | None) -> tuple[str, float | None]:
        """``(status, threshold that decided)`` for a measured value."""
        if measured is None or (isinstance(measured, float) and math.isnan(measured)):
            return "SKIP", self.fail if self.fail is not None else self.warn
        ok = _OPS[self.op]
        if self.fail is not None and not ok(measured, self.fail):
            return "FAIL", self.fail
        if self.warn is not None and not ok(measured, self.warn):
            return "WARN", self.warn
        return "PASS", self.fail if self.fail is not None else self.warn

    def applies_to(self, p_level: str) -> bool:
        return self.enabled and (self.p_levels is None or p_level in self.p_levels)


_FIELDS = {f for f in GateSpec.__dataclass_fields__ if f != "name"}


def _spec(name: str, raw: Mapping[str, Any], base: GateSpec | None, source: str) -> GateSpec:
    unknown = set(raw) - _FIELDS
    if unknown:
        raise GateConfigError(f"{source}: gates.{name}: unknown key(s) {sorted(unknown)}; expected some of {sorted(_FIELDS)}")
    vals: dict[str, Any] = {} if base is None else {k: getattr(base, k) for k in _FIELDS}
    for k, v in raw.items():
        if k in ("fail", "warn"):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise GateConfigError(f"{source}: gates.{name}.{k}: expected a number, got {v!r}")
            v = None if v is None else float(v)
        elif k == "p_levels":
            if v is not None and (not isinstance(v, list) or not all(isinstance(s, str) for s in v)):
                raise GateConfigError(f"{source}: gates.{name}.p_levels: expected a list of strings, got {v!r}")
            v = None if v is None else tuple(v)
        elif k == "enabled":
            if not isinstance(v, bool):
                raise GateConfigError(f"{source}: gates.{name}.enabled: expected true/false, got {v!r}")
        elif k == "op" and v not in _OPS:
            raise GateConfigError(f"{source}: gates.{name}.op: expected one of {list(_OPS)}, got {v!r}")
        elif k == "scope" and v not in ("turn", "run"):
            raise GateConfigError(f"{source}: gates.{name}.scope: expected 'turn' or 'run', got {v!r}")
        elif k == "aggregate" and v not in _AGG:
            raise GateConfigError(f"{source}: gates.{name}.aggregate: expected one of {list(_AGG)}, got {v!r}")
        elif k in ("metric", "title", "source", "fix") and not isinstance(v, str):
            raise GateConfigError(f"{source}: gates.{name}.{k}: expected a string, got {v!r}")
        vals[k] = v
    for req in ("metric", "op"):
        if req not in vals:
            raise GateConfigError(f"{source}: gates.{name}: missing required key '{req}'")
    if vals.get("fail") is None and vals.get("warn") is None and vals.get("enabled", True):
        raise GateConfigError(f"{source}: gates.{name}: needs a 'fail' or 'warn' threshold")
    return GateSpec(name=name, **vals)


@dataclass(frozen=True)
class GateSet:
    """An ordered set of gates; immutable, :meth:`override` returns a new set."""

    gates: tuple[GateSpec, ...]
    sources: tuple[str, ...] = field(default=())

    def __iter__(self):
        return iter(self.gates)

    def get(self, name: str) -> GateSpec:
        for g in self.gates:
            if g.name == name:
                return g
        raise KeyError(name)

    def override(self, table: Mapping[str, Any] | None, *, source: str = "<override>",
                 allow_new: bool = False) -> "GateSet":
        """Apply ``{gate_name: {key: value}}`` (the ``[gates.*]`` tables of a suite or case).

        A bare number, ``{gate_name: 250.0}`` (the cases file form), replaces the
        deciding threshold: ``fail``, or ``warn`` for a WARN-only gate.  A top-level
        ``{"gates": {...}}`` is accepted too.  Unknown gate names are an error unless
        ``allow_new`` (then the table must define a full gate).
        """
        if not table:
            return self
        if "gates" in table and isinstance(table["gates"], Mapping):
            table = table["gates"]
        byname = {g.name: g for g in self.gates}
        order = [g.name for g in self.gates]
        for name, raw in table.items():
            if isinstance(raw, (int, float)) and not isinstance(raw, bool) and name in byname:
                raw = {"fail" if byname[name].fail is not None or byname[name].warn is None else "warn": raw}
            if not isinstance(raw, Mapping):
                raise GateConfigError(f"{source}: gates.{name}: expected a table of gate keys, got {raw!r}")
            if name not in byname and not allow_new:
                raise GateConfigError(f"{source}: gates.{name}: unknown gate; known: {order}")
            byname[name] = _spec(name, raw, byname.get(name), source)
            if name not in order:
                order.append(name)
        return GateSet(tuple(byname[n] for n in order), self.sources + (source,))

    def override_file(self, path: Path | str, *, allow_new: bool = False) -> "GateSet":
        """Apply the ``[gates.*]`` tables of a TOML or JSON file."""
        import json

        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
            data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
        except FileNotFoundError as exc:
            raise GateConfigError(f"{p}: file not found") from exc
        except (tomllib.TOMLDecodeError, ValueError) as exc:
            raise GateConfigError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'TOML'} ({exc})") from exc
        if not isinstance(data, Mapping) or not isinstance(data.get("gates", {}), Mapping):
            raise GateConfigError(f"{p}: expected [gates.<name>] tables")
        return self.override(data.get("gates", {}), source=str(p), allow_new=allow_new)


def load_gates(path: Path | str | None = None) -> GateSet:
    """The gates of ``autortc/gates/defaults.toml``, then the ``[gates.*]`` tables of ``path``.

    ``path`` (TOML or JSON, optional) may change any key of a default gate and may
    define new gates (with at least ``metric``, ``op`` and a threshold).
    """
    try:
        data = tomllib.loads(DEFAULTS_PATH.read_text(encoding="utf-8"))
    except (FileNotFoundError, tomllib.TOMLDecodeError) as exc:
        raise GateConfigError(f"{DEFAULTS_PATH}: cannot read the default gates ({exc})") from exc
    gs = GateSet((), ()).override(data.get("gates") or {}, source=str(DEFAULTS_PATH), allow_new=True)
    if path is not None and Path(path).resolve() != DEFAULTS_PATH.resolve():
        gs = gs.override_file(path, allow_new=True)
    return gs


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
        msg = f"{g.metric} = {v!r} {'meets' if status == 'PASS' else 'violates'} {g.op} {thr}" if v is not None \
            else f"{g.metric} not measured"
        out.append(GateVerdict(gate=g.name, status=status, measured=v, threshold=thr, op=g.op, scope="turn",
                               metric=g.metric, case_id=turn.case_id, trace_id=turn.trace_id,
                               turn_index=turn.turn_index, warn_threshold=g.warn, n=1, message=msg))
    return out


def _aggregate(values: list[float], how: str) -> float:
    a = np.asarray(values, dtype=np.float64)
    return float({"p95": lambda: np.percentile(a, 95), "p50": lambda: np.percentile(a, 50), "max": a.max,
                  "min": a.min, "mean": a.mean, "rate": a.mean, "sum": a.sum}[how]())


def evaluate_run(cases: Iterable[CaseResult], gates: GateSet, *,
                 extra_values: Mapping[str, list[float]] | None = None) -> list[GateVerdict]:
    """Run-level verdicts: run gates on their aggregate, turn gates as the worst turn.

    ``extra_values`` adds values measured outside turn folders, by metric path (e.g.
    ``{"latency.user_kpi_ms": [...]}`` from the browser harness).  Each verdict names
    the case/turn with the worst value.
    """
    turns = [t for c in cases for t in c.turns]
    out: list[GateVerdict] = []
    for g in gates:
        if not g.enabled:
            continue
        rows = [(t, _num(t.metric(g.metric))) for t in turns if g.applies_to(t.p_level)]
        rows = [(t, v) for t, v in rows if v is not None]
        vals = [v for _, v in rows] + [float(x) for x in (extra_values or {}).get(g.metric, []) if x is not None]
        if not vals:
            out.append(GateVerdict(gate=g.name, status="SKIP", measured=None, threshold=g.fail if g.fail is not None else g.warn,
                                   op=g.op, scope="run", metric=g.metric, warn_threshold=g.warn, n=0,
                                   message=f"no turn measured {g.metric}"))
            continue
        worst_t = None
        if rows:
            # the worst turn is the one furthest on the failing side
            key = (lambda r: r[1]) if g.op in ("<=", "<") else (lambda r: -r[1]) if g.op in (">=", ">") \
                else (lambda r: abs(r[1] - (g.fail if g.fail is not None else g.warn or 0.0)))
            worst_t = max(rows, key=key)[0]
        if g.scope == "run":
            measured = _aggregate(vals, g.aggregate)
            status, thr = g.judge(measured)
            label = f"{g.aggregate}({g.metric}) over {len(vals)}"
        else:
            statuses = [g.judge(v) for v in vals]
            status = worst([s for s, _ in statuses])
            measured = _num(worst_t.metric(g.metric)) if worst_t else max(vals)
            thr = g.fail if g.fail is not None else g.warn
            nbad = sum(1 for s, _ in statuses if s in ("FAIL", "WARN"))
            label = f"worst {g.metric}; {nbad}/{len(vals)} turns violate"
        out.append(GateVerdict(gate=g.name, status=status, measured=measured, threshold=thr, op=g.op, scope="run",
                               metric=g.metric, case_id=worst_t.case_id if worst_t else None,
                               trace_id=worst_t.trace_id if worst_t else None,
                               turn_index=worst_t.turn_index if worst_t else None, warn_threshold=g.warn,
                               n=len(vals), message=label))
    return out


def case_verdict(case: CaseResult) -> str:
    """Worst verdict of a case's turns (FAIL if the case errored or has no turn)."""
    if case.error or not case.turns:
        return "FAIL"
    return worst([t.verdict for t in case.turns])


def build_run_summary(run_id: str, cases: list[CaseResult], gates: GateSet, *, suite: str = "",
                      started_at: str | None = None, ended_at: str | None = None,
                      extra_values: Mapping[str, list[float]] | None = None,
                      result_paths: Mapping[str, str] | None = None) -> RunSummary:
    """The ``summary.json`` content: case entries, run gate verdicts, overall verdict.

    The run verdict is the worst of the run-gate verdicts and the case verdicts (a case
    WARN stays WARN).  ``result_paths`` maps case_id -> result.json path relative to the
    run dir (default ``<case_id>/result.json``).
    """
    run_gates = evaluate_run(cases, gates, extra_values=extra_values)
    entries = [CaseEntry(case_id=c.case_id, verdict=case_verdict(c), p_level=c.p_level, turns=len(c.turns),  # type: ignore[arg-type]
                         result=(result_paths or {}).get(c.case_id, f"{c.case_id}/result.json"), error=c.error)
               for c in cases]
    verdict = worst([v.status for v in run_gates] + [e.verdict for e in entries])
    return RunSummary(run_id=run_id, suite=suite, verdict=verdict, started_at=started_at, ended_at=ended_at,
                      cases=entries, gates=run_gates)

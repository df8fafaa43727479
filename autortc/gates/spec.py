"""Gate specifications: what a gate measures, its operator and thresholds, and how the
layers (``defaults.toml`` -> ``--gates FILE`` -> suite table -> case table) override them.

Nothing here judges a measurement except :meth:`GateSpec.judge` (one value against one
gate); verdicts over turns and runs live in :mod:`autortc.gates.judge`.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from autortc.results import GateInfo

__all__ = ["GateSpec", "GateSet", "GateConfigError", "load_gates", "DEFAULTS_PATH"]

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

    @property
    def threshold(self) -> float | None:
        """The deciding threshold: ``fail``, or ``warn`` for a WARN-only gate."""
        return self.fail if self.fail is not None else self.warn

    def info(self) -> GateInfo:
        """This gate as written into ``summary.json`` (what the report shows)."""
        return GateInfo(name=self.name, metric=self.metric, op=self.op, scope=self.scope, aggregate=self.aggregate,
                        fail=self.fail, warn=self.warn, p_levels=list(self.p_levels) if self.p_levels else None,
                        enabled=self.enabled, title=self.title, source=self.source, fix=self.fix)


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
            if name not in byname and not allow_new:
                raise GateConfigError(f"{source}: gates.{name}: unknown gate; known: {order}")
            if isinstance(raw, (int, float)) and not isinstance(raw, bool) and name in byname:
                raw = {"fail" if byname[name].fail is not None or byname[name].warn is None else "warn": raw}
            if not isinstance(raw, Mapping):
                raise GateConfigError(f"{source}: gates.{name}: expected a table of gate keys, got {raw!r}")
            byname[name] = _spec(name, raw, byname.get(name), source)
            if name not in order:
                order.append(name)
        return GateSet(tuple(byname[n] for n in order), self.sources + (source,))

    def changed_from(self, base: "GateSet") -> list[GateSpec]:
        """Gates of this set that differ from (or are absent in) ``base``: a case's overrides."""
        theirs = {g.name: g for g in base.gates}
        return [g for g in self.gates if theirs.get(g.name) != g]

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


def load_gates(path: Path | str | None = None, *, defaults: Path = DEFAULTS_PATH) -> GateSet:
    """The gates of ``defaults`` (``autortc/gates/defaults.toml``), then the ``[gates.*]`` tables of ``path``.

    ``path`` (TOML or JSON, optional) may change any key of a default gate and may
    define new gates (with at least ``metric``, ``op`` and a threshold).  Another
    tool's defaults file (the TTS bench's ``autortc/tts_bench/gates.toml``) uses the
    same layout and the same evaluator.

    Raises:
        GateConfigError: naming the file and the gate/key that is wrong.
    """
    defaults = Path(defaults)
    try:
        data = tomllib.loads(defaults.read_text(encoding="utf-8"))
    except (FileNotFoundError, tomllib.TOMLDecodeError) as exc:
        raise GateConfigError(f"{defaults}: cannot read the default gates ({exc})") from exc
    gs = GateSet((), ()).override(data.get("gates") or {}, source=str(defaults), allow_new=True)
    if path is not None and Path(path).resolve() != defaults.resolve():
        gs = gs.override_file(path, allow_new=True)
    return gs

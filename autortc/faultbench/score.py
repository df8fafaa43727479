"""Scoring the bench: recall per fault, false alarms on clean turns, planted vs measured, delay recovery.

ASSUMED INPUT (minimal, so it can be wired to the runner's results after the typed-contract
and gates-report merges; posted on /work/coord/notes.md). One ``TurnOutcome`` per planned
turn, built from the runner's ``TurnResult`` and the agent's trace:

    TurnOutcome(
        item=<BenchItem.index>,            # which planned turn
        case_id="content_weather",
        fault="gap_60" | None,             # catalogue name; None: clean turn
        truth=[{...FaultTruth.to_dict()}], # the agent's trace field "fault_truth" (may be empty)
        verdicts=[Verdict(gate="audible_dropout", status="FAIL", measured=1.0), ...],
                                           # the turn's gate verdicts (TurnResult.verdicts: gate,
                                           # status PASS/WARN/FAIL/SKIP, measured)
        latency_ms=612.0 | None,           # EoT -> first audio at the probe (delay recovery)
        pair=<BenchItem.pair> | None,      # delay_300/600 pairing
        error="" ,                         # harness error: the turn was not run (not scored)
    )

Rules:
* a faulted turn counts when the fault was planted: every truth record of its kind says
  ``planted`` (turn-taking faults need no audio truth: no record means planted). Turns
  whose fault could not be placed, or that the harness could not run, are counted apart;
* caught: one of the entry's ``gates`` at the entry's ``level`` or worse; recall = caught /
  planted with a 95 % Wilson interval (``scipy.stats.binomtest(...).proportion_ci``);
* a false alarm: a WARN or FAIL of any gate on a clean turn; counted per gate and in total;
* delay recovery: per pair, latency(delay_600) - latency(delay_300); the median of these
  differences with a 95 % percentile bootstrap interval (``scipy.stats.bootstrap``, fixed
  seed), and its error against the planted 300 ms;
* exit rule: passed when every scored fault has recall >= ``min_recall`` (a fault with no
  planted turn fails: unmeasured is not green) and clean false alarms <= ``max_false_alarms``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats

from autortc.faultbench.catalogue import CATALOGUE, LEVEL_RANK, FaultEntry, by_name
from autortc.metrics.receivers import median_ci

Status = Literal["PASS", "WARN", "FAIL", "SKIP"]


class ScoreInputError(ValueError):
    """A turn outcome names an unknown fault or gate status; the message names the item."""


@dataclass(frozen=True)
class Verdict:
    gate: str
    status: Status
    measured: float | None = None


@dataclass(frozen=True)
class TurnOutcome:
    item: int
    case_id: str
    fault: str | None
    verdicts: tuple[Verdict, ...] = ()
    truth: tuple[dict[str, Any], ...] = ()
    latency_ms: float | None = None
    pair: int | None = None
    error: str = ""
    # first frame published -> first audible sample at the probe, ms (one host clock): the part of
    # the latency a planted reply delay lies in, without the uplink's and the agent's spread
    downlink_ms: float | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TurnOutcome:
        """From JSON (``faultbench.json`` ``turns`` or the runner); raises ``ScoreInputError`` naming the field."""
        try:
            verdicts = tuple(Verdict(gate=str(v["gate"]), status=v["status"], measured=v.get("measured")) for v in d.get("verdicts", []))
            return cls(item=int(d["item"]), case_id=str(d["case_id"]), fault=d.get("fault"), verdicts=verdicts,
                       truth=tuple(d.get("truth", [])), latency_ms=d.get("latency_ms"), pair=d.get("pair"),
                       error=str(d.get("error", "")), downlink_ms=d.get("downlink_ms"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ScoreInputError(f"turn outcome {d.get('item', '?')}: missing or bad field ({exc!r})") from exc


def wilson(caught: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of ``caught/n`` (None for n == 0). scipy's binomtest CI, method 'wilson'."""
    if n == 0:
        return None
    ci = stats.binomtest(caught, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


@dataclass
class FaultRow:
    name: str
    kind: str
    side: str
    gates: tuple[str, ...]
    level: str | None
    why: str
    runs: int = 0
    planted: int = 0
    not_planted: int = 0
    not_planted_why: dict[str, int] = field(default_factory=dict)  # reason (the truth's, up to its first ':') -> turns
    harness_errors: int = 0
    caught: int = 0
    recall: float | None = None
    wilson95: tuple[float, float] | None = None
    values: list[dict[str, Any]] = field(default_factory=list)  # planted vs measured per turn
    scored: bool = True
    passed: bool | None = None
    unit: str = "ms"


@dataclass
class DelayRecovery:
    planted_diff_ms: float
    pairs: int
    diffs_ms: list[float]
    median_ms: float | None
    ci95_ms: tuple[float, float] | None
    error_ms: float | None  # median - planted
    part: str = "latency_ms"  # which measured figure was paired: the whole latency or its downlink part
    # delay turns not paired, reason -> turns: the delay did not reach the reply heard (the truth's
    # reason), a harness error, the part not measured; and pairs that lost a side to one of those
    left_out: dict[str, int] = field(default_factory=dict)
    incomplete_pairs: int = 0


@dataclass
class BenchScore:
    rows: list[FaultRow]
    clean_turns: int
    clean_harness_errors: int
    false_alarms: dict[str, dict[str, int]]  # gate -> {"WARN": n, "FAIL": n}
    false_alarm_total: int
    delay: DelayRecovery | None
    min_recall: float
    max_false_alarms: int
    passed: bool
    reasons: list[str]
    delay_downlink: DelayRecovery | None = None  # the same pairs on the downlink part (path spread removed)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _level_ok(status: str, level: str) -> bool:
    if status not in LEVEL_RANK:
        raise ScoreInputError(f"gate status {status!r}: expected one of {sorted(LEVEL_RANK)}")
    return LEVEL_RANK[status] >= LEVEL_RANK[level]


def _planted(entry: FaultEntry, turn: TurnOutcome) -> bool:
    own = [t for t in turn.truth if t.get("kind") == entry.kind]
    if not own:
        return entry.side == "turn"  # worker decisions; audio and text faults must report their truth
    return all(bool(t.get("planted")) for t in own)


def _planted_value(entry: FaultEntry, turn: TurnOutcome) -> float | None:
    if entry.planted_value is None:
        return None
    for t in turn.truth:
        if t.get("kind") != entry.kind:
            continue
        v = t.get(entry.planted_value, (t.get("extra") or {}).get(entry.planted_value))
        if v is not None:
            return float(v)
    return None


def _measured(entry: FaultEntry, turn: TurnOutcome) -> float | None:
    if entry.measure is None:
        return None
    for v in turn.verdicts:
        if v.gate == entry.measure:
            return v.measured
    return None


def score(
    turns: list[TurnOutcome],
    *,
    catalogue: tuple[FaultEntry, ...] = CATALOGUE,
    min_recall: float = 0.95,
    max_false_alarms: int = 0,
    bootstrap_seed: int = 0,
) -> BenchScore:
    """Score the bench's turns (see the module docstring for the input and the rules)."""
    entries = by_name(catalogue)
    for t in turns:
        if t.fault is not None and t.fault not in entries:
            raise ScoreInputError(f"turn outcome {t.item}: unknown fault {t.fault!r}")
        for v in t.verdicts:
            if v.status not in LEVEL_RANK:
                raise ScoreInputError(f"turn outcome {t.item}: gate {v.gate}: status {v.status!r} is not PASS/WARN/FAIL/SKIP")

    present = [e for e in catalogue if any(t.fault == e.name for t in turns)]
    rows: list[FaultRow] = []
    for e in present:
        row = FaultRow(name=e.name, kind=e.kind, side=e.side, gates=e.gates, level=e.level, why=e.why,
                       scored=e.scored, unit=e.unit)
        for t in (t for t in turns if t.fault == e.name):
            row.runs += 1
            if t.error:
                row.harness_errors += 1
                continue
            if not _planted(e, t):
                row.not_planted += 1
                why = next((str(x.get("reason") or "") for x in t.truth if x.get("kind") == e.kind and not x.get("planted")), "")
                key = why.split(":")[0].strip() or "no reason given"
                row.not_planted_why[key] = row.not_planted_why.get(key, 0) + 1
                continue
            row.planted += 1
            caught = e.scored and any(v.gate in e.gates and _level_ok(v.status, e.level or "FAIL") for v in t.verdicts)
            row.caught += int(caught)
            row.values.append({"item": t.item, "case_id": t.case_id, "planted": _planted_value(e, t),
                               "measured": _measured(e, t), "caught": caught})
        if e.scored:
            row.recall = row.caught / row.planted if row.planted else None
            row.wilson95 = wilson(row.caught, row.planted)
            row.passed = row.recall is not None and row.recall >= min_recall
        rows.append(row)

    clean = [t for t in turns if t.fault is None]
    clean_ok = [t for t in clean if not t.error]
    fa: dict[str, dict[str, int]] = {}
    for t in clean_ok:
        for v in t.verdicts:
            if v.status in ("WARN", "FAIL"):
                fa.setdefault(v.gate, {"WARN": 0, "FAIL": 0})[v.status] += 1
    fa_total = sum(c["WARN"] + c["FAIL"] for c in fa.values())

    delay = delay_recovery(turns, catalogue=catalogue, seed=bootstrap_seed)
    delay_dl = delay_recovery(turns, catalogue=catalogue, seed=bootstrap_seed, part="downlink_ms")

    reasons = []
    for r in rows:
        if not r.scored:
            continue
        if r.recall is None:
            reasons.append(f"{r.name}: no planted turn to score (not measured is not green)")
        elif not r.passed:
            reasons.append(f"{r.name}: recall {r.caught}/{r.planted} = {r.recall:.2f} < {min_recall}")
    if fa_total > max_false_alarms:
        reasons.append(f"{fa_total} false alarm(s) on {len(clean_ok)} clean turns > {max_false_alarms}")
    if not clean_ok:
        reasons.append("no clean turn scored: false alarms not measured")
    return BenchScore(rows=rows, clean_turns=len(clean_ok), clean_harness_errors=len(clean) - len(clean_ok),
                      false_alarms=fa, false_alarm_total=fa_total, delay=delay, min_recall=min_recall,
                      max_false_alarms=max_false_alarms, passed=not reasons, reasons=reasons, delay_downlink=delay_dl)


def delay_recovery(turns: list[TurnOutcome], *, catalogue: tuple[FaultEntry, ...] = CATALOGUE,
                   seed: int = 0, confidence: float = 0.95, part: str = "latency_ms") -> DelayRecovery | None:
    """Median of per-pair differences (long - short delay) with a bootstrap CI; None without delay turns.

    ``part``: ``"latency_ms"`` (EoT → first audio: carries the uplink's and the agent's spread from
    room to room) or ``"downlink_ms"`` (first frame published → first audible sample, one host
    clock: the planted digital silence lies after the agent's first frame, so this pairs the
    instrument's reading of it without the path's and the agent's spread).

    Only turns whose delay truth is planted pair (the agent's truth checked against the reply heard,
    ``bench.heard_truth``); the others are counted in ``left_out`` by reason and their pairs in
    ``incomplete_pairs``, never paired and never dropped unsaid."""
    timing = [e for e in catalogue if e.timing]
    if len(timing) < 2:
        return None
    short, long_ = sorted(timing, key=lambda e: float(e.spec["ms"]))[:2]
    planted = float(long_.spec["ms"]) - float(short.spec["ms"])
    by_pair: dict[int, dict[str, float]] = {}
    left_out: dict[str, int] = {}
    pairs: set[int] = set()
    for t in turns:
        if t.fault not in (short.name, long_.name) or t.pair is None:
            continue
        pairs.add(t.pair)
        v = getattr(t, part)
        entry = short if t.fault == short.name else long_
        if t.error:
            why = "harness error"
        elif not _planted(entry, t):
            # the agent delayed a reply the user did not hear after the EoT (it answered into a
            # pause, that reply was cut; fb-browser-1903 b003): pairing it would be silently wrong
            why = next((str(x.get("reason") or "") for x in t.truth if x.get("kind") == entry.kind
                        and not x.get("planted")), "").split(":")[0].strip() or "not planted"
        elif v is None or not math.isfinite(v):
            why = f"{part} not measured"
        else:
            by_pair.setdefault(t.pair, {})[t.fault] = float(v)
            continue
        left_out[why] = left_out.get(why, 0) + 1
    if not any(t.fault in (short.name, long_.name) for t in turns):
        return None
    diffs = [p[long_.name] - p[short.name] for _, p in sorted(by_pair.items()) if short.name in p and long_.name in p]
    incomplete = len(pairs) - len(diffs)
    if not diffs:
        return DelayRecovery(planted, 0, [], None, None, None, part=part, left_out=left_out, incomplete_pairs=incomplete)
    med = float(np.median(diffs))
    ci = median_ci(diffs, confidence=confidence, seed=seed)
    return DelayRecovery(planted, len(diffs), diffs, med, ci, med - planted, part=part, left_out=left_out,
                         incomplete_pairs=incomplete)

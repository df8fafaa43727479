"""Re-judge a recorded bench run with the metrics and gates of this checkout: same scorer, same
recorded audio, no new turns.

A bench run folder holds one entry folder per plan item (``b007-gap_60-content_weather``) with the
turn folders the runner wrote (trace.json with the agent's fault truth, the WAVs) and the verdicts
of the code that ran (``<entry>/result.json``).  ``rescore`` rebuilds the plan from its seed (the
entry ids must match the folders: a different plan is refused), then

* *before*: the recorded ``result.json`` verdicts, scored by :func:`autortc.faultbench.score.score`;
* *after*: every turn folder computed again (:func:`autortc.metrics.turn.compute`, the case's
  gates), what the runner itself marked on the turn (``no_reply``) carried over, scored the same way.

Entries not (yet) in the folder are "not run (cut)" and count for neither side.  Works on a run
that is still being written: only entries with a ``result.json`` are read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autortc.artifacts import TRACE_FILE, load_turn
from autortc.cases import load_case_file
from autortc.faultbench import bench
from autortc.faultbench.plan import BenchCase, BenchPlan, make_plan
from autortc.faultbench.score import BenchScore, score
from autortc.gates import RunGates, judge_case, judge_turn
from autortc.metrics.turn import Transcriber, compute
from autortc.results import CaseResult, read_json, write_json


class RescoreError(ValueError):
    """The run folder does not match the plan (seed, counts) or cannot be read."""


@dataclass
class Rescore:
    plan: BenchPlan
    before: BenchScore
    after: BenchScore
    before_records: list[bench.TurnRecord]
    after_records: list[bench.TurnRecord]
    entries: int


def plan_of(run_dir: Path, cases_path: Path, *, seed: int | None = None, k: int = 5, clean: int = 50,
            delay_pairs: int = 20, faults: list[str] | None = None) -> BenchPlan:
    """The run's plan: from ``faultbench.json`` when the run finished, else rebuilt from ``seed``."""
    fb = run_dir / "faultbench.json"
    if fb.exists() and seed is None:
        p = json.loads(fb.read_text()).get("plan") or {}
        seed, k, clean, delay_pairs = p.get("seed"), p.get("k", k), p.get("clean", clean), p.get("delay_pairs", delay_pairs)
    if seed is None:
        raise RescoreError(f"{run_dir}: no faultbench.json with a plan; give the run's --seed (and --k/--clean/--delay-pairs)")
    cf = load_case_file(cases_path)
    plan = make_plan([BenchCase.from_case(c) for c in cf.cases], seed=int(seed), k=k, clean=clean,
                     delay_pairs=delay_pairs, faults=faults)
    ids = {bench.entry_id(it) for it in plan.items}
    found = {p.name for p in run_dir.iterdir() if p.is_dir() and p.name.startswith("b")}
    stray = sorted(found - ids)
    if stray:
        raise RescoreError(f"{run_dir}: {len(stray)} entry folder(s) are not in the plan of seed {seed} "
                           f"(k={k}, clean={clean}, delay_pairs={delay_pairs}): {stray[:5]}")
    return plan


def recorded(run_dir: Path, plan: BenchPlan) -> dict[str, CaseResult]:
    """The verdicts the run wrote: ``<entry>/result.json`` of every entry that has one."""
    out = {}
    for it in plan.items:
        f = run_dir / bench.entry_id(it) / "result.json"
        if f.exists():
            out[bench.entry_id(it)] = read_json(f, CaseResult)
    return out


def rejudge(run_dir: Path, plan: BenchPlan, before: dict[str, CaseResult], cases_path: Path, *, suite: str = "fast",
            gates_path: Path | None = None, transcriber: Transcriber | None = None, log: Any = None,
            cache: Path | None = None) -> dict[str, CaseResult]:
    """Every recorded turn computed and judged again by this checkout (the run's case gates).

    ``cache``: a folder where each entry's new ``CaseResult`` is kept and read back on the next
    call (so a scorer change does not redo STT); stale after a metrics change: delete it then."""
    cf = load_case_file(cases_path)
    st = cf.suites[suite]
    rg = RunGates.load(gates_path, suite_table=st.gates)
    out: dict[str, CaseResult] = {}
    for it in plan.items:
        eid = bench.entry_id(it)
        old = before.get(eid)
        if old is None:
            continue
        if cache is not None and (cache / f"{eid}.json").exists():
            out[eid] = read_json(cache / f"{eid}.json", CaseResult)
            continue
        case = cf.case(it.case_id)
        gs = rg.for_case(eid, case.gates)
        turns = []
        for t_old in old.turns:
            d = run_dir / eid / t_old.trace_id
            if not (d / TRACE_FILE).exists():
                turns.append(t_old)  # nothing recorded to recompute (the harness wrote no folder)
                continue
            t = load_turn(d)
            res = compute(t.artifacts, t.audio, transcriber=transcriber, errors=t.errors)
            if t.artifacts is None:
                res.case_id, res.trace_id = eid, d.name
            if t_old.no_reply:  # the runner's own finding (no reply_start came), not a metric
                res.no_reply = True
                res.errors += [e for e in t_old.errors if e.startswith(("NO_REPLY", "AGENT_GONE"))]
            judge_turn(res, gs, failed=t.artifacts is None)
            turns.append(res)
            if log:
                log(f"{eid}: {t_old.verdict} -> {res.verdict}")
        c = CaseResult(case_id=old.case_id, p_level=old.p_level, turns=turns, error=old.error,
                       attempts=old.attempts)
        c.verdict = judge_case(c)
        out[eid] = c
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            write_json(cache / f"{eid}.json", c)
    return out


def rescore(run_dir: Path, cases_path: Path, *, seed: int | None = None, k: int = 5, clean: int = 50,
            delay_pairs: int = 20, faults: list[str] | None = None, suite: str = "fast",
            gates_path: Path | None = None, transcriber: Transcriber | None = None, min_recall: float = 0.95,
            max_false_alarms: int = 0, log: Any = None, cache: Path | None = None) -> Rescore:
    plan = plan_of(run_dir, cases_path, seed=seed, k=k, clean=clean, delay_pairs=delay_pairs, faults=faults)
    before = recorded(run_dir, plan)
    after = rejudge(run_dir, plan, before, cases_path, suite=suite, gates_path=gates_path, transcriber=transcriber,
                    log=log, cache=cache)
    run = {it.index for it in plan.items if bench.entry_id(it) in before}
    sub = BenchPlan(seed=plan.seed, k=plan.k, clean=plan.clean, delay_pairs=plan.delay_pairs,
                    items=tuple(it for it in plan.items if it.index in run), cases=plan.cases)
    rb = bench.outcomes(sub, before, run_dir)
    ra = bench.outcomes(sub, after, run_dir)
    kw = dict(min_recall=min_recall, max_false_alarms=max_false_alarms)
    return Rescore(plan, score([r.outcome for r in rb], **kw), score([r.outcome for r in ra], **kw), rb, ra, len(run))

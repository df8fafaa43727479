"""A small fault bench over the real stack (bots path): the table is produced and scored.

4 faults x 2 + 4 clean turns through the normal runner. Asserts that each faulted turn
carries the agent's ground truth (planted where the plan said, agent vs path side), that the
path fault left the agent's pre-RTC copy clean while the agent fault is in it, and that the
score/table/report exist. It does not assert recall: the gates that must catch several of
these faults arrive with issue 18.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autortc.commands.faultbench import run_bench
from autortc.faultbench.plan import BenchCase, make_plan
from autortc.cases import load_case_file
from autortc.runner.suite import RunOptions

pytestmark = pytest.mark.e2e

CASES = Path(__file__).resolve().parents[2] / "cases" / "all_cases.json"
FAULTS = ["gap_60", "clipping_x6", "tail_cut_60", "wrong_words"]


@pytest.fixture(scope="module")
def bench(stack, tmp_path_factory):
    cf = load_case_file(CASES)
    plan = make_plan([BenchCase.from_case(c) for c in cf.cases], seed=17, k=2, clean=4, delay_pairs=0,
                     faults=FAULTS)
    opts = RunOptions(target=stack.target, cases_path=CASES, suite="fast", out_root=tmp_path_factory.mktemp("fb"),
                      run_id="e2e-faultbench", progress=False, transcriber=None)
    outcome, score, records, extra = asyncio.run(run_bench(opts, plan, min_recall=0.95, max_false_alarms=0,
                                                           command="e2e"))
    return plan, outcome, score, records


def test_every_turn_ran_and_carries_the_agents_truth(bench):
    plan, outcome, score, records = bench
    assert len(records) == len(plan.items) == 12
    assert not [r.outcome.error for r in records if r.outcome.error], "harness errors"
    for r in records:
        kinds = [t["kind"] for t in r.outcome.truth]
        if r.outcome.fault is None:
            assert kinds == [], r.outcome
        else:
            item = plan.items[r.outcome.item]
            assert kinds == [item.spec["kind"]], (r.outcome.fault, r.outcome.truth)
            assert r.outcome.verdicts, "the turn was judged by the normal gates"


def test_path_fault_is_not_in_the_agents_copy_and_agent_fault_is(bench):
    plan, outcome, score, records = bench
    for r in records:
        if r.outcome.fault not in ("gap_60", "clipping_x6"):
            continue
        t = r.outcome.truth[0]
        assert t["planted"], t
        pre, sr = sf.read(r.turn_dir / "pre_rtc.wav", dtype="int16")
        if r.outcome.fault == "gap_60":
            assert t["in_agent_copy"] is False and t["size_samples"] == 60 * sr // 1000
            seg = pre[t["start_sample"]:t["start_sample"] + t["size_samples"]]
            assert np.sqrt(np.mean(seg.astype(float) ** 2)) > 100, "the agent's copy keeps the speech the path removed"
        else:
            assert t["in_agent_copy"] is True
            assert np.mean(np.abs(pre.astype(int)) >= 32767) > 0.01, "clipped samples are in the agent's own copy"


def test_table_and_report_are_written_and_scored(bench):
    plan, outcome, score, records = bench
    fb = json.loads((outcome.run_dir / "faultbench.json").read_text())
    assert fb["plan"]["seed"] == 17 and len(fb["turns"]) == 12
    names = [r["name"] for r in fb["score"]["rows"]]
    assert sorted(names) == sorted(FAULTS)
    for row in fb["score"]["rows"]:
        assert row["runs"] == 2 and row["planted"] + row["not_planted"] == 2
        assert row["recall"] is None or 0.0 <= row["recall"] <= 1.0
    assert fb["score"]["clean_turns"] == 4
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    assert summary["extra"]["faultbench"]["rows"]
    report = (outcome.run_dir / "report.md").read_text()
    assert "Fault bench (seed 17" in report and "Latency error bar: decomposition" in report
    assert (outcome.run_dir / "faultbench.md").read_text().startswith("## Fault bench")

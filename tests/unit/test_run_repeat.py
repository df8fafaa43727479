"""``autortc run --repeat N --baseline NAME`` at the runner level: each repeat is a run folder, the last
summary carries the flake rates and the delta table (through the runner's ``summarize`` hook), and the
exit code is 1 for a planted +100 ms EoT regression, 0 for a run drawn from the baseline's own spread."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from autortc.baseline import save_baseline
from autortc.results import CaseEntry, CaseResult, RunSummary, TurnResult, write_json
from autortc.runner.repeat import combine_exit_codes, repeat_run_ids, run_repeated
from autortc.runner.suite import RunOutcome
from tests.unit.test_baseline import RECORDED_EOT

pytestmark = pytest.mark.unit

CASES = [f"case{c:02d}" for c in range(16)]
TURNS_PER_CASE = 4  # 16 cases x 4 turns = 64 turns per repeat; 3 repeats = 192 (the interval is ~±80 ms)


@dataclasses.dataclass(frozen=True)
class Opts:  # the fields of RunOptions the repeat loop reads or replaces
    out_root: Path
    suite: str = "fast"
    run_id: str | None = None
    summarize: object = None
    label: str | None = None


def fake_runner(rng: np.random.Generator, shift: float, verdicts: dict[str, list[str]]):
    """A runner that writes what the real one writes (case result.json, summary.json after calling
    ``opts.summarize`` on the final summary): EoT values resampled from recorded turns + ``shift``."""
    calls = {"n": 0}

    async def run(opts: Opts) -> RunOutcome:
        rep = calls["n"]
        calls["n"] += 1
        run_dir = opts.out_root / opts.run_id
        entries = []
        for cid in CASES:
            v = verdicts.get(cid, ["PASS"] * 9)[rep]
            turns = []
            for k in range(TURNS_PER_CASE):
                t = TurnResult(case_id=cid, trace_id=f"{cid}-t{k}", turn_index=k, audio_valid=True, verdict=v)
                t.latency.eot_to_first_audio_ms = float(rng.choice(RECORDED_EOT) + rng.normal(0, 10) + shift)
                turns.append(t)
            write_json(run_dir / cid / "result.json", CaseResult(case_id=cid, verdict=v, turns=turns))
            entries.append(CaseEntry(cid, v, turns=TURNS_PER_CASE, result=f"{cid}/result.json"))
        verdict = "FAIL" if any(e.verdict == "FAIL" for e in entries) else "PASS"
        summary = RunSummary(run_id=opts.run_id, suite=opts.suite, verdict=verdict, cases=entries)
        if opts.summarize is not None:
            summary.extra.update(opts.summarize(summary))
        write_json(run_dir / "summary.json", summary)
        return RunOutcome(run_dir, 1 if verdict == "FAIL" else 0, summary, [], [])

    return run


@pytest.fixture
def baseline(tmp_path):
    rng = np.random.default_rng(11)
    runner = fake_runner(rng, 0.0, {})
    dirs = []
    for i in range(3):
        o = asyncio.run(runner(Opts(out_root=tmp_path / "base", run_id=f"b{i}")))
        dirs.append(o.run_dir)
    _, base = save_baseline(dirs, "main", root=tmp_path / "baselines")
    return base


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_planted_100ms_regression_fails_the_run_and_no_change_does_not(tmp_path, baseline, seed):
    rng = np.random.default_rng(seed)
    slow = asyncio.run(run_repeated(Opts(out_root=tmp_path / "runs", run_id="slow"), 3, baseline=baseline,
                                    run=fake_runner(rng, 100.0, {})))
    same = asyncio.run(run_repeated(Opts(out_root=tmp_path / "runs", run_id="same"), 3, baseline=baseline,
                                    run=fake_runner(rng, 0.0, {})))
    eot = {r["key"]: r for r in slow.extra["baseline"]["rows"]}["eot_p50"]
    assert eot["verdict"] == "REGRESSION" and eot["n_run"] == 192 and eot["n_baseline"] == 192
    assert eot["ci_low"] > 0 and 40 < eot["delta"] < 160, eot
    assert slow.exit_code == 1 and slow.extra["baseline"]["regression"] is True
    same_eot = {r["key"]: r for r in same.extra["baseline"]["rows"]}["eot_p50"]
    assert same_eot["verdict"] == "UNCHANGED", same_eot
    assert same.exit_code == 0 and same.extra["baseline"]["regression"] is False
    # the last repeat's summary.json on disk carries the table (what the report renders)
    import json
    on_disk = json.loads((tmp_path / "runs" / "slow-r3" / "summary.json").read_text())
    assert on_disk["extra"]["baseline"]["rows"][0]["key"] and on_disk["extra"]["baseline"]["regression"] is True
    assert [o.run_dir.name for o in slow.outcomes] == ["slow-r1", "slow-r2", "slow-r3"]


def test_flake_rate_per_case_over_repeats(tmp_path):
    rng = np.random.default_rng(5)
    verdicts = {"case03": ["PASS", "FAIL", "PASS"], "case07": ["FAIL", "FAIL", "FAIL"]}
    res = asyncio.run(run_repeated(Opts(out_root=tmp_path, run_id="rep"), 3, baseline=None,
                                   run=fake_runner(rng, 0.0, verdicts)))
    flake = {f["case_id"]: f for f in res.extra["repeat"]["flake"]}
    assert res.extra["repeat"]["runs"] == ["rep-r1", "rep-r2", "rep-r3"]
    assert flake["case03"]["flaky"] and flake["case03"]["flake_rate"] == pytest.approx(1 / 3)
    assert not flake["case07"]["flaky"] and flake["case07"]["fail_rate"] == 1.0
    assert flake["case00"]["flake_rate"] == 0.0 and "baseline" not in res.extra
    assert res.exit_code == 1  # gate failures still fail the run


def test_exit_codes_and_ids():
    assert combine_exit_codes([0, 0], False) == 0
    assert combine_exit_codes([0, 0], True) == 1
    assert combine_exit_codes([1, 2, 0], True) == 2
    assert repeat_run_ids("r", 1) == ["r"] and repeat_run_ids("r", 2) == ["r-r1", "r-r2"]
    with pytest.raises(ValueError, match="--repeat 0"):
        repeat_run_ids("r", 0)

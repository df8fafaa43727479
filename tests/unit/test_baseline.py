"""Baselines: a planted +100 ms EoT regression is flagged, a no-change resample is not; the minimum
effect and the direction of each metric hold; baselines round-trip through run folders; flake rates."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from autortc.baseline import (
    MIN_SAMPLES,
    BaselineError,
    Effect,
    compare,
    compare_run,
    compare_values,
    delta_table,
    flake_rates,
    list_baselines,
    load_baseline,
    load_effects,
    save_baseline,
    verdicts_by_case,
)
from autortc.results import CaseEntry, CaseResult, RunSummary, TurnResult, write_json

pytestmark = pytest.mark.unit

# EoT -> first audio (ms) of every turn of two recorded fast-suite runs on this 2-core machine
# (/work/wt16a/output/runs/before16 and /work/wt19/output/runs/s1-ct2, 2026-12-02): SD ~ 220 ms,
# the same case barely correlated between runs (r = 0.09), i.e. turn-level noise dominates.
RECORDED_EOT = np.array([
    1100.4, 1440.3, 1008.7, 1438.5, 1337.9, 1108.3, 1801.3, 1353.0, 1383.3, 1892.7, 1082.4, 1056.7, 1115.2, 1457.9,
    1330.1, 1159.8, 1052.1, 1431.4, 913.8, 924.7, 1029.4, 953.3, 968.6, 925.5, 922.1, 887.4, 1067.8, 887.8, 1113.3,
    1410.2, 993.8, 796.7])

EOT = Effect(key="eot_p50", metric="latency.eot_to_first_audio_ms", worse="higher", min_effect=50.0, source="issue 20")
MOS = Effect(key="mos_p50", metric="perceptual.mos_lqo", worse="lower", min_effect=0.2, source="issue 20")


def _draw(rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
    """``n`` turns resampled from the recorded spread, 10 ms of measurement jitter, plus ``shift``."""
    return rng.choice(RECORDED_EOT, n) + rng.normal(0.0, 10.0, n) + shift


# Ten repeats of the 16-case fast suite per side: with the recorded spread a 100 ms median shift
# needs about that many turns (the interval's half-width is ~60 ms at 160 turns, ~150 ms at 16).
N_TURNS = 160
SEEDS = range(20)


def test_planted_100ms_eot_regression_is_flagged_and_no_change_is_not():
    flagged_planted = flagged_null = 0
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        base = _draw(rng, N_TURNS)
        planted = compare_values(EOT, base, _draw(rng, N_TURNS, shift=100.0), seed=seed)
        null = compare_values(EOT, base, _draw(rng, N_TURNS), seed=seed)
        flagged_planted += planted.verdict == "REGRESSION"
        flagged_null += null.verdict == "REGRESSION"
        if planted.verdict == "REGRESSION":  # the interval is around the planted shift, not just above 0
            assert planted.ci_low <= 100.0 + 60 and planted.ci_high >= 100.0 - 60, planted
    print(f"planted +100 ms flagged {flagged_planted}/{len(SEEDS)}; no-change flagged {flagged_null}/{len(SEEDS)}")
    assert flagged_planted >= 16, f"planted regression flagged only {flagged_planted}/{len(SEEDS)} times"
    assert flagged_null <= 1, f"no-change resample flagged {flagged_null}/{len(SEEDS)} times"


def test_a_shift_below_the_minimum_effect_is_not_a_regression():
    # +30 ms on a tight distribution: clearly significant, but under EoT's 50 ms minimum.
    rng = np.random.default_rng(1)
    base = 900.0 + rng.normal(0, 5, 60)
    row = compare_values(EOT, base, 930.0 + rng.normal(0, 5, 60))
    assert row.ci_low > 0, row  # significant...
    assert row.verdict == "UNCHANGED" and "smaller than the minimum" in row.reason
    # the same spread shifted by 80 ms crosses it
    assert compare_values(EOT, base, 980.0 + rng.normal(0, 5, 60)).verdict == "REGRESSION"


def test_direction_follows_the_metric():
    rng = np.random.default_rng(2)
    base = 4.2 + rng.normal(0, 0.05, 40)
    assert compare_values(MOS, base, 3.9 + rng.normal(0, 0.05, 40)).verdict == "REGRESSION"  # MOS fell 0.3
    assert compare_values(MOS, base, 4.5 + rng.normal(0, 0.05, 40)).verdict == "IMPROVED"
    eot_base = _draw(rng, N_TURNS)
    assert compare_values(EOT, eot_base, eot_base - 300.0).verdict == "IMPROVED"


def test_too_few_values_is_no_data():
    row = compare_values(EOT, np.arange(MIN_SAMPLES - 1) * 10.0 + 900, np.arange(20) * 10.0 + 2000)
    assert row.verdict == "NO_DATA" and row.delta is None and "needs >=" in row.reason


def test_valid_min_drops_not_measured_markers():
    mel = Effect(key="mel", metric="fidelity.mel_distance", worse="higher", min_effect=0.5, valid_min=0.0, source="t")
    base = np.array([1.1, 1.0, 1.2, 1.1, 1.05, 1.15, 1.1])
    run = np.array([-1.0] * 10 + [1.1, 1.0, 1.2, 1.1, 1.05, 1.15])
    row = compare_values(mel, base, run)
    assert row.n_run == 6 and row.verdict == "UNCHANGED"


def test_default_effects_name_their_sources_and_hold_the_issue_numbers():
    effects = {e.key: e for e in load_effects()}
    assert effects["eot_p50"].min_effect == 50 and effects["eot_p50"].worse == "higher"
    assert effects["mos_p50"].min_effect == 0.2 and effects["mos_p50"].worse == "lower"
    assert effects["hf_drop_p50"].min_effect == 0.1 and effects["hf_drop_p50"].worse == "higher"
    assert all(e.source for e in effects.values())


def test_bad_effects_file_names_the_field(tmp_path):
    p = tmp_path / "eff.toml"
    p.write_text('[effects.x]\nmetric = "latency.eot_to_first_audio_ms"\nworse = "up"\nmin_effect = 50\nsource = "s"\n')
    with pytest.raises(BaselineError, match=r"eff.toml: effects.x: worse"):
        load_effects(p)


# --------------------------------------------------------------------------- through run folders


def _write_run(root, run_id: str, eots: np.ndarray, *, hf: float = 0.4) -> None:
    run = root / run_id
    entries = []
    per_case = 4
    for c in range(len(eots) // per_case):
        cid = f"case{c:02d}"
        turns = []
        for k in range(per_case):
            t = TurnResult(case_id=cid, trace_id=f"{cid}-t{k}", turn_index=k, audio_valid=True, verdict="PASS")
            t.latency.eot_to_first_audio_ms = float(eots[c * per_case + k])
            t.fingerprints.hf_ratio_drop = hf + 0.01 * k
            t.fidelity.mel_distance = -1.0 if k == 0 else 1.1
            turns.append(t)
        write_json(run / cid / "result.json", CaseResult(case_id=cid, verdict="PASS", turns=turns))
        entries.append(CaseEntry(cid, "PASS", turns=per_case, result=f"{cid}/result.json"))
    write_json(run / "summary.json", RunSummary(run_id=run_id, suite="fast", verdict="PASS", cases=entries))


def test_save_list_load_and_compare_a_run(tmp_path):
    rng = np.random.default_rng(7)
    runs = tmp_path / "runs"
    for i in range(3):
        _write_run(runs, f"base{i}", _draw(rng, 64))
    _write_run(runs, "slow", _draw(rng, 160, shift=150.0), hf=0.6)
    _write_run(runs, "same", _draw(rng, 160))
    root = tmp_path / "baselines"
    path, base = save_baseline([runs / f"base{i}" for i in range(3)], "main", root=root)
    assert path == root / "main.json" and [p.name for p in list_baselines(root)] == ["main.json"]
    assert len(base.metrics["latency.eot_to_first_audio_ms"]) == 192
    assert "latency.first_audio_t" not in base.metrics and "turn_index" not in base.metrics
    loaded = load_baseline("main", root=root)
    assert loaded == base
    slow = {r.key: r for r in compare_run(runs / "slow", loaded)}
    assert slow["eot_p50"].verdict == "REGRESSION"
    assert slow["hf_drop_p50"].verdict == "REGRESSION"  # 0.4 -> 0.6: +0.2 > 0.1
    assert slow["mel_distance_p50"].n_run == 120  # the -1 markers are not distances
    assert slow["mos_p50"].verdict == "NO_DATA"  # never scored in these runs
    same = {r.key: r for r in compare_run(runs / "same", loaded)}
    assert same["eot_p50"].verdict != "REGRESSION" and same["hf_drop_p50"].verdict == "UNCHANGED"
    # the table renders with units, a signed delta and the interval
    from io import StringIO

    from rich.console import Console

    buf = StringIO()
    Console(file=buf, width=160, color_system=None).print(delta_table(list(slow.values())))
    out = buf.getvalue()
    assert re.search(r"eot\s+192/160\s+\d+ ms\s+\d+ ms\s+\+\d+ ms\s+\[\+\d+, \+\d+\] ms\s+\+50 ms\s+REGRESSION", out), out
    assert "+50 ms" in out and "−0.20" in out  # min effects carry the bad direction's sign


def test_baseline_errors_name_the_file(tmp_path):
    with pytest.raises(BaselineError, match="no such baseline"):
        load_baseline("nope", root=tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps({"v": 1, "name": "bad"}))
    with pytest.raises(BaselineError, match=r"bad.json: not a valid baseline file .*created_at"):
        load_baseline("bad", root=tmp_path)
    with pytest.raises(BaselineError, match="not a run folder"):
        save_baseline([tmp_path / "missing"], "x", root=tmp_path)
    with pytest.raises(BaselineError, match="baseline name"):
        save_baseline([tmp_path], "../up", root=tmp_path)


def test_compare_accepts_plain_floats():
    rng = np.random.default_rng(3)
    from autortc.baseline import Baseline, BaselineRun, TurnValue

    vals = _draw(rng, 40)
    b = Baseline(name="b", created_at="2026-12-02T00:00:00+00:00", runs=[BaselineRun(run_id="r", path="r")],
                 metrics={"latency.eot_to_first_audio_ms": [TurnValue(case_id="c", trace_id=f"t{i}", run_id="r",
                                                                       value=float(v)) for i, v in enumerate(vals)]})
    rows = compare(b, {"latency.eot_to_first_audio_ms": list(vals + 400.0)}, [EOT])
    assert rows[0].verdict == "REGRESSION" and rows[0].n_run == 40


# --------------------------------------------------------------------------- flake


def test_flake_rates_per_case():
    rates = {f.case_id: f for f in flake_rates({
        "steady": ["PASS", "PASS", "WARN", "PASS"],
        "flaky": ["PASS", "FAIL", "PASS", "PASS"],
        "broken": ["FAIL", "FAIL", "FAIL", "FAIL"],
        "harness": ["PASS", "ERROR", "PASS", "SKIP"],
    })}
    assert rates["steady"].flake_rate == 0 and not rates["steady"].flaky and rates["steady"].fail_rate == 0
    assert rates["flaky"].flake_rate == 0.25 and rates["flaky"].flaky and rates["flaky"].fail_rate == 0.25
    assert rates["broken"].flake_rate == 0 and not rates["broken"].flaky and rates["broken"].fail_rate == 1
    h = rates["harness"]
    assert (h.passed, h.failed, h.errors, h.skipped, h.flaky) == (2, 0, 1, 1, False)
    # Wilson interval of 1 fail in 4: wide, contains the point estimate
    assert 0 < rates["flaky"].ci_low < 0.25 < rates["flaky"].ci_high < 0.8
    assert next(iter(flake_rates({"a": ["PASS"] * 3, "b": ["PASS", "FAIL", "FAIL"]}))).case_id == "b"
    with pytest.raises(ValueError, match="case 'x' repeat 1: unknown verdict 'OK'"):
        flake_rates({"x": ["PASS", "OK"]})


def test_verdicts_by_case_from_summaries():
    s1 = RunSummary(run_id="1", cases=[CaseEntry("a", "PASS"), CaseEntry("b", "FAIL", error="harness: timeout")])
    s2 = RunSummary(run_id="2", cases=[CaseEntry("a", "FAIL")])
    assert verdicts_by_case([s1, s2]) == {"a": ["PASS", "FAIL"], "b": ["ERROR", "SKIP"]}


def test_cli_save_list_compare_flake(tmp_path):
    import typer
    from typer.testing import CliRunner

    from autortc.commands import baseline as cmd

    app = typer.Typer()
    cmd.register(app)
    rng = np.random.default_rng(11)
    runs = tmp_path / "runs"
    _write_run(runs, "b1", _draw(rng, 80))
    _write_run(runs, "b2", _draw(rng, 80))
    _write_run(runs, "slow", _draw(rng, 160, shift=200.0))
    cli = CliRunner()
    common = ["--runs", str(runs)]
    out = cli.invoke(app, ["baseline", "save", "b1", "b2", "--name", "nightly", *common, "--out", str(tmp_path / "bl")])
    assert out.exit_code == 0 and "saved baseline 'nightly': 2 run(s)" in out.output, out.output
    out = cli.invoke(app, ["baseline", "list", "--out", str(tmp_path / "bl")])
    assert out.exit_code == 0 and "nightly" in out.output and "[b1, b2]" in out.output
    out = cli.invoke(app, ["baseline", "compare", "slow", "-b", "nightly", *common, "--out", str(tmp_path / "bl")])
    assert out.exit_code == 1, out.output  # significant regression -> exit 1
    out = cli.invoke(app, ["baseline", "compare", "b1", "-b", "nightly", *common, "--out", str(tmp_path / "bl")])
    assert out.exit_code == 0, out.output
    out = cli.invoke(app, ["baseline", "compare", "nope", "-b", "nightly", *common])
    assert out.exit_code == 2 and "nope" in out.output
    out = cli.invoke(app, ["baseline", "flake", "b1", "b2", "slow", *common])
    assert out.exit_code == 0 and "case00" in out.output and "flake" in out.output

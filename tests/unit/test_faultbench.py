"""Fault bench plan and scoring: seeded, reproducible, and scored by rules that can fail."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autortc.cases import load_cases
from autortc.faultbench import (
    CATALOGUE,
    BenchCase,
    PlanError,
    ScoreInputError,
    TurnOutcome,
    Verdict,
    by_name,
    gate_coverage,
    make_plan,
    score,
    wilson,
)
from autortc.faultbench import render
from autortc.gates import load_gates
from system.agent.faults import parse_metadata

pytestmark = pytest.mark.unit

CASES_FILE = Path(__file__).resolve().parents[2] / "cases" / "all_cases.json"


@pytest.fixture(scope="module")
def cases() -> list[BenchCase]:
    return [BenchCase.from_case(c) for c in load_cases(CASES_FILE)]


# -- catalogue --------------------------------------------------------------------------------


def test_catalogue_covers_every_fault_of_issue_17():
    kinds = {e.kind for e in CATALOGUE}
    assert kinds == {
        "lost_frame", "gap", "noise_dropout", "stall", "rate_22k_as_24k", "lowpass", "head_cut", "tail_cut",
        "clipping", "click", "repeat", "wrong_words", "delay", "premature", "no_reply", "no_yield", "false_yield",
    }
    names = by_name()
    assert names["gap_60"].spec["ms"] == 60 and names["gap_150"].spec["ms"] == 150
    assert names["lost_frame_20"].level == "FAIL" and names["lowpass_3k4"].level in ("WARN", "FAIL")
    assert {names["delay_300"].spec["ms"], names["delay_600"].spec["ms"]} == {300, 600}
    for e in CATALOGUE:
        assert e.why and (e.timing or (e.gates and e.level in ("WARN", "FAIL"))), e.name


def test_every_gate_the_catalogue_expects_exists_in_the_defaults():
    names = {g.name for g in load_gates()}
    assert gate_coverage(names).missing == {}
    cov = gate_coverage(names - {"talk_over"})  # a gate gone from the defaults is named per fault
    assert cov.missing["premature_500"] == ("talk_over",)
    assert "lost_frame_20" not in cov.missing


# -- plan -------------------------------------------------------------------------------------


def test_plan_is_seeded_complete_and_every_item_is_valid_agent_metadata(cases):
    plan = make_plan(cases, seed=1234, k=5, clean=50, delay_pairs=20)
    assert plan == make_plan(cases, seed=1234, k=5, clean=50, delay_pairs=20)
    other = make_plan(cases, seed=1235, k=5, clean=50, delay_pairs=20)
    assert [i.spec for i in other.items] != [i.spec for i in plan.items]
    counts = plan.counts()
    for e in CATALOGUE:
        assert counts[e.name] == (20 if e.timing else 5), e.name
    assert counts["clean"] == 50
    faulted_cases = {i.case_id for i in plan.items if i.fault}
    assert {i.case_id for i in plan.items if i.fault is None} == faulted_cases  # same cases, clean and faulted
    tags = {c.id: c.tags for c in cases}
    for it in plan.items:
        case_id, spec = parse_metadata(json.dumps(it.metadata()), source=f"plan item {it.index}")
        assert case_id == it.case_id
        if it.fault is None:
            assert spec is None
            continue
        e = by_name()[it.fault]
        assert spec.kind == e.kind
        for t in e.needs:
            assert t in tags[it.case_id]
        if e.at_ms_range:
            assert e.at_ms_range[0] <= spec.at_ms <= e.at_ms_range[1]
    assert [i.index for i in plan.items] == list(range(len(plan.items)))


def test_delay_pairs_are_consecutive_on_one_case_and_alternate(cases):
    plan = make_plan(cases, seed=9, k=1, clean=4, delay_pairs=6)
    delays = [i for i in plan.items if i.fault in ("delay_300", "delay_600")]
    assert len(delays) == 12 and len({i.case_id for i in delays}) == 1
    firsts = []
    for pair in range(6):
        a, b = [i for i in delays if i.pair == pair]
        assert b.index == a.index + 1 and {a.fault, b.fault} == {"delay_300", "delay_600"}
        firsts.append(a.fault)
    assert firsts == ["delay_300", "delay_600"] * 3


def test_positions_are_spread_not_hand_picked(cases):
    plan = make_plan(cases, seed=5, k=40, clean=0, delay_pairs=0, faults=["gap_60"])
    at = np.array([i.spec["at_ms"] for i in plan.items])
    assert len(set(at)) == 40 and at.min() < 400 and at.max() > 1300


def test_plan_errors_name_what_is_missing(cases):
    with pytest.raises(PlanError, match="no case fits fault no_yield"):
        make_plan([c for c in cases if "barge_in" not in c.tags], seed=1, faults=["no_yield"])
    with pytest.raises(PlanError, match="unknown faults"):
        make_plan(cases, seed=1, faults=["gap_61"])


# -- statistics ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "k, n, low, high",
    # Newcombe (1998), Statistics in Medicine 17:857-872, Table I, method 3 (Wilson score)
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718),
     (29, 29, 0.8830, 1.0)],
)
def test_wilson_interval_matches_published_values(k, n, low, high):
    lo, hi = wilson(k, n)
    assert (round(lo, 4), round(hi, 4)) == (low, high)


def test_wilson_of_nothing_is_none():
    assert wilson(0, 0) is None


# -- scoring --------------------------------------------------------------------------------------


def _truth(kind, planted=True, **kw):
    return {"kind": kind, "planted": planted, **kw}


def _turn(item, fault, verdicts=(), truth=(), **kw):
    return TurnOutcome(item=item, case_id="c", fault=fault, verdicts=tuple(Verdict(*v) for v in verdicts),
                       truth=tuple(truth), **kw)


def test_recall_counts_only_the_expected_gate_at_the_expected_level():
    turns = [
        _turn(0, "gap_60", [("audible_dropout", "FAIL", 1.0), ("max_gap", "PASS", 64.0)], [_truth("gap", size_ms=60.0)]),
        _turn(1, "gap_60", [("audible_dropout", "WARN", 1.0)], [_truth("gap", size_ms=60.0)]),  # WARN < FAIL
        _turn(2, "gap_60", [("max_gap", "FAIL", 300.0)], [_truth("gap", size_ms=60.0)]),  # wrong gate
        _turn(3, "gap_60", [("audible_dropout", "SKIP", None)], [_truth("gap", size_ms=60.0)]),  # unmeasured
        _turn(4, "gap_60", [("audible_dropout", "FAIL", 1.0)], [_truth("gap", planted=False)]),  # not planted
        _turn(5, "gap_60", [], [], error="room never came up"),
        _turn(6, "repeat_40", [("repeats", "FAIL", 2.0)], [_truth("repeat", size_ms=40.0)]),  # FAIL >= WARN
        _turn(7, "repeat_40", [("repeats", "WARN", 1.0)], [_truth("repeat", size_ms=40.0)]),
        _turn(8, None, [("audible_dropout", "PASS", 0.0)]),
    ]
    s = score(turns)
    gap, rep = (next(r for r in s.rows if r.name == n) for n in ("gap_60", "repeat_40"))
    assert (gap.runs, gap.planted, gap.caught, gap.not_planted, gap.harness_errors) == (6, 4, 1, 1, 1)
    assert gap.recall == 0.25 and gap.wilson95 == wilson(1, 4) and gap.passed is False
    assert gap.values[0] == {"item": 0, "case_id": "c", "planted": 60.0, "measured": 64.0, "caught": True}
    assert (rep.caught, rep.planted, rep.passed) == (2, 2, True)
    assert not s.passed and any("gap_60" in r for r in s.reasons)


def test_turn_faults_need_no_audio_truth_but_audio_faults_do():
    s = score([_turn(0, "no_reply", [("no_reply", "FAIL", None)]), _turn(1, "lowpass_3k4", [("hf_loss", "WARN", 9.0)])])
    rows = {r.name: r for r in s.rows}
    assert rows["no_reply"].caught == 1 and rows["lowpass_3k4"].planted == 0 and rows["lowpass_3k4"].not_planted == 1
    assert any("lowpass_3k4: no planted turn" in r for r in s.reasons)


def test_false_alarms_per_gate_and_exit_rule():
    caught = [_turn(i, "gap_60", [("audible_dropout", "FAIL", 1.0)], [_truth("gap")]) for i in range(20)]
    clean = [_turn(100 + i, None, [("audible_dropout", "PASS", 0.0), ("peak_spike", "WARN" if i < 2 else "PASS", 1.0)])
             for i in range(50)]
    clean.append(_turn(200, None, [("max_gap", "FAIL", 250.0)]))
    clean.append(_turn(201, None, [("max_gap", "FAIL", 250.0)], error="probe never joined"))  # not run: not counted
    s = score(caught + clean)
    assert s.clean_turns == 51 and s.clean_harness_errors == 1
    assert s.false_alarms == {"peak_spike": {"WARN": 2, "FAIL": 0}, "max_gap": {"WARN": 0, "FAIL": 1}}
    assert s.false_alarm_total == 3 and not s.passed
    assert score(caught + clean, max_false_alarms=3).passed
    s2 = score(caught + clean[:-2])
    assert s2.false_alarm_total == 2 and not s2.passed
    ok = score(caught + [t for t in clean if not t.verdicts or all(v.status == "PASS" for v in t.verdicts)])
    assert ok.passed and ok.false_alarm_total == 0
    assert not score(caught).passed  # no clean turn: false alarms not measured


def test_recall_threshold_is_inclusive():
    turns = [_turn(i, "gap_60", [("audible_dropout", "FAIL" if i < 19 else "PASS", 1.0)], [_truth("gap")]) for i in range(20)]
    turns.append(_turn(99, None, []))
    s = score(turns, min_recall=0.95)
    assert s.passed and s.rows[0].passed and s.rows[0].recall == 0.95  # 19/20 meets 0.95
    assert not score(turns, min_recall=0.96).passed


def test_delay_recovery_median_and_bootstrap_interval():
    offsets = [-12.0, -3.0, 0.0, 4.0, 5.0, 9.0, 30.0]  # paired differences minus 300 ms; median +4
    turns = []
    for p, off in enumerate(offsets):
        base = 400.0 + 37.0 * p  # the path moves from pair to pair; the difference cancels it
        turns.append(_turn(2 * p, "delay_300", [], [_truth("delay", size_ms=300.0)], latency_ms=base + 300, pair=p))
        turns.append(_turn(2 * p + 1, "delay_600", [], [_truth("delay", size_ms=600.0)], latency_ms=base + 600 + off, pair=p))
    turns.append(_turn(50, "delay_600", [], [], latency_ms=1e9, pair=77))  # unpaired: ignored
    d = score(turns).delay
    assert d.planted_diff_ms == 300 and d.pairs == 7 and d.median_ms == 304.0 and d.error_ms == 4.0
    assert 300 - 12 <= d.ci95_ms[0] <= 304 <= d.ci95_ms[1] <= 330
    assert score(turns).delay == d  # seeded bootstrap


def test_delay_recovery_on_the_downlink_part_pairs_downlink_not_latency():
    # planted: the whole latency moves by +/-150 ms with the uplink (room to room), the downlink part
    # carries the planted silence plus a few ms; only the downlink pairs recover 300 ms closely
    import dataclasses

    turns = []
    for p in range(9):
        up = 150.0 * (-1) ** p  # the uplink's spread, in the latency only
        dl = 100.0 + p  # the path's downlink
        for i, (fault, ms) in enumerate((("delay_300", 300.0), ("delay_600", 600.0))):
            t = _turn(2 * p + i, fault, [], [_truth("delay", size_ms=ms)], latency_ms=500.0 + ms + dl + up * i, pair=p)
            turns.append(dataclasses.replace(t, downlink_ms=ms + dl + (2.0 if i else 0.0)))
    s = score(turns)
    assert s.delay_downlink.part == "downlink_ms" and s.delay_downlink.pairs == 9
    assert s.delay_downlink.median_ms == pytest.approx(302.0)
    assert abs(s.delay.error_ms) == pytest.approx(150.0)  # the latency pairs carry the uplink's spread


def test_bad_outcomes_are_named():
    with pytest.raises(ScoreInputError, match="turn outcome 3: unknown fault"):
        score([_turn(3, "gap_61")])
    with pytest.raises(ScoreInputError, match="turn outcome 4: gate max_gap: status 'BAD'"):
        score([_turn(4, None, [("max_gap", "BAD", 1.0)])])
    with pytest.raises(ScoreInputError, match="turn outcome 7"):
        TurnOutcome.from_dict({"item": 7, "verdicts": []})


def test_render_markdown_and_json(tmp_path, cases):
    plan = make_plan(cases, seed=42, k=2, clean=4, delay_pairs=2, faults=["gap_60", "lowpass_3k4", "delay_300", "delay_600"])
    turns = []
    for it in plan.items:
        if it.fault == "gap_60":
            turns.append(_turn(it.index, it.fault, [("audible_dropout", "FAIL", 1.0), ("max_gap", "PASS", 61.0)],
                               [_truth("gap", size_ms=60.0)]))
        elif it.fault == "lowpass_3k4":
            turns.append(_turn(it.index, it.fault, [("hf_loss", "PASS", 0.1)], [_truth("lowpass", extra={"cutoff_hz": 3400.0})]))
        elif it.fault:
            turns.append(_turn(it.index, it.fault, [], [_truth("delay")], latency_ms=500.0 + float(it.spec["ms"]), pair=it.pair))
        else:
            turns.append(_turn(it.index, None, [("max_gap", "PASS", 50.0)]))
    s = score(turns)
    md = render.to_markdown(s, plan=plan)
    assert "| gap_60 | path | audible_dropout (FAIL) | 2/2 | 1.00 |" in md
    assert "| lowpass_3k4 ✗ |" in md and "3400 → 0.1" in md
    assert "seed `42`" in md and "Delay recovery (EoT → first audio): planted 300 ms, measured median 300.0 ms" in md and "**FAIL**" in md
    j, m = render.write(tmp_path, s, plan=plan, extra={"command": "autortc faultbench --seed 42"})
    data = json.loads(j.read_text())
    assert data["v"] == 1 and data["plan"]["seed"] == 42 and data["command"].startswith("autortc")
    assert {r["name"] for r in data["score"]["rows"]} == {"gap_60", "lowpass_3k4", "delay_300", "delay_600"}
    assert m.read_text() == md
    back = [TurnOutcome.from_dict({"item": t.item, "case_id": t.case_id, "fault": t.fault, "truth": list(t.truth),
                                   "verdicts": [v.__dict__ for v in t.verdicts], "latency_ms": t.latency_ms,
                                   "pair": t.pair}) for t in turns]
    assert score(back) == s

import numpy as np
import pytest

from autortc.gates import GateConfigError, build_run_summary, evaluate_run, evaluate_turn, load_gates
from autortc.results import CaseResult, TurnResult

pytestmark = pytest.mark.unit


def _turn(case="c", tid="t", p="P0", **kw):
    t = TurnResult(case_id=case, trace_id=tid, p_level=p, audio_valid=kw.pop("valid", True))
    t.latency.eot_to_first_audio_ms = kw.pop("eot", 300.0)
    t.continuity.max_gap_ms = kw.pop("gap", 50.0)
    t.continuity.audible_dropouts = kw.pop("drops", 0)
    t.level.clipping_ratio = kw.pop("clip", 0.0)
    t.latency.user_kpi_ms = kw.pop("kpi", None)
    assert not kw
    return t


def test_defaults_hold_the_seed_gates():
    g = load_gates()
    assert g.get("eot_to_first_audio").fail == 650 and g.get("eot_to_first_audio").aggregate == "p95"
    assert g.get("tts_first_to_publish").fail == 120
    assert g.get("audible_dropout").op == "==" and g.get("audible_dropout").fail == 0
    assert g.get("max_gap").op == "<" and g.get("max_gap").fail == 200
    assert g.get("clipping").fail == 0.001
    assert g.get("llm_ttft").fail == 80
    assert g.get("audio_valid").fail == 1.0 and g.get("audio_valid").p_levels == ("P0",)
    assert g.get("inter_arrival").fail == 30
    assert g.get("user_kpi").warn == 900
    assert not g.get("mos_lqo").enabled


@pytest.mark.parametrize("gap,want", [(199.9, "PASS"), (200.0, "FAIL"), (None, "SKIP")])
def test_turn_gate_boundaries(gap, want):
    t = _turn(gap=gap)
    v = next(v for v in evaluate_turn(t, load_gates()) if v.gate == "max_gap")
    assert v.status == want
    assert v.threshold == 200.0 and v.case_id == "c" and v.trace_id == "t"
    assert v.measured == gap


def test_p_levels_filter():
    t = _turn(p="P1", gap=500.0)
    assert "max_gap" not in {v.gate for v in evaluate_turn(t, load_gates())}


def test_run_gate_p95_and_worst_turn():
    turns = [_turn(tid=f"t{i}", eot=300.0 + i) for i in range(18)] + [_turn(tid="slow", eot=2000.0),
                                                                      _turn(tid="slow2", eot=1900.0)]
    case = CaseResult(case_id="c", turns=turns)
    v = next(v for v in evaluate_run([case], load_gates()) if v.gate == "eot_to_first_audio")
    import numpy as np

    assert v.measured == pytest.approx(np.percentile([t.latency.eot_to_first_audio_ms for t in turns], 95))
    assert v.status == "FAIL" and v.trace_id == "slow" and v.n == 20
    # a single slow turn only warns at turn level: the gate is on the P95
    tv = next(x for x in evaluate_turn(turns[-1], load_gates()) if x.gate == "eot_to_first_audio")
    assert tv.status == "WARN"


def test_user_kpi_warn_and_fail():
    g = load_gates()
    mk = lambda k: [CaseResult(case_id="c", turns=[_turn(kpi=k)])]
    status = lambda k: next(v for v in evaluate_run(mk(k), g) if v.gate == "user_kpi").status
    assert status(500.0) == "PASS" and status(950.0) == "WARN" and status(1600.0) == "FAIL"
    g2 = g.override({"user_kpi": {"fail": 1000.0}}, source="suite.toml")
    assert next(v for v in evaluate_run(mk(1100.0), g2) if v.gate == "user_kpi").status == "FAIL"
    # browser values can come from outside the turn folders
    v = next(v for v in evaluate_run(mk(None), g, extra_values={"latency.user_kpi_ms": [100, 950, 960]})
             if v.gate == "user_kpi")
    assert v.status == "WARN" and v.n == 3


def test_audio_valid_rate_fails_on_one_silent_p0_turn():
    cases = [CaseResult(case_id="a", turns=[_turn("a")]), CaseResult(case_id="b", turns=[_turn("b", valid=False)])]
    v = next(v for v in evaluate_run(cases, load_gates()) if v.gate == "audio_valid")
    assert v.status == "FAIL" and v.measured == 0.5 and v.case_id == "b"


def test_overrides_per_suite_and_case(tmp_path):
    g = load_gates()
    suite = tmp_path / "suite.toml"
    suite.write_text('[gates.max_gap]\nfail = 300.0\n[gates.clipping]\nenabled = false\n')
    g1 = g.override_file(suite)
    assert g1.get("max_gap").fail == 300.0 and not g1.get("clipping").enabled
    g2 = g1.override({"max_gap": {"fail": 120.0}}, source="cases/x.json")
    assert g2.get("max_gap").fail == 120.0 and g1.get("max_gap").fail == 300.0
    t = _turn(gap=150.0, clip=0.5)
    vs = {v.gate: v.status for v in evaluate_turn(t, g2)}
    assert vs["max_gap"] == "FAIL" and "clipping" not in vs


@pytest.mark.parametrize("table,needle", [
    ({"max_gapp": {"fail": 1}}, "gates.max_gapp: unknown gate"),
    ({"max_gap": {"fial": 1}}, "gates.max_gap: unknown key"),
    ({"max_gap": {"fail": "x"}}, "gates.max_gap.fail: expected a number"),
    ({"max_gap": {"op": "=<"}}, "gates.max_gap.op"),
])
def test_bad_overrides_name_source_and_field(table, needle):
    with pytest.raises(GateConfigError) as e:
        load_gates().override(table, source="suites/fast.toml")
    assert "suites/fast.toml" in str(e.value) and needle in str(e.value)


def test_bad_gate_file(tmp_path):
    p = tmp_path / "g.toml"
    p.write_text("[gates.x\n")
    with pytest.raises(GateConfigError, match="g.toml"):
        load_gates().override_file(p)


def test_run_summary_verdict():
    ok = CaseResult(case_id="a", turns=[_turn("a")])
    ok.turns[0].verdict = "PASS"
    bad = CaseResult(case_id="b", error="agent never joined")
    s = build_run_summary("r1", [ok, bad], load_gates(), suite="fast")
    assert [c.verdict for c in s.cases] == ["PASS", "FAIL"]
    assert s.verdict == "FAIL"
    assert s.cases[0].result == "a/result.json"


def test_bare_number_override_and_gate_file_on_top_of_defaults(tmp_path):
    g = load_gates().override({"max_gap": 250, "peak_spike": 2}, source="cases.json:x")
    assert g.get("max_gap").fail == 250.0
    assert g.get("peak_spike").warn == 2.0 and g.get("peak_spike").fail is None
    p = tmp_path / "ci.toml"
    p.write_text('[gates.eot_to_first_audio]\nfail = 800.0\n'
                 '[gates.wer]\nmetric = "content.wer"\nop = "<="\nfail = 0.3\n')
    g2 = load_gates(p)
    assert g2.get("eot_to_first_audio").fail == 800.0 and g2.get("max_gap").fail == 200.0
    t = _turn()
    t.content.wer = 0.5
    assert next(v for v in evaluate_turn(t, g2) if v.gate == "wer").status == "FAIL"


# ---- the gates stage: per-case overrides at run level (issue 16)

from autortc.gates import RunGates, judge_case, judge_run, judge_turn  # noqa: E402


def _judged(rg, case_id, overrides=None, **kw):
    gs = rg.for_case(case_id, overrides, source=f"cases.json:{case_id}")
    t = judge_turn(_turn(case_id, f"{case_id}-t0", **kw), gs)
    c = CaseResult(case_id=case_id, turns=[t])
    c.verdict = judge_case(c)
    return c


def test_case_override_of_a_turn_gate_holds_at_run_level():
    rg = RunGates(load_gates())
    lenient = _judged(rg, "lenient", {"max_gap": 300.0}, gap=250.0)
    plain = _judged(rg, "plain", gap=50.0)
    assert lenient.verdict == "PASS"
    s = judge_run("r", [lenient, plain], rg)
    gap = next(v for v in s.gates if v.gate == "max_gap")
    assert gap.status == "PASS" and gap.threshold == 200.0, gap
    assert s.verdict == "PASS"
    assert [g.fail for g in s.case_gates["lenient"]] == [300.0] and "plain" not in s.case_gates
    # the same turns without the override: the run fails on the 250 ms gap
    rg2 = RunGates(load_gates())
    s2 = judge_run("r", [_judged(rg2, "lenient", gap=250.0), _judged(rg2, "plain", gap=50.0)], rg2)
    assert next(v for v in s2.gates if v.gate == "max_gap").status == "FAIL" and s2.verdict == "FAIL"


def test_case_override_of_a_run_gate_is_judged_apart_and_still_judged():
    rg = RunGates(load_gates())
    fast = [_judged(rg, f"f{i}", eot=300.0 + i) for i in range(10)]
    slow = _judged(rg, "slow", {"eot_to_first_audio": 1500.0}, eot=1200.0)
    s = judge_run("r", fast + [slow], rg)
    eot = next(v for v in s.gates if v.gate == "eot_to_first_audio")
    assert eot.status == "PASS" and eot.threshold == 650.0 and eot.n == 11, eot
    assert eot.measured == pytest.approx(np.percentile([300.0 + i for i in range(10)], 95))
    assert "slow judged by their override <= 1500.0: PASS" in eot.message
    # the overriding case's own turns must still meet its threshold
    rg2 = RunGates(load_gates())
    fast2 = [_judged(rg2, f"f{i}", eot=300.0 + i) for i in range(10)]
    s2 = judge_run("r", fast2 + [_judged(rg2, "slow", {"eot_to_first_audio": 1000.0}, eot=1200.0)], rg2)
    assert next(v for v in s2.gates if v.gate == "eot_to_first_audio").status == "FAIL"


def test_run_gates_layers_and_summary_records_them(tmp_path):
    f = tmp_path / "ci.toml"
    f.write_text('[gates.eot_to_first_audio]\nfail = 777.0\ntitle = "EoT custom"\n')
    rg = RunGates.load(f, suite_table={"max_gap": 180.0}, suite_source="cases.json:suites.quick.gates")
    assert rg.base.get("eot_to_first_audio").fail == 777.0 and rg.base.get("max_gap").fail == 180.0
    s = judge_run("r", [_judged(rg, "a")], rg)
    specs = {g.name: g for g in s.gate_specs}
    assert specs["eot_to_first_audio"].fail == 777.0 and specs["eot_to_first_audio"].title == "EoT custom"
    assert s.gate_sources[1:] == [str(f), "cases.json:suites.quick.gates"]
    with pytest.raises(GateConfigError, match="suites.quick.gates: gates.max_gapp"):
        RunGates.load(None, suite_table={"max_gapp": 1.0}, suite_source="cases.json:suites.quick.gates")

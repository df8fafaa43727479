"""The bench's glue to the runner: plan items -> RunItems, results + trace -> TurnOutcome, timing parts."""

from __future__ import annotations

from pathlib import Path

import pytest

from autortc.artifacts import TRACE_FILE, read_trace, write_trace
from autortc.faultbench import bench
from autortc.faultbench.plan import BenchCase, make_plan
from autortc.faultbench.score import score
from autortc.results import CaseResult
from autortc.testing.faults import make_speech, write_turn_folder

pytestmark = pytest.mark.unit

CASES = [BenchCase("a", "P0", keywords=("sunny",), user_speech_ms=1500.0),
         BenchCase("b", "P0", keywords=("dragon",), user_speech_ms=1200.0)]


def test_run_items_carry_the_fault_and_one_attempt_for_no_reply():
    plan = make_plan(CASES, seed=5, k=1, clean=1, delay_pairs=0, faults=["gap_60", "no_reply"])
    items = bench.run_items(plan)
    by_fault = {it.metadata.get("fault", {}).get("kind"): it for it in items}
    assert by_fault["gap"].metadata["fault"]["ms"] == 60 and by_fault["gap"].max_attempts is None
    assert by_fault["no_reply"].max_attempts == 1
    assert by_fault[None].metadata == {"case_id": by_fault[None].case_id, "bench_item": by_fault[None].metadata["bench_item"]}
    assert all(it.entry_id == bench.entry_id(p) for it, p in zip(items, plan.items))


def test_outcomes_read_truth_from_the_trace_and_map_errors(tmp_path: Path):
    from autortc.gates import load_gates
    from autortc.metrics.turn import compute_turn_metrics

    plan = make_plan(CASES, seed=5, k=1, clean=1, delay_pairs=0, faults=["gap_60", "no_reply", "clipping_x6"])
    sp = make_speech(48000, seed=2, sentences=1)
    results = {}
    truth = [{"kind": "gap", "planted": True, "in_agent_copy": False, "size_ms": 60.0}]
    for it in plan.items:
        eid = bench.entry_id(it)
        if it.fault == "no_reply":
            results[eid] = CaseResult(case_id=eid, p_level="P0", error="harness: all 1 attempts failed; last: attempt 1: NoReplyError: no reply")
            continue
        if it.fault == "clipping_x6":
            results[eid] = CaseResult(case_id=eid, p_level="P0", error="harness: all 3 attempts failed; last: BarrierTimeout")
            continue
        td = tmp_path / eid / "t0"
        want = write_turn_folder(td, pre=sp.samples, sr=48000, delay_ms=500.0, stages_ms={"end_of_turn": 200.0})
        art = read_trace(td / TRACE_FILE)
        if it.fault == "gap_60":
            art.agent.extra["fault_truth"] = truth
        write_trace(td, art)
        res = compute_turn_metrics(td, gates=load_gates())
        res.trace_id = "t0"
        results[eid] = CaseResult(case_id=eid, p_level="P0", turns=[res])
    recs = {r.outcome.fault: r for r in bench.outcomes(plan, results, tmp_path)}
    assert list(recs["gap_60"].outcome.truth) == truth and recs["gap_60"].outcome.verdicts
    assert recs["no_reply"].outcome.error == "" and "no reply came" in recs["no_reply"].note
    assert recs["clipping_x6"].outcome.error.startswith("harness")
    clean = recs[None]
    assert clean.outcome.truth == () and clean.outcome.latency_ms == pytest.approx(want["eot_to_first_audio_ms"], abs=2.0)
    # parts on one clock add up to the latency (synthetic stages: decision at EoT + 200 ms, publish at + 480 ms)
    assert clean.uplink_ms == pytest.approx(200.0, abs=0.01) and clean.agent_ms == pytest.approx(280.0, abs=0.01)
    assert clean.uplink_ms + clean.agent_ms + clean.downlink_ms == pytest.approx(clean.outcome.latency_ms, abs=0.01)
    sc = score([r.outcome for r in recs.values()])
    rows = {r.name: r for r in sc.rows}
    assert rows["gap_60"].planted == 1 and rows["no_reply"].planted == 1 and rows["no_reply"].caught == 0
    assert rows["clipping_x6"].harness_errors == 1
    tim = bench.timing(list(recs.values()))
    assert tim["turns"] >= 1 and tim["sum_error_ms_max"] < 0.01


def test_a_fault_in_a_reply_never_published_is_not_planted():
    """fb-bots-1702 b001: the agent planted gap_60 into reply 0, cancelled it before its first frame
    and answered with a clean reply 1; the truth said planted, the turn scored as a miss."""
    from autortc.artifacts import AgentBlock, AgentReply

    truth = ({"kind": "gap", "planted": True, "reply_index": 0, "size_ms": 60.0},)
    cancelled = AgentBlock(replies=[AgentReply(reply_index=0, t_first_frame_published=None, pre_rtc_samples=0),
                                    AgentReply(reply_index=1, t_first_frame_published=12.0, pre_rtc_samples=9000)])
    t = bench.heard_truth(truth, cancelled)
    assert t[0]["planted"] is False and "never heard" in t[0]["reason"]
    heard = AgentBlock(replies=[AgentReply(reply_index=0, t_first_frame_published=11.0, pre_rtc_samples=9000)])
    assert bench.heard_truth(truth, heard) == truth
    assert bench.heard_truth(truth, AgentBlock()) == truth
    # b116: reply 0 published 150 ms, then cut; its lost frame was due at 660 ms
    lf = ({"kind": "lost_frame", "planted": True, "reply_index": 0, "sample_rate": 24000, "start_sample": 15840},)
    cut = AgentBlock(replies=[AgentReply(reply_index=0, t_first_frame_published=11.0, pre_rtc_samples=3613,
                                         pre_rtc_sr=24000, interrupted=True)])
    assert bench.heard_truth(lf, cut)[0]["planted"] is False
    whole = AgentBlock(replies=[AgentReply(reply_index=0, t_first_frame_published=11.0, pre_rtc_samples=30000,
                                           pre_rtc_sr=24000, interrupted=True)])
    assert bench.heard_truth(lf, whole) == lf


def test_a_rate_or_band_fault_in_a_reply_cut_too_short_to_judge_is_not_planted():
    """fb-bots-s20 b008: rate_22k_as_24k on reply 0, which the agent had started in the slow speaker's
    pause and cut after 102 ms; speed and hf_loss judge no spectrum under SPECTRUM_MIN_S (1 s), the
    truth said planted and the turn scored as a miss."""
    from autortc.artifacts import AgentBlock, AgentReply

    rate = ({"kind": "rate_22k_as_24k", "planted": True, "reply_index": 0, "sample_rate": 24000, "start_sample": 0},)
    band = ({"kind": "lowpass", "planted": True, "reply_index": 0, "sample_rate": 24000, "start_sample": 0},)
    gap = ({"kind": "gap", "planted": True, "reply_index": 0, "sample_rate": 24000, "start_sample": 1200},)

    def cut_after(samples: int) -> AgentBlock:
        return AgentBlock(replies=[AgentReply(reply_index=0, t_first_frame_published=11.0, pre_rtc_samples=samples,
                                              pre_rtc_sr=24000, interrupted=True)])

    short, long_enough = cut_after(2447), cut_after(24000)  # 102 ms; 1.0 s
    for truth in (rate, band):
        t = bench.heard_truth(truth, short)[0]
        assert t["planted"] is False and "cut after 102 ms" in t["reason"]
        assert bench.heard_truth(truth, long_enough) == truth
    assert bench.heard_truth(gap, short) == gap  # a hole at 50 ms was heard: the rule is for spectrum faults only


def test_a_premature_reply_published_after_the_eot_is_not_planted():
    """fb-bots-1702: the premature hook's reply was published 39 ms after to 143 ms before the user's
    EoT (VAD and TTS latency), heard after the EoT in 4 of 5 turns; the truth said planted."""
    from autortc.artifacts import AgentBlock

    truth = ({"kind": "premature", "planted": True, "reply_index": None, "extra": {"lead_ms": 500.0}},)
    late = bench.heard_truth(truth, AgentBlock(stages={"first_frame_published": 100.004}), t_user_eot=100.0)
    assert late[0]["planted"] is False and late[0]["extra"]["published_before_eot_ms"] == pytest.approx(-4.0)
    early = bench.heard_truth(truth, AgentBlock(stages={"first_frame_published": 99.5}), t_user_eot=100.0)
    assert early[0]["planted"] is True and early[0]["extra"]["published_before_eot_ms"] == pytest.approx(500.0)


def test_not_planted_turns_are_shown_with_their_reason_not_dropped():
    """Lead's rule: a premature reply the injector published too late is not scored, but the table
    says so ('injector missed its time'), per fault, with the count."""
    from autortc.artifacts import AgentBlock
    from autortc.faultbench import render
    from autortc.faultbench.score import TurnOutcome, Verdict

    truth = ({"kind": "premature", "planted": True, "extra": {"lead_ms": 500.0}},)
    late = bench.heard_truth(truth, AgentBlock(stages={"first_frame_published": 100.004}), t_user_eot=100.0)
    assert late[0]["reason"].startswith("injector missed its time:")
    turns = [TurnOutcome(item=0, case_id="a", fault="premature_500", truth=late, verdicts=(Verdict("talk_over", "PASS", 0.0),)),
             TurnOutcome(item=1, case_id="a", fault=None, verdicts=(Verdict("talk_over", "PASS", 0.0),))]
    sc = score(turns)
    row = next(r for r in sc.rows if r.name == "premature_500")
    assert row.not_planted == 1 and row.not_planted_why == {"injector missed its time": 1}
    md = render.to_markdown(sc)
    assert "premature_500 1× injector missed its time" in md


def test_two_receivers_on_the_bench_turns_reach_json_markdown_and_report(tmp_path: Path):
    """--via browser: each turn's page USER_KPI (planted = probe + 35 ms) against the probe, paired
    only where both measured, in summary_extra, the printed table and the report's bench section."""
    from autortc.artifacts import BrowserBlock
    from autortc.faultbench import render
    from autortc.metrics.instrument import INSTRUMENT
    from autortc.gates import build_run_summary, load_gates
    from autortc.metrics.turn import compute_turn_metrics
    from autortc.report import render as render_report

    plan = make_plan(CASES, seed=8, k=2, clean=3, delay_pairs=0, faults=["gap_60"])
    sp = make_speech(48000, seed=2, sentences=1)
    results, offsets = {}, {}
    rng = __import__("numpy").random.default_rng(1)
    for n, it in enumerate(plan.items):
        eid = bench.entry_id(it)
        td = tmp_path / eid / "t0"
        want = write_turn_folder(td, pre=sp.samples, sr=48000, delay_ms=400.0 + 60.0 * n, stages_ms={"end_of_turn": 200.0})
        art = read_trace(td / TRACE_FILE)
        if n == 0:  # the page measured nothing on this turn: probe only, not paired
            art.browser = BrowserBlock(user_kpi_raw_ms=None, clock_sync_rtt_ms=0.9)
        else:
            offsets[eid] = 35.0 + float(rng.normal(0.0, 2.0))
            kpi = want["eot_to_first_audio_ms"] + offsets[eid]
            art.browser = BrowserBlock(user_kpi_raw_ms=kpi, user_kpi_ms=kpi, is_talk_over=False, clock_sync_rtt_ms=0.5 + n)
        write_trace(td, art)
        res = compute_turn_metrics(td, gates=load_gates())
        res.trace_id = "t0"
        results[eid] = CaseResult(case_id=eid, p_level="P0", turns=[res])
    recs = bench.outcomes(plan, results, tmp_path)
    recv = bench.receivers(recs, plan)
    assert (recv.turns, recv.paired, recv.probe_only) == (5, 4, 1)
    assert recv.bias_ms == pytest.approx(35.0, abs=4.0)
    assert recv.sync_error_max_ms == pytest.approx((0.5 + 4) / 2)
    # the instrument's EoT error bar on this path is the clock sync's, not the bots' mic timeline's
    ins = bench.instrument_for("browser", INSTRUMENT, recv)
    assert ins["user_eot_max_error_ms"] == pytest.approx(2.25) and "clock sync" in ins["user_eot_source"]
    assert bench.instrument_for("bots", INSTRUMENT, None) == INSTRUMENT
    sc = score([r.outcome for r in recs])
    fb = bench.summary_extra(sc, plan, bench.timing(recs), ins, recv)
    assert fb["receivers"]["paired"] == 4 and fb["receivers"]["probe_only"] == 1
    md = render.to_markdown(sc, plan=plan, receivers=recv)
    assert "Two receivers" in md and "4 paired of 5 turns (probe only 1" in md
    summary = build_run_summary("r", list(results.values()), load_gates(), suite="fast")
    summary.extra["faultbench"] = fb
    render_report(summary, list(results.values()), tmp_path)
    rep = (tmp_path / "report.md").read_text()
    assert "Two receivers: browser USER_KPI vs probe" in rep and "| 4/5 | 1 | 0 | 0 |" in rep
    assert rep.count("Two receivers: browser USER_KPI vs probe") == 1
    assert "by the clock sync: RTT/2 of this run's worst turn" in rep  # the decomposition's EoT error bar names its source

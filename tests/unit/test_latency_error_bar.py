"""Every run states its latency's error bar (issue 17 §3): the parts on one clock and the
instrument's own error, in summary.json (extra.timing) and in the report."""

from __future__ import annotations

import pytest

from autortc.metrics.instrument import INSTRUMENT, latency_parts, spread, timing_summary
from autortc.report.view import build_view
from autortc.results import CaseEntry, CaseResult, RunSummary, TurnResult

pytestmark = pytest.mark.unit


def test_parts_are_the_differences_of_the_planted_stage_times():
    # planted on one clock (s): user EoT 100.000, decision 100.412, first frame 100.530, heard 100.641
    p = latency_parts(100.0, {"end_of_turn": 100.412, "first_frame_published": 100.530}, 100.641)
    assert p["uplink_ms"] == pytest.approx(412.0, abs=1e-6)
    assert p["agent_ms"] == pytest.approx(118.0, abs=1e-6)
    assert p["downlink_ms"] == pytest.approx(111.0, abs=1e-6)
    # a stage the agent did not report leaves its two parts unknown, never a guess
    q = latency_parts(100.0, {"first_frame_published": 100.530}, 100.641)
    assert q["uplink_ms"] is None and q["agent_ms"] is None and q["downlink_ms"] == pytest.approx(111.0)


def test_summary_spreads_only_complete_turns_and_reports_the_sum_error():
    rows = [(641.0, 412.0, 118.0, 111.0), (700.0, 450.0, 120.0, 130.0), (900.0, None, 100.0, 120.0),
            (655.0, 400.0, 125.0, 129.0)]
    t = timing_summary(rows)
    assert t["turns"] == 3
    assert t["uplink_ms"]["median"] == 412.0
    assert t["path_ms"]["median"] == pytest.approx(529.0)  # 412 + 111, 450 + 130, 400 + 129 -> 523, 580, 529
    assert t["sum_error_ms_max"] == pytest.approx(1.0)  # 400 + 125 + 129 = 654 vs 655 measured
    assert t["instrument"] == INSTRUMENT
    assert spread([]) == {"n": 0}
    # an agent that committed 1.9 s before the user's EoT (answered into a pause): counted, not split
    t2 = timing_summary(rows + [(800.0, -1900.0, 2600.0, 100.0)])
    assert t2["turns"] == 3 and t2["decided_before_eot"] == 1 and t2["uplink_ms"]["median"] == 412.0


def test_report_shows_the_error_bar_next_to_the_latency():
    t = TurnResult(case_id="c", trace_id="c-t0", audio_valid=True, verdict="PASS")
    t.latency.eot_to_first_audio_ms, t.latency.uplink_ms, t.latency.agent_ms, t.latency.downlink_ms = 641.0, 412.0, 118.0, 111.0
    c = CaseResult(case_id="c", verdict="PASS", turns=[t])
    s = RunSummary(run_id="r", suite="fast", verdict="PASS", cases=[CaseEntry("c", "PASS")],
                   extra={"timing": timing_summary([(641.0, 412.0, 118.0, 111.0)])})
    v = build_view(s, [c])
    tab = next(d for d in v.details if d.title.startswith("Latency error bar"))
    assert [r[0] for r in tab.rows][:2] == ["EoT → first audio", "uplink (EoT → agent decision)"]
    assert "412" in tab.rows[1][1] and "first audio ≤ 0.60 ms" in tab.lead

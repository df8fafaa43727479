"""Two receivers (browser USER_KPI vs probe) on the same turns: bias, its interval, spread, pairing."""

from __future__ import annotations

import numpy as np
import pytest

from autortc.metrics.receivers import ReceiverPair, agreement, pairs_from_turns, summary_line
from autortc.results import TurnResult

pytestmark = pytest.mark.unit


def _planted(n: int, offset_ms: float, sd_ms: float, seed: int = 3) -> list[ReceiverPair]:
    rng = np.random.default_rng(seed)
    probe = rng.uniform(600.0, 1600.0, n)  # agent variance: large, and the same for both receivers
    browser = probe + offset_ms + rng.normal(0.0, sd_ms, n)
    rtt = rng.uniform(0.4, 3.0, n)
    return [ReceiverPair(f"t{i}", float(p), float(b), float(r)) for i, (p, b, r) in enumerate(zip(probe, browser, rtt))]


def test_known_offset_and_noise_are_recovered():
    pairs = _planted(200, offset_ms=37.0, sd_ms=8.0)
    a = agreement(pairs)
    assert a.paired == 200 and a.turns == 200 and a.probe_only == a.browser_only == a.neither == 0
    assert a.bias_ms == pytest.approx(37.0, abs=1.5)
    lo, hi = a.bias_ci95_ms
    assert lo < 37.0 < hi and hi - lo < 5.0  # 95 % CI of a median of 200: ~±1.2 sigma/sqrt(n) * 1.96
    assert a.sd_ms == pytest.approx(8.0, rel=0.15)
    assert a.iqr_ms == pytest.approx(1.349 * 8.0, rel=0.2)  # normal IQR = 1.349 sigma
    assert a.p25_ms < a.bias_ms < a.p75_ms
    assert a.sync_error_max_ms == pytest.approx(max(p.clock_sync_rtt_ms for p in pairs) / 2.0)
    # the agent's own spread (probe 600-1600 ms) is not in the difference's spread
    assert a.sd_ms < 20.0


def test_negative_bias_and_a_different_offset_are_not_the_same_answer():
    a = agreement(_planted(60, offset_ms=-25.0, sd_ms=5.0, seed=9))
    b = agreement(_planted(60, offset_ms=+25.0, sd_ms=5.0, seed=9))
    assert a.bias_ci95_ms[1] < 0 < b.bias_ci95_ms[0]
    assert b.bias_ms - a.bias_ms == pytest.approx(50.0, abs=0.01)  # same noise, planted 50 ms apart


def test_median_bias_resists_a_few_wild_turns_sd_shows_them():
    pairs = _planted(40, offset_ms=20.0, sd_ms=3.0, seed=4)
    wild = [ReceiverPair(f"w{i}", 900.0, 900.0 + 1500.0) for i in range(3)]  # e.g. a page that missed the onset
    a = agreement(pairs + wild)
    assert a.paired == 43
    assert a.bias_ms == pytest.approx(20.0, abs=2.0)
    assert a.sd_ms > 300.0 and a.max_ms == pytest.approx(1500.0)


def test_only_turns_both_measured_are_paired_and_the_rest_are_counted():
    pairs = _planted(10, offset_ms=30.0, sd_ms=2.0, seed=5)
    # turns with one receiver only carry huge values: if they leaked into the pairing the bias would move
    pairs += [ReceiverPair("p1", 5000.0, None), ReceiverPair("p2", 4000.0, float("nan")),
              ReceiverPair("b1", None, -3000.0), ReceiverPair("n1", None, None)]
    a = agreement(pairs)
    assert (a.turns, a.paired, a.probe_only, a.browser_only, a.neither) == (14, 10, 2, 1, 1)
    assert a.bias_ms == pytest.approx(30.0, abs=2.0)
    assert len(a.diffs_ms) == 10
    line = summary_line(a)
    assert "10 paired of 14 turns" in line and "probe only 2" in line and "browser only 1" in line and "neither 1" in line


def test_nothing_paired_and_a_single_pair():
    a = agreement([ReceiverPair("x", 800.0, None)])
    assert a.paired == 0 and a.bias_ms is None and a.bias_ci95_ms is None and a.sd_ms is None
    assert "no turn measured by both" in summary_line(a)
    one = agreement([ReceiverPair("y", 800.0, 830.0)])
    assert one.bias_ms == 30.0 and one.bias_ci95_ms is None and one.sd_ms is None and one.iqr_ms == 0.0
    d = one.to_dict()
    assert d["paired"] == 1 and d["diffs_ms"] == [30.0]


def test_pairs_from_turn_results_use_the_raw_kpi_not_the_clamped_one():
    t1, t2, t3 = TurnResult(case_id="a", trace_id="1"), TurnResult(case_id="a", trace_id="2"), TurnResult(case_id="b", trace_id="3")
    t1.latency.eot_to_first_audio_ms, t1.latency.user_kpi_raw_ms, t1.latency.user_kpi_ms = 700.0, 740.0, 740.0
    t1.latency.clock_sync_rtt_ms = 1.2
    # talk-over seen by the page only: clamped 0 for the gates, raw -120 is what it measured
    t2.latency.eot_to_first_audio_ms, t2.latency.user_kpi_raw_ms, t2.latency.user_kpi_ms = 90.0, -120.0, 0.0
    t3.latency.premature = True  # the probe saw talk-over: no latency -> browser only
    t3.latency.user_kpi_raw_ms = -300.0
    pairs = pairs_from_turns([("a/1", t1), ("a/2", t2), ("b/3", t3)])
    assert [(p.key, p.probe_ms, p.browser_ms) for p in pairs] == [("a/1", 700.0, 740.0), ("a/2", 90.0, -120.0),
                                                                   ("b/3", None, -300.0)]
    a = agreement(pairs)
    assert (a.paired, a.browser_only) == (2, 1) and sorted(a.diffs_ms) == [-210.0, 40.0]


def test_turn_metrics_carry_the_browser_block_into_the_latency(tmp_path):
    """The second receiver's value reaches TurnResult from trace.json's browser block (the runner's path)."""
    from autortc.artifacts import TRACE_FILE, BrowserBlock, read_trace, write_trace
    from autortc.gates import load_gates
    from autortc.metrics.turn import compute_turn_metrics
    from autortc.testing.faults import make_speech, write_turn_folder

    sp = make_speech(48000, seed=2, sentences=1)
    d = tmp_path / "c" / "t0"
    truth = write_turn_folder(d, pre=sp.samples, sr=48000, delay_ms=500.0)
    art = read_trace(d / TRACE_FILE)
    art.browser = BrowserBlock(user_kpi_raw_ms=truth["eot_to_first_audio_ms"] + 42.0,
                               user_kpi_ms=truth["eot_to_first_audio_ms"] + 42.0, is_talk_over=False,
                               clock_sync_rtt_ms=0.8)
    write_trace(d, art)
    res = compute_turn_metrics(d, gates=load_gates())
    assert res.latency.clock_sync_rtt_ms == 0.8
    a = agreement(pairs_from_turns([("c/t0", res)]))
    assert a.paired == 1 and a.bias_ms == pytest.approx(42.0, abs=2.0)

"""Configured-vs-measured verdicts on synthetic probe results (pure), and the CLI listing."""

from __future__ import annotations

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from autortc.network.cli import register
from autortc.network.impairment import expected_delay_iqr_ms
from autortc.network.measure import ProbeRaw, merge_raw, verify
from autortc.network.profiles import NetworkProfile

pytestmark = pytest.mark.unit


def _raw(n: int, delay_ms: float, jitter_ms: float, loss: float, seed: int = 0) -> ProbeRaw:
    """A train as a path with iid uniform jitter and Bernoulli loss would return it."""
    rng = np.random.default_rng(seed)
    up_ok = rng.random(n) >= loss
    up_seq = np.flatnonzero(up_ok)
    up_d = delay_ms + rng.uniform(-jitter_ms, jitter_ms, up_seq.size)
    down_ok = rng.random(up_seq.size) >= loss
    down_seq = up_seq[down_ok]
    down_d = delay_ms + rng.uniform(-jitter_ms, jitter_ms, down_seq.size)
    return ProbeRaw(n, up_seq, up_d, int(up_seq.size), down_seq, down_d, n / 100)


def test_agreeing_train_is_applied():
    prof = NetworkProfile.symmetric("p", delay_ms=50, jitter_ms=40, loss_pct=2.0, reorder=True)
    v = verify(prof, _raw(40_000, 50, 40, 0.02, seed=1), backend="relay")
    assert v.verdict == "applied" and v.applied, v.table()
    assert v.uplink.measured.delay_iqr_ms == pytest.approx(expected_delay_iqr_ms(prof.uplink), rel=0.05)
    assert v.rtt_mean_ms == pytest.approx(100, abs=1)


def test_wrong_delay_or_loss_is_not_applied():
    prof = NetworkProfile.symmetric("p", delay_ms=50, jitter_ms=10, loss_pct=2.0, reorder=True)
    v = verify(prof, _raw(40_000, 55, 10, 0.02, seed=2), backend="relay")
    assert v.verdict == "not_applied"
    assert {c.name: c.verdict for c in v.uplink.checks}["delay_ms"] == "disagree"
    v2 = verify(prof, _raw(40_000, 50, 10, 0.0, seed=3), backend="relay")  # nothing lost: impairment missing
    assert {c.name: c.verdict for c in v2.downlink.checks}["loss_pct"] == "disagree"
    assert not v2.applied


def test_small_sample_is_inconclusive_not_a_pass():
    prof = NetworkProfile.symmetric("p", delay_ms=30, loss_pct=0.5)
    v = verify(prof, _raw(250, 30, 0, 0.0, seed=4), backend="relay")  # 0 of 250 lost
    assert {c.name: c.verdict for c in v.uplink.checks}["loss_pct"] == "inconclusive"
    assert v.verdict == "inconclusive" and not v.applied


def test_merge_raw_keeps_sequence_numbers_unique():
    a, b = _raw(100, 10, 0, 0.1, seed=5), _raw(50, 10, 0, 0.1, seed=6)
    m = merge_raw([a, b])
    assert m.sent == 150 and m.up_seq.size == a.up_seq.size + b.up_seq.size
    assert np.unique(m.up_seq).size == m.up_seq.size and m.up_seq.max() < 150
    with pytest.raises(ValueError):
        merge_raw([])


def test_cli_lists_profiles_and_rejects_bad_files(tmp_path):
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    r = CliRunner().invoke(app, ["net", "profiles"])
    assert r.exit_code == 0 and "bad_wifi" in r.output and "very_bad_network" in r.output
    bad = tmp_path / "p.toml"
    bad.write_text("[profiles.x]\nloss_pct = 'lots'\n")
    r = CliRunner().invoke(app, ["net", "profiles", "--profiles-file", str(bad)])
    assert r.exit_code == 2 and "profiles.x.loss_pct" in r.output


def test_webrtc_stats_summary_and_comparison():
    from livekit.rtc._proto import stats_pb2 as pb

    from autortc.network.webrtc import compare_webrtc, summarize_rtc_stats

    out = pb.RtcStats()
    out.outbound_rtp.stream.kind = "audio"
    out.outbound_rtp.sent.packets_sent = 10_000
    rin = pb.RtcStats()
    rin.remote_inbound_rtp.stream.kind = "audio"
    rin.remote_inbound_rtp.received.packets_lost = 200
    rin.remote_inbound_rtp.remote_inbound.total_round_trip_time = 2.0  # s over 20 reports
    rin.remote_inbound_rtp.remote_inbound.round_trip_time_measurements = 20
    inb = pb.RtcStats()
    inb.inbound_rtp.stream.kind = "audio"
    inb.inbound_rtp.received.packets_received = 9_800
    inb.inbound_rtp.received.packets_lost = 200
    inb.inbound_rtp.received.jitter = 0.015
    vid = pb.RtcStats()
    vid.inbound_rtp.stream.kind = "video"
    vid.inbound_rtp.received.packets_lost = 999
    s = summarize_rtc_stats([out, rin], [inb, vid])
    assert s.uplink_loss_pct == pytest.approx(2.0) and s.downlink_loss_pct == pytest.approx(2.0)
    assert s.rtcp_rtt_mean_ms == pytest.approx(100.0) and s.downlink_jitter_ms == pytest.approx(15.0)
    prof = NetworkProfile.symmetric("p", delay_ms=50, jitter_ms=10, loss_pct=2.0)
    verdicts = {c.name: c.verdict for c in compare_webrtc(prof, s)}
    assert verdicts == {"uplink_loss_pct": "agree", "downlink_loss_pct": "agree", "rtcp_rtt_ms": "agree"}
    wrong = NetworkProfile.symmetric("q", delay_ms=20, loss_pct=0.0)
    assert {c.name: c.verdict for c in compare_webrtc(wrong, s)}["rtcp_rtt_ms"] == "disagree"

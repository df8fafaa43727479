"""autobrowser.stats: per-turn WebRTC figures from the page's getStats snapshots."""

import pytest

from autobrowser.stats import turn_stats

pytestmark = pytest.mark.unit


def snap(t, recv, lost, samples, concealed, jbd, jbn, jitter=0.004, rtt=0.012):
    return {
        "label": "periodic", "t": t,
        "inbound": {"packetsReceived": recv, "packetsLost": lost, "totalSamplesReceived": samples,
                    "concealedSamples": concealed, "concealmentEvents": 3, "jitterBufferDelay": jbd,
                    "jitterBufferEmittedCount": jbn, "jitter": jitter},
        "candidate_pair": {"currentRoundTripTime": rtt},
        "remote_outbound": None, "codec": {"mimeType": "audio/opus"},
    }


def test_turn_figures():
    s = turn_stats([snap(1000.0, 0, 0, 0, 0, 0.0, 0), snap(6000.0, 245, 5, 240_000, 4_800, 14_400.0, 240_000)])
    assert s.duration_s == pytest.approx(5.0)
    assert (s.packets_received, s.packets_lost) == (245, 5)
    assert s.loss_pct == pytest.approx(2.0)
    assert s.concealed_pct == pytest.approx(2.0)
    assert s.jitter_buffer_delay_ms == pytest.approx(60.0)
    assert s.jitter_ms == pytest.approx(4.0)
    assert s.rtt_ms == pytest.approx(12.0)
    assert s.codec == "audio/opus"


def test_rtt_falls_back_to_remote_outbound():
    a = snap(0.0, 10, 0, 960, 0, 0.01, 960)
    a["candidate_pair"] = None
    a["remote_outbound"] = {"roundTripTime": 0.03}
    assert turn_stats([a]).rtt_ms == pytest.approx(30.0)


def test_no_inbound_stats_gives_none_not_zero():
    s = turn_stats([{"label": "final", "t": 1.0, "inbound": None}])
    assert s.snapshots == 1 and s.packets_received is None and s.loss_pct is None

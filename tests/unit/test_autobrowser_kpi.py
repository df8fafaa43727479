"""autobrowser.kpi: USER_KPI raw / clamped / talk-over and which segments count."""

import pytest

from autobrowser.kpi import TimedSegment, compute_user_kpi

pytestmark = pytest.mark.unit

SR = 48_000
T0 = 1.7e12  # epoch ms of frame 0


def seg(onset_s: float, end_s: float, out_latency_ms: float = 0.0) -> TimedSegment:
    return TimedSegment(
        onset_frame=round(onset_s * SR), end_frame=round(end_s * SR),
        t_onset_ms=T0 + onset_s * 1000 + out_latency_ms, t_end_ms=T0 + end_s * 1000 + out_latency_ms,
    )


def test_reply_after_eot():
    k = compute_user_kpi([seg(1.0, 2.0), seg(2.5, 3.2)], [seg(3.9, 5.0, out_latency_ms=40)], sr=SR, speech_ms=2200)
    assert k.t_user_eot_ms == pytest.approx(T0 + 3200)
    assert k.raw_ms == pytest.approx(700 + 40)
    assert k.clamped_ms == k.raw_ms
    assert k.is_talk_over is False
    assert k.user_segments == 2


def test_talk_over_is_negative_raw_and_zero_clamped():
    k = compute_user_kpi([seg(1.0, 2.0), seg(2.5, 3.2)], [seg(2.9, 4.0)], sr=SR, speech_ms=2200)
    assert k.raw_ms == pytest.approx(-300)
    assert k.clamped_ms == 0.0
    assert k.is_talk_over is True


def test_zero_is_a_value_not_missing():
    k = compute_user_kpi([seg(1.0, 2.0)], [seg(2.0, 3.0)], sr=SR, speech_ms=1000)
    assert k.raw_ms == 0.0 and k.ok and k.is_talk_over is False


def test_the_looped_replay_of_the_file_is_not_the_users_turn():
    # file: speech 1.0..3.0 s; Chromium replays it 11 s later
    mic = [seg(1.0, 3.0), seg(12.0, 14.0)]
    k = compute_user_kpi(mic, [seg(3.5, 6.0)], sr=SR, speech_ms=2000)
    assert k.t_user_eot_ms == pytest.approx(T0 + 3000)
    assert k.raw_ms == pytest.approx(500)


def test_without_speech_ms_the_turn_is_what_precedes_the_reply():
    mic = [seg(1.0, 2.0), seg(2.6, 3.0), seg(12.0, 14.0)]
    k = compute_user_kpi(mic, [seg(3.5, 6.0)], sr=SR, speech_ms=None)
    assert k.t_user_eot_ms == pytest.approx(T0 + 3000)
    assert k.user_segments == 2


def test_agent_audio_before_the_user_spoke_is_not_the_reply():
    greeting = seg(0.1, 0.8)
    k = compute_user_kpi([seg(1.0, 2.0)], [greeting, seg(2.4, 4.0)], sr=SR, speech_ms=1000)
    assert k.t_first_playout_ms == pytest.approx(T0 + 2400)
    assert k.raw_ms == pytest.approx(400)


def test_missing_data_comes_with_a_reason():
    assert compute_user_kpi([], [seg(1, 2)], sr=SR, speech_ms=None).reason.startswith("no user speech")
    k = compute_user_kpi([seg(1.0, 2.0)], [], sr=SR, speech_ms=1000)
    assert k.raw_ms is None and k.t_user_eot_ms == pytest.approx(T0 + 2000) and "no agent playout" in k.reason


def test_annotated_eot_replaces_the_detected_one():
    # noisy file: the detector's segment runs to the end of the noise (5.0 s), speech ended at 3.0 s
    k = compute_user_kpi([seg(1.0, 5.0)], [seg(3.6, 6.0)], sr=SR, speech_ms=4000, user_eot=(3 * SR, T0 + 3000.0))
    assert k.eot_source == "annotation" and k.raw_ms == pytest.approx(600.0) and k.is_talk_over is False
    detected = compute_user_kpi([seg(1.0, 5.0)], [seg(3.6, 6.0)], sr=SR, speech_ms=4000)
    assert detected.eot_source == "detector" and detected.is_talk_over is True

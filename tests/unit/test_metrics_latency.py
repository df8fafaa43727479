import numpy as np
import pytest

from autortc.metrics.latency import (agent_reported_delay_ms, first_onset, inter_arrival_ms, llm_ttft_ms, p95,
                                     sample_arrival_time, stage_delta_ms, time_to_sample)
from autortc.testing.faults import make_speech

pytestmark = pytest.mark.unit

SR = 48000


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_first_onset_is_within_2ms(seed):
    s = make_speech(SR, seed=seed, sentences=1, lead_ms=537.0)
    truth = s.speech_start  # first sample of the first syllable's attack ramp
    got = first_onset(s.samples, SR)
    assert got is not None
    assert abs(got - truth) / SR * 1000 <= 2.0, (got, truth)


def test_first_onset_skips_previous_reply_tail():
    a = make_speech(SR, seed=5, sentences=1, lead_ms=0, tail_ms=300).samples
    b = make_speech(SR, seed=6, sentences=1, lead_ms=0, tail_ms=0).samples
    x = np.concatenate([a, b])
    start = int(0.05 * SR)  # search begins while a is sounding
    got = first_onset(x, SR, start=start)
    assert abs(got - a.shape[0]) / SR * 1000 <= 2.0
    assert first_onset(np.zeros(SR, np.float32), SR) is None


def test_sample_arrival_time_uses_offset_inside_frame_and_the_least_delayed_frame():
    # 20 ms frames; the second was seen 5 ms late, the third 1 ms late (a late event loop only adds delay)
    frames = [[10.000, 0], [10.025, 960], [10.041, 1920]]
    assert sample_arrival_time(frames, 0, SR) == pytest.approx(10.0)
    # frame 1's own arrival says 10.035; frame 2 (0.5 s window ahead) shows the clock is at most 1 ms late there
    assert sample_arrival_time(frames, 960 + 480, SR) == pytest.approx(10.001 + 0.030)
    assert sample_arrival_time(frames, 1920 + 48, SR) == pytest.approx(10.041 + 0.001)
    assert time_to_sample(frames, 10.026, SR) == 960 + 48


def test_inter_arrival_p95():
    rng = np.random.default_rng(0)
    t = 5.0 + np.cumsum(np.r_[0, 0.020 + rng.uniform(-0.002, 0.002, 199)])
    t[100] += 0.05  # one late frame: its gap grows, the next shrinks
    frames = [[float(v), i * 960] for i, v in enumerate(t)]
    ia = inter_arrival_ms(frames)
    assert ia.shape == (199,)
    assert ia.max() == pytest.approx(np.diff(t).max() * 1000)
    assert p95(ia) == pytest.approx(np.percentile(np.diff(t) * 1000, 95))
    assert p95([]) is None


def test_stage_metrics():
    agent = {"stages": {"user_speech_end": 1.0, "stt_final": 1.2, "llm_request": 1.2, "llm_first_token": 1.26, "tts_first_chunk": 1.4,
                        "first_frame_published": 1.43},
             "lk_metrics": {"llm_ttft_ms": 99.0}}
    assert stage_delta_ms(agent["stages"], "tts_first_chunk", "first_frame_published") == pytest.approx(30.0)
    assert llm_ttft_ms(agent) == pytest.approx(60.0)  # stages win over lk_metrics
    assert llm_ttft_ms({"stages": {}, "lk_metrics": {"llm_ttft_ms": 99.0}}) == 99.0
    assert agent_reported_delay_ms(agent) == pytest.approx(430.0)
    agent["lk_metrics"] = {"end_of_utterance_delay_ms": 200, "llm_ttft_ms": 50, "tts_ttfb_ms": 70}
    assert agent_reported_delay_ms(agent) == pytest.approx(320.0)
    assert stage_delta_ms(None, "a", "b") is None and llm_ttft_ms(None) is None



def test_reply_segment_starts_at_a_click_just_before_the_start_event():
    """fb-bots-s12 b035: the reply's start event (a data message, frame-granular sample) came 2 ms
    after the click on the reply's first sample, so the segment began after it and the spike rule
    never saw what the user heard.  The first sound up to START_EVENT_SLACK_MS before the event
    is the reply's when silence precedes it inside that window; an earlier sound still going at
    the window's start (a previous reply's tail) is not pulled in."""
    from autortc.metrics.latency import REPLY_PREROLL_MS, START_EVENT_SLACK_MS, reply_start

    sr = 48000
    rng = np.random.default_rng(3)
    x = np.zeros(sr, np.float32)
    event = 24000
    click = event - 96  # 2 ms before the event's sample
    x[click] = 0.6
    x[event + 100:event + 9700] = (0.3 * rng.standard_normal(9600)).astype(np.float32)  # the speech
    a = reply_start(x, sr, event, event + 100)
    assert a <= click
    assert click - a <= int(REPLY_PREROLL_MS * sr / 1000)
    # a sound running into the look-back window from before it is not the reply's
    y = x.copy()
    y[event - int((START_EVENT_SLACK_MS + 30) * sr / 1000):event - 480] = 0.2
    assert reply_start(y, sr, event, event + 100) >= event


def test_tts_to_publish_is_timed_from_the_release_not_from_a_preemptive_chunk():
    """Planted stage times (s, one sender clock). A chunk synthesised before the end-of-turn decision
    waits for it by design (preemptive TTS); what the gate is for is the time after the release."""
    from autortc.metrics.latency import tts_first_held_ms, tts_first_to_publish_ms

    held = {"tts_first_chunk": 10.000, "end_of_turn": 10.090, "first_frame_published": 10.105}
    assert tts_first_to_publish_ms(held) == pytest.approx(15.0)
    assert tts_first_held_ms(held) == pytest.approx(90.0)
    # buffering after the release still counts in full
    slow = {"tts_first_chunk": 10.000, "end_of_turn": 10.090, "first_frame_published": 10.290}
    assert tts_first_to_publish_ms(slow) == pytest.approx(200.0)
    # chunk after the decision: the seed's definition, nothing held
    late = {"end_of_turn": 10.000, "tts_first_chunk": 10.120, "first_frame_published": 10.150}
    assert tts_first_to_publish_ms(late) == pytest.approx(30.0) and tts_first_held_ms(late) == 0.0
    # no end of turn reported, or one after the first frame (not this reply's release): from the chunk
    assert tts_first_to_publish_ms({"tts_first_chunk": 1.0, "first_frame_published": 1.2}) == pytest.approx(200.0)
    after = {"tts_first_chunk": 1.0, "first_frame_published": 1.2, "end_of_turn": 1.5}
    assert tts_first_to_publish_ms(after) == pytest.approx(200.0) and tts_first_held_ms(after) == 0.0
    assert tts_first_to_publish_ms({"end_of_turn": 1.0, "first_frame_published": 1.2}) is None

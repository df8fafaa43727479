import pytest

from autortc.metrics.turntaking import activity_intervals, false_yield, stop_time_ms, talk_over_ms
from autortc.testing.faults import make_speech

pytestmark = pytest.mark.unit

SR = 16000


def test_activity_intervals_on_clock():
    s = make_speech(SR, seed=3, sentences=2)
    iv = activity_intervals(s.samples, SR, lambda i: 50.0 + i / SR, merge_ms=50)
    # two sentences separated by a 100-270 ms pause
    assert len(iv) == 2
    assert iv[0][0] == pytest.approx(50.0 + s.speech_start / SR, abs=0.011)
    assert iv[-1][1] == pytest.approx(50.0 + s.speech_end / SR, abs=0.011)


def test_stop_time():
    agent = [(10.0, 12.0), (12.1, 13.5), (15.0, 16.0)]
    assert stop_time_ms(agent, 11.0) == pytest.approx(2500.0)  # 100 ms pause bridged
    assert stop_time_ms(agent, 14.0) is None  # agent silent: nothing to stop


def test_false_yield():
    agent = [(10.0, 10.6), (11.0, 13.0)]
    assert false_yield(agent, 10.2) is True  # silent 400 ms starting 400 ms after the onset
    assert false_yield([(10.0, 10.6), (10.8, 13.0)], 10.2) is False  # 200 ms dip only
    assert false_yield([(10.0, 13.0)], 10.2) is False
    assert false_yield(agent, 14.0) is None


def test_talk_over():
    assert talk_over_ms([(1.0, 2.0)], [(1.5, 3.0)]) == pytest.approx(500.0)
    assert talk_over_ms([(1.0, 2.0)], [(2.0, 3.0)]) == 0.0


def test_a_pause_the_agent_meant_is_not_a_false_yield():
    from autortc.metrics.turntaking import false_yield

    agent = [(0.0, 2.0), (2.35, 5.0)]  # a 350 ms sentence pause 0.5 s after the backchannel
    assert false_yield(agent, 1.5) is True  # without the agent's own copy it looks like a yield
    assert false_yield(agent, 1.5, intended=[(2.02, 2.33)]) is False  # its pre-RTC copy has that pause
    assert false_yield(agent, 1.5, intended=[(3.0, 3.3)]) is True  # a pause elsewhere excuses nothing


def test_barge_in_between_two_words_still_lands_on_speech():
    from autortc.metrics.turntaking import stop_time_ms

    agent = [(0.0, 1.0), (1.12, 1.8)]  # the user starts in a 120 ms gap between words
    assert stop_time_ms(agent, 1.05) == pytest.approx(750.0)
    assert stop_time_ms([(0.0, 1.0), (1.6, 2.0)], 1.3) is None  # a 600 ms silence: the agent was not speaking


def test_barge_in_in_a_long_pause_of_a_reply_the_agent_reports_cut():
    """rx4 turn_barge_in_stop: "Once upon a time," then a 0.4 s+ wait for the next TTS segment; the
    user barged in inside it and the agent stopped 0.6 s later. Not "nothing to stop"."""
    from autortc.metrics.turntaking import stop_time_ms

    reply = [(0.8, 1.7), (2.2, 2.45)]  # the reply's audio (up to the agent's next reply)
    assert stop_time_ms(reply, 1.82) is None  # without the protocol's word: a 500 ms silence, not speaking
    assert stop_time_ms(reply, 1.82, cut_reply=(0.8, 4.4)) == pytest.approx(630.0)
    assert stop_time_ms([(0.8, 1.7)], 1.82, cut_reply=(0.8, 4.4)) == 0.0  # it never sounded again
    assert stop_time_ms(reply, 4.5, cut_reply=(0.8, 4.4)) is None  # after the reply ended
    assert stop_time_ms(reply, 0.5, cut_reply=(0.8, 4.4)) is None  # before it began


def test_barge_in_just_before_a_pause_of_a_reply_the_agent_reports_cut():
    """bench-20261203-171935-barge-06: the onset 15 ms before the reply's comma pause (> 300 ms); the
    reply went on after the pause until the agent stopped. The stop is the reply's last sound."""
    from autortc.metrics.turntaking import stop_time_ms

    reply = [(0.8, 1.6), (2.0, 3.0)]  # a 400 ms pause after the first clause
    assert stop_time_ms(reply, 1.585) == pytest.approx(15.0)  # bridging alone: "stopped" at the pause
    assert stop_time_ms(reply, 1.585, cut_reply=(0.8, 4.0)) == pytest.approx(1415.0)

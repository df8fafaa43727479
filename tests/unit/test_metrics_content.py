import pytest

from autortc.metrics.content import keyword_hit_rate, normalize_text, word_error_rate

pytestmark = pytest.mark.unit


def test_normalize():
    assert normalize_text("It’s  Sunny, 21°C!") == "its sunny 21c"


def test_keyword_hit_rate_whole_words_and_phrases():
    rate, missing = keyword_hit_rate("It is sunny and twenty one degrees today.", ["sunny", "twenty one", "rain"])
    assert rate == pytest.approx(2 / 3)
    assert missing == ["rain"]
    assert keyword_hit_rate("sunnyside", ["sunny"]) == (0.0, ["sunny"])
    assert keyword_hit_rate("anything", []) == (None, [])


def test_wer():
    assert word_error_rate("it is sunny today", "It is sunny today.") == 0.0
    assert word_error_rate("it is sunny today", "it is funny today") == pytest.approx(0.25)
    assert word_error_rate("it is sunny today", "") == 1.0
    assert word_error_rate("", "x") is None

"""Sentence segmentation for streaming TTS (system.tts.segmenter)."""

from __future__ import annotations

import re

import pytest

from system.tts.segmenter import SegmenterOptions, segment_text, spoken_len

pytestmark = pytest.mark.unit

NO_FIRST_CUT = SegmenterOptions(first_segment_max_chars=None)


def _chars(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_blank_text_gives_no_segment() -> None:
    assert segment_text("") == []
    assert segment_text("   \n\t ") == []


def test_text_shorter_than_short_threshold_is_not_split() -> None:
    text = "Hi! How can I help?"  # 19 characters < 20
    assert len(text) < SegmenterOptions().short_text_chars
    assert segment_text(text) == [text]


def test_text_at_short_threshold_is_split() -> None:
    assert segment_text("Hi there. How are you?") == ["Hi there.", "How are you?"]


def test_splits_at_sentence_ends_and_keeps_every_character() -> None:
    text = "Thanks for calling. I can help with that! Would you like a refund? Great…  Done."
    segments = segment_text(text, NO_FIRST_CUT)
    assert segments == ["Thanks for calling.", "I can help with that!", "Would you like a refund?", "Great…", "Done."]
    assert _chars("".join(segments)) == _chars(text)


def test_fragment_below_min_segment_is_merged() -> None:
    segments = segment_text("Okay then. No. We will start the installation right now.", NO_FIRST_CUT)
    assert segments == ["Okay then. No.", "We will start the installation right now."]
    assert all(len(s) >= SegmenterOptions().min_segment_chars for s in segments)


def test_leading_fragment_is_merged_forward() -> None:
    segments = segment_text("Ok. The technician will arrive tomorrow morning.", NO_FIRST_CUT)
    assert segments == ["Ok. The technician will arrive tomorrow morning."]


def test_abbreviations_initials_and_decimals_do_not_split() -> None:
    text = "Dr. Smith paid $3.14 to J. R. Jones in the U.S. yesterday, e.g. by card, for order No. 5."
    assert segment_text(text, NO_FIRST_CUT) == [text]


def test_quotes_and_brackets_stay_with_their_sentence() -> None:
    text = 'She said "stop." Then she left (quietly.) The end came.'
    assert segment_text(text, NO_FIRST_CUT) == ['She said "stop."', "Then she left (quietly.)", "The end came."]


def test_cjk_terminators_and_newlines_split() -> None:
    assert segment_text("你好，我们开始吧。今天天气很好！你要去哪里？") == ["你好，我们开始吧。", "今天天气很好！", "你要去哪里？"]
    assert segment_text("First line without a stop\nSecond line without one") == [
        "First line without a stop", "Second line without one"]


def test_long_sentence_is_cut_at_clause_marks_within_the_limit() -> None:
    opts = SegmenterOptions(max_segment_chars=40, first_segment_max_chars=None)
    text = ("The weather looks mixed this weekend, with rain on Saturday morning, "
            "clearing by the afternoon; Sunday is bright but windy.")
    segments = segment_text(text, opts)
    assert len(segments) > 1
    assert all(len(s) <= 40 for s in segments), segments
    assert segments[0].endswith(",")
    assert _chars("".join(segments)) == _chars(text)


def test_long_sentence_without_clause_marks_is_cut_at_spaces() -> None:
    opts = SegmenterOptions(max_segment_chars=30, first_segment_max_chars=None)
    text = "one two three four five six seven eight nine ten eleven twelve thirteen"
    segments = segment_text(text, opts)
    assert all(len(s) <= 30 for s in segments)
    assert " ".join(segments) == text


def test_single_word_longer_than_limit_is_left_whole() -> None:
    word = "Supercalifragilisticexpialidocious" * 2
    assert segment_text(word, SegmenterOptions(max_segment_chars=20, first_segment_max_chars=None)) == [word]


def test_first_segment_is_cut_once_for_early_audio() -> None:
    text = "The weather this weekend looks mixed: light rain on Saturday morning, clearing by the afternoon."
    segments = segment_text(text)
    assert segments == ["The weather this weekend looks mixed:",
                        "light rain on Saturday morning, clearing by the afternoon."]
    assert len(segments[0]) <= SegmenterOptions().first_segment_max_chars
    # only the first segment gets the tight limit
    assert len(segments[1]) > SegmenterOptions().first_segment_max_chars


def test_digits_count_as_their_spoken_length() -> None:
    assert spoken_len("gate 42") == 7 + 2 * 4
    text = "Your balance is $1,284.50, and the next payment of $96.20 is due on March 3rd, 2027."
    segments = segment_text(text)
    # "Your balance is $1,284.50," is 26 characters but ~50 spoken: cut before the number (and
    # before "is", a weak last word)
    assert segments[0] == "Your balance"
    assert spoken_len(segments[0]) <= SegmenterOptions().first_segment_max_chars
    assert _chars("".join(segments)) == _chars(text)


def test_segment_limits_ramp_up_and_later_cuts_need_clause_marks() -> None:
    opts = SegmenterOptions()
    text = ("Thanks for calling support and for waiting so patiently today, I can see that your router "
            "went offline about twenty minutes ago, which usually means the line was reset from our side.")
    segments = segment_text(text, opts)
    assert len(segments) >= 3
    limits = [opts.first_segment_max_chars * opts.segment_growth ** i for i in range(len(segments))]
    assert all(spoken_len(seg) <= lim for seg, lim in zip(segments, limits)), segments
    assert all(seg.endswith(",") for seg in segments[1:-1])  # later cuts only at clause marks
    # no clause mark and a short tail: no cut that would strand "morning."
    assert segment_text("Flight 217 lands at 10:05 the next morning after a long delay over the ocean.")[-1] \
        .endswith("morning after a long delay over the ocean.")


def test_after_a_short_first_segment_the_second_may_be_cut_between_words() -> None:
    """distortion_sibilant's reply: "Sure." (5 chars, ~0.5 s of audio) then 88 chars with no clause
    mark within the next limit: the second segment was synthesised whole while "Sure." played, and the
    probe heard a 450-530 ms hole after it (suite runs rx5, rx7)."""
    opts = SegmenterOptions(first_segment_max_chars=24)
    text = "Sure. Sally sells shiny silver seashells beside the sea, and she sings softly to the seagulls."
    segments = segment_text(text, opts)
    assert segments[:2] == ["Sure.", "Sally sells shiny silver seashells beside"]  # "the" is not left last
    limits = [opts.first_segment_max_chars * opts.segment_growth ** i for i in range(len(segments))]
    assert all(spoken_len(seg) <= lim for seg, lim in zip(segments, limits)), segments
    assert _chars("".join(segments)) == _chars(text)
    # a short first sentence whose next one fits its limit stays as it was
    assert segment_text("Hello! I am the test agent. How can I help you today?", opts)[:2] == \
        ["Hello!", "I am the test agent."]


def test_invalid_options_raise() -> None:
    with pytest.raises(ValueError, match="max_segment_chars"):
        SegmenterOptions(max_segment_chars=2)
    with pytest.raises(ValueError, match="first_segment_max_chars"):
        SegmenterOptions(first_segment_max_chars=0)


@pytest.mark.parametrize(("text", "first"), [
    ("The cheetah is the fastest animal on land and it runs very fast indeed today.", "The cheetah"),
    ("Your package is on its way and should arrive on Friday afternoon.", "Your package"),
    ("Sunny weather tomorrow with clear skies over the whole region and the coast.", "Sunny weather tomorrow"),
])
def test_a_cut_between_words_does_not_end_on_a_weak_word(text: str, first: str) -> None:
    segments = segment_text(text, SegmenterOptions(first_segment_max_chars=24))
    assert segments[0] == first
    assert _chars("".join(segments)) == _chars(text)


def test_the_back_off_keeps_a_minimum_head() -> None:
    # every word before the limit is weak: the plain word cut is kept rather than a tiny head
    segments = segment_text("To be or not to be is the question that we all ask.", SegmenterOptions(first_segment_max_chars=12))
    assert segments[0] == "To be or not"

"""Sentence segmentation for streaming TTS: cut text where a sentence (or, if long, a clause) ends.

A sentence-at-a-time engine can only yield audio after it synthesized a whole
segment, so the first segment's length sets the time to first audio (TTFA).
:func:`segment_text` cuts at sentence ends, cuts overlong sentences at clause
punctuation, and merges fragments too small to be worth a synthesis call.

Thresholds (seed system's TTS streaming defaults): segments shorter than 4
characters are merged into a neighbour; text shorter than 20 characters is never
split.  ``first_segment_max_chars`` (40), ``segment_growth`` (2) and
``max_segment_chars`` (160) are ours: the first segment alone sets TTFA, and 40
spoken characters are ~2.5–3.5 s of speech (60–90 ms per character on the bundled
voice), ~0.15–0.2 s of piper CPU time on an idle 2-core machine; each later segment
only has to be ready before the audio before it has played out, so the limit
doubles per segment (40, 80, 160) up to 160.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DIGIT_WEIGHT", "SegmenterOptions", "segment_text", "spoken_len"]


@dataclass(frozen=True, kw_only=True)
class SegmenterOptions:
    """Thresholds of :func:`segment_text`, in characters.

    The two maximum lengths are compared with spoken lengths (:func:`spoken_len`: a digit
    counts as 5 characters, since numbers expand when read).

    Attributes:
        min_segment_chars: a segment with fewer characters (after stripping) is merged
            into the previous segment (or the next one when it is first).
        short_text_chars: text with fewer characters is returned as one segment.
        max_segment_chars: a sentence longer than this is cut at the last clause mark
            (``, ; : — –``) or, failing that, the last space before the limit;
            ``None`` never cuts inside a sentence.
        first_segment_max_chars: the same cut for the first segment, so the first audio
            comes early; ``None`` treats the first segment like the others.
        segment_growth: the limit of each following segment is this many times the
            previous one (40, 80, 160, ...) until it reaches ``max_segment_chars``, so each
            segment is ready before the audio before it has played out.
    """

    min_segment_chars: int = 4
    short_text_chars: int = 20
    max_segment_chars: int | None = 160
    first_segment_max_chars: int | None = 40
    segment_growth: float = 2.0

    def __post_init__(self) -> None:
        if self.min_segment_chars < 0 or self.short_text_chars < 0:
            raise ValueError("min_segment_chars and short_text_chars must be >= 0")
        if self.segment_growth < 1.0:
            raise ValueError(f"segment_growth: expected >= 1, got {self.segment_growth!r}")
        for name in ("max_segment_chars", "first_segment_max_chars"):
            value = getattr(self, name)
            if value is not None and value < max(1, self.min_segment_chars):
                raise ValueError(f"{name}: expected None or >= min_segment_chars "
                                 f"({self.min_segment_chars}), got {value!r}")


# Words whose trailing period does not end a sentence (compared lower-case, without the dot).
_ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "e.g", "i.e", "cf",
    "inc", "ltd", "co", "corp", "dept", "approx", "est", "ave",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "u.s", "u.k", "a.m", "p.m",
})

# Abbreviations only when a number follows ("No. 5", "Fig. 3"); "No. We" ends a sentence.
_NUMBER_ABBREVIATIONS = frozenset({"no", "nos", "fig", "vol", "pp"})

# A sentence end: terminal marks, optional closing quotes/brackets, then whitespace or end
# of text; or CJK terminal marks (no space follows them); or a line break.
_SENTENCE_END = re.compile(r"""[.!?…]+["'”’)\]]*(?=\s|$)|[。！？]+["'”’）]*|\n+""")
_CLAUSE_END = re.compile(r"""[,;:—–]["'”’)\]]*(?=\s)""")
_WORD_BEFORE = re.compile(r"(\S+)$")

DIGIT_WEIGHT = 5
"""Characters a digit counts for in the segment limits (see :func:`spoken_len`)."""


def _is_abbreviation(text: str, end: int) -> bool:
    """True if the period ending at ``end`` (exclusive) belongs to an abbreviation or initial."""
    match = _WORD_BEFORE.search(text, 0, end - 1)
    if match is None or match.end() != end - 1:
        return False
    word = match.group(1).lower().lstrip("(\"'“‘")
    if word in _NUMBER_ABBREVIATIONS:
        rest = text[end:].lstrip()
        return bool(rest) and rest[0].isdigit()
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def _split_sentences(text: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        mark = match.group(0)
        if mark == "." and _is_abbreviation(text, match.end()):
            continue
        pieces.append(text[start:match.end()])
        start = match.end()
    pieces.append(text[start:])
    return [p.strip() for p in pieces if p.strip()]


def spoken_len(text: str) -> int:
    """Estimated spoken length in characters: a digit counts as :data:`DIGIT_WEIGHT` characters.

    Numbers expand when read ("217" → "two hundred seventeen", "2027" → "twenty twenty
    seven": 4–7 letters per digit), and synthesis time follows the spoken length.
    """
    return len(text) + (DIGIT_WEIGHT - 1) * sum(1 for c in text if c.isdigit())


def _fitting_prefix(text: str, limit: int) -> int:
    """Number of leading characters of ``text`` whose spoken length is <= ``limit``."""
    total = 0
    for i, c in enumerate(text):
        total += DIGIT_WEIGHT if c.isdigit() else 1
        if total > limit:
            return i
    return len(text)


def _split_long(sentence: str, limit: int, max_cuts: int | None = None, *, clause_only: bool = False,
                min_tail: int = 0) -> list[str]:
    parts: list[str] = []
    rest = sentence
    while spoken_len(rest) > limit and (max_cuts is None or len(parts) < max_cuts):
        # one character past the limit, so a clause mark or space right at the limit is seen
        head = rest[:_fitting_prefix(rest, limit) + 1]
        cut = max((m.end() for m in _CLAUSE_END.finditer(head)), default=-1)
        if cut <= 0 and not clause_only:
            cut = _word_cut(rest, head.rfind(" "))
        if cut <= 0 or spoken_len(rest[cut:].strip()) < min_tail:
            break  # one word longer than the limit, or a cut that would strand a tiny tail
        parts.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        parts.append(rest)
    return [p for p in parts if p]


# Words a cut between words must not leave at the end of a segment: piper says a segment's last
# word as the end of an utterance ("The cheetah is THE. | fastest animal..."), and whisper tiny
# then misheard the reply ("The cheat is that fastest animal", suite run t24).
_WEAK_LAST_WORDS = frozenset({
    "a", "an", "the", "of", "to", "in", "on", "at", "for", "with", "by", "from", "as", "than", "into",
    "and", "or", "but", "so", "if", "that", "which", "who", "is", "are", "was", "were", "be", "been",
    "has", "have", "had", "do", "does", "did", "can", "could", "will", "would", "should", "may",
    "might", "must", "not", "its", "your", "my", "our", "their", "his", "her", "this", "these",
    "those", "very", "some", "any", "no",
})
_MIN_WORD_CUT_CHARS = 8
"""A cut between words backs off over weak last words only while this much text stays before it."""


def _word_cut(text: str, cut: int) -> int:
    """``cut`` (a space index in ``text``, or -1) moved back over weak last words (see above).

    Stops at ``_MIN_WORD_CUT_CHARS``: "Your package is on its" → "Your package", but "To be"
    stays as it is. Returns the original ``cut`` when no better one exists.
    """
    best = cut
    while best > 0:
        head = text[:best].rstrip()
        last = head.rsplit(" ", 1)[-1].lower().strip("\"'“”‘’()")
        if last not in _WEAK_LAST_WORDS:
            return best
        prev = head.rfind(" ")
        if prev <= 0 or spoken_len(text[:prev].strip()) < _MIN_WORD_CUT_CHARS:
            return cut
        best = prev
    return cut


def _merge_small(segments: list[str], min_chars: int) -> list[str]:
    merged: list[str] = []
    for seg in segments:
        if merged and len(seg) < min_chars:
            merged[-1] = f"{merged[-1]} {seg}"
        elif merged and len(merged[-1]) < min_chars:
            merged[-1] = f"{merged[-1]} {seg}"
        else:
            merged.append(seg)
    return merged


def segment_text(text: str, options: SegmenterOptions | None = None) -> list[str]:
    """Cut ``text`` into segments to synthesize one after another, in order.

    Args:
        text: any text; surrounding whitespace is dropped.
        options: thresholds; ``None`` = the defaults of :class:`SegmenterOptions`.

    Returns:
        Stripped, non-empty segments whose concatenation (joined by single spaces)
        holds every non-space character of ``text`` in order; ``[]`` for blank text.
        The first segment has a spoken length of at most ``first_segment_max_chars``
        unless it is one word, the next ones ``segment_growth`` times more each.
        Sentence ends followed by whitespace (``.``, ``!``, ``?``, ``…``, with closing
        quotes), CJK ``。！？`` and line breaks cut; a period after a known abbreviation
        (``Dr.``, ``e.g.``, ``U.S.``) or a single-letter initial does not; decimals
        (``3.14``) never do, since no space follows the point.
    """
    opts = options or SegmenterOptions()
    stripped = text.strip()
    if not stripped:
        return []
    if len(stripped) < opts.short_text_chars:
        return [stripped]
    segments = _split_sentences(stripped)
    if opts.max_segment_chars is not None:
        segments = [part for seg in segments for part in _split_long(seg, opts.max_segment_chars)]
    if opts.first_segment_max_chars is not None:
        segments = _ramp_up(segments, opts)
    return _merge_small(segments, opts.min_segment_chars)


def _ramp_up(segments: list[str], opts: SegmenterOptions) -> list[str]:
    """Cut the leading segments to limits growing by ``segment_growth`` from ``first_segment_max_chars``.

    Each segment only has to be synthesized while the audio before it plays, and that
    audio grows with every segment, so the limit may grow too; it stops at
    ``max_segment_chars`` (or the first segment that already fits).  Only the first cut
    may fall between two words (and the second, after a first segment shorter than half its
    limit); later ones need a clause mark, and no cut leaves a remainder shorter than
    ``short_text_chars``.
    """
    assert opts.first_segment_max_chars is not None
    out: list[str] = []
    pending = list(segments)
    limit = float(opts.first_segment_max_chars)
    cap = opts.max_segment_chars if opts.max_segment_chars is not None else float("inf")
    while pending and limit < cap:
        # the first cut may fall between words (TTFA); later ones only at clause marks (prosody)
        # the second cut may fall between words too when the first segment is short: "Sure." then
        # a sentence with no clause mark within the next limit was synthesised whole while "Sure."
        # played (~0.5 s of audio for ~0.5-0.8 s of piper) and the user heard the wait (suite runs
        # rx5/rx7, distortion_sibilant: a 450-530 ms hole after "Sure.")
        short_first = len(out) == 1 and spoken_len(out[0]) * 2 < opts.first_segment_max_chars
        head, *rest = _split_long(pending.pop(0), int(limit), max_cuts=1, clause_only=bool(out) and not short_first,
                                  min_tail=opts.short_text_chars)
        out.append(head)
        pending[:0] = rest
        limit *= opts.segment_growth
        if not rest and pending and spoken_len(pending[0]) <= limit:
            break  # the next segment fits the ramp: no more cuts needed
    return out + pending

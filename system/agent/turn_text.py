"""Is the user's turn over? A rule on the transcript of the speech so far.

The VAD ends an utterance after 200 ms of silence, which is what makes the agent fast; but a
speaker who pauses inside a turn ("I have a question." ... "What time does the museum open?",
"I w- w- want to ..." ... "check my balance") is then answered into the pause. The bundled STT
(:class:`system.agent.stt_whisper.WhisperStreamingSTT`) asks :func:`hold_reason` about each
decoded utterance: when it names a reason, the final transcript is held (up to the STT's
``hold_s``), and if the user goes on, the held audio and the new speech are decoded together.

Why text and not LiveKit's local audio end-of-turn model (``livekit.local_inference.EOT``,
``TurnDetector(version="v1-mini")``): on the bundled case WAVs (piper voices, after an Opus
round trip) it gave P(turn ended) 0.13-0.28 for "I have a question." and 0.06-0.74 for complete
questions (content_weather 0.09-0.21, below its own 0.36 threshold), so it separates nothing
here; LiveKit's detector also needs a VAD silence window of at least 0.25 s.

The rules look only at how the text ends, so a complete request is never slowed by them:

* whisper writes a trailing-off voice as "..." (a cut-off word as "w-", a clause that goes on
  with ",");
* a last word that an English request does not end on (conjunction, preposition, article,
  possessive, auxiliary, filler), unless whisper ended the text with "?" or "!";
* an inverted question stopped before its verb ("How do you", "Where can I?" — with "?" only after a
  wh-word other than "why");
* a last verb that needs an object and has none ("How do I make?"), even with "?", unless a
  wh-word may be its object ("What should I make?");
* the whole utterance is a preamble that announces the request ("I have a question.",
  "One more thing.", "So,").
"""

from __future__ import annotations

import re

__all__ = ["hold_is_short", "hold_reason"]

# words an English request does not end on (a question mark overrides: "What is it made of?")
_OPEN_ENDINGS = frozenset("""
and or but so because if than that when while although whether
of to for with from into onto at by about as like
the a an my your his her its our their this these those some any every each
is are was were am be been do does did can could would will should shall may might must
have has had i we i'm we're you're it's there's what's
um uh er erm hmm mm
""".split())

# verbs a request does not end on without their object: whisper ends the partial "How do I make" of the slow
# speaker's "How do I make a cup of tea?" with "?" (faultbench fb-bots-s14, clean turns b010 and b103: the reply
# started in the pause after "make", talk-over 1.97-1.99 s). A wh-word anywhere may be the object, fronted
# ("What should I make?", "which documents I should bring"): no hold then.
_NEEDS_OBJECT = frozenset("""
make get put set take bring give find buy use book cook fix build order cancel reset send show
""".split())
_WH_OBJECT = frozenset("what which who whom whatever".split())

# an inverted question stopped before its main verb: a do/modal auxiliary followed by its subject ("How do
# you", "Where can I", "Could you"). Session 23, run s1j1 (the suite on a 1.43-core cgroup, --jobs 1): the slow
# speaker's "How do ... I make a cup of tea?" decoded after the first pause as "How do you" (whisper's "I" ->
# "you"), answered into the pause: talk-over 3131 ms, keywords FAIL. "it" is left out ("do it" ends requests
# with "do" as the main verb), so is "be" ("How are you?", "What time is it").
_AUXILIARIES = frozenset("do does did can could would will should shall may might must".split())
_SUBJECTS = frozenset("i you we they he she".split())
_WH_FRONT = frozenset("how what where when which who whom".split())  # not "why": "Why should I?" is a whole reply

_PREAMBLES = [re.compile(p) for p in (
    r"(?:(?:so|okay|ok|well|um|uh|hey|hi|hello) )*(?:i have|i've got|i got|i had) (?:a|one|another|a quick|one more|a small) question",
    r"(?:(?:so|okay|ok|well|um|uh) )*(?:a |one )?(?:quick|small|short) question",
    r"(?:(?:so|okay|ok|well|um|uh|and) )*one (?:more|last|other) thing",
    r"(?:(?:so|okay|ok|well|um|uh) )*(?:i (?:want|need|would like|wanted|'d like) to (?:ask|know)(?: you)?(?: something)?)",
    r"(?:(?:so|okay|ok|well|um|uh|hmm) )*let me (?:think|see)",
    r"(?:so|okay|ok|well|um|uh|hmm|and|but|also)",
)]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("\u2019", "'"))


def hold_reason(text: str, *, resumed: bool = False) -> str | None:
    """Why the turn whose transcript so far is ``text`` should not be answered yet, or ``None``.

    ``resumed``: ``text`` is the decode of a held utterance and the speech that followed its
    pause. Whisper then writes the pause as "..." and often ends the text the same way (the
    stutter case: "I... W-W-Wont do... Check my bank account balance..."), so a trailing "..."
    does not hold a resumed turn; the other rules do. ``None`` for an empty text.
    """
    t = text.strip()
    if not t:
        return None
    if t.endswith(("...", "\u2026")) and not resumed:
        return "trails off"
    if t.endswith(("-", "\u2014", "\u2013")):
        return "cut-off word"
    if t.endswith((",", ";", ":")):
        return "ends on a comma"
    words = _words(t)
    if not words:
        return None
    if any(p.fullmatch(" ".join(words)) for p in _PREAMBLES):
        return "preamble"
    asks = t.endswith(("?", "!"))
    if not asks and words[-1] in _OPEN_ENDINGS:
        return f"ends on {words[-1]!r}"
    if len(words) >= 2 and words[-2] in _AUXILIARIES and words[-1] in _SUBJECTS and (
            not asks or (len(words) >= 3 and words[-3] in _WH_FRONT)):
        return f"ends on {' '.join(words[-2:])!r} without its verb"
    if words[-1] in _NEEDS_OBJECT and not _WH_OBJECT.intersection(words):
        return f"ends on {words[-1]!r} without its object"
    return None


def hold_is_short(reason: str) -> bool:
    """Only a comma gets the short hold: a pause inside a clause. A last word that leaves the
    turn open ("to", "of", "is") gets the long one: run h3 decoded the stutter case's first part
    as "I want to" (no "..."), and a 0.6 s hold answered it into the 1.2 s pause (talk-over
    1850 ms); in h1 the same words with "..." held 2 s and the turn was heard whole."""
    return reason == "ends on a comma"

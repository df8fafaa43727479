"""The planted faults of the bench and what a voice engineer expects AutoRTC to say about each.

Each ``FaultEntry`` is one row of the bench table: the agent-side fault spec it plants
(``system/agent/faults.py`` ``FaultSpec``; this module must not import the agent, a unit
test checks every spec against it), where ``at_ms`` is drawn from, which gate(s) must flag
it and at which level, and which gate's measured value is printed next to the planted one.

"Caught" means: on the faulted turn, at least one of ``gates`` has a verdict at
``level`` or worse (FAIL is worse than WARN). A SKIP (not measured) never catches.

Gate names: ``audible_dropout``, ``max_gap``, ``clipping``, ``peak_spike``, ``repeats``,
``eot_to_first_audio`` are in today's ``autortc/gates/defaults.toml``. The others --
``talk_over``, ``barge_in_stop``, ``false_yield``, ``keywords``, ``hf_loss``, ``speed``,
``missing_audio``, ``no_reply`` -- are the turn gates issue 18 adds (its items 1-3, 6, 8);
the names here are the proposal and must match ``defaults.toml`` once they exist. Until
then those rows score 0/K, which is the honest state of today's verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Level = Literal["WARN", "FAIL"]
Side = Literal["path", "agent", "turn"]

LEVEL_RANK = {"PASS": 0, "SKIP": 0, "WARN": 1, "FAIL": 2}


@dataclass(frozen=True)
class FaultEntry:
    """One fault of the catalogue.

    ``spec``: the fixed part of the agent's ``FaultSpec`` (kind, size...); the plan adds
    ``at_ms`` (uniform in ``at_ms_range``, when the kind has a position) and ``seed``.
    ``needs``: case tags the fault needs (``barge_in`` for no_yield, ``backchannel`` for
    false_yield); empty: any P0 case with one ``respond`` reply. ``planted_value``: the
    ``FaultTruth`` field whose value is the planted size (``size_ms``, or a key of
    ``extra``). ``timing``: a delay used for timing truth, not for recall.
    """

    name: str
    spec: dict[str, Any]
    side: Side
    gates: tuple[str, ...]
    level: Level | None
    measure: str | None
    planted_value: str | None
    why: str
    at_ms_range: tuple[float, float] | None = None
    needs: tuple[str, ...] = ()
    timing: bool = False
    unit: str = "ms"

    @property
    def kind(self) -> str:
        return str(self.spec["kind"])

    @property
    def scored(self) -> bool:
        return not self.timing and self.level is not None


# at_ms is drawn from the first 1.5 s of the reply; the position search goes on from at_ms to
# the first place that fits (system/agent/faults.py, module docstring). On the P0 single-reply
# cases' piper replies (3.1-4.9 s) every positional fault was planted for at_ms 200, 1000 and
# 1500 (scripts/faults_on_piper.py --at 200,1000,1500).
_IN_REPLY = (200.0, 1500.0)

CATALOGUE: tuple[FaultEntry, ...] = (
    # -- path faults: after the agent's pre-RTC copy -----------------------------------------
    FaultEntry(
        "lost_frame_20", {"kind": "lost_frame"}, "path", ("audible_dropout",), "FAIL", "max_gap", "size_ms",
        "One lost 20 ms Opus frame inside a word is an audible hole; the seed's P0 rule is zero "
        "audible dropouts, so it is a FAIL (issue 18 item 5: dropouts as small as one codec frame).",
        _IN_REPLY,
    ),
    FaultEntry(
        "gap_60", {"kind": "gap", "ms": 60}, "path", ("audible_dropout",), "FAIL", "max_gap", "size_ms",
        "A 60 ms hole inside a word is clearly audible (3 frames); zero audible dropouts on P0 is a FAIL.",
        _IN_REPLY,
    ),
    FaultEntry(
        "gap_150", {"kind": "gap", "ms": 150}, "path", ("audible_dropout", "max_gap"), "FAIL", "max_gap",
        "size_ms",
        "A 150 ms hole inside a word swallows a syllable; under max_gap's 200 ms it must still be a "
        "dropout FAIL.",
        _IN_REPLY,
    ),
    FaultEntry(
        "noise_dropout_60", {"kind": "noise_dropout", "ms": 60, "level_dbfs": -45.0}, "path",
        ("audible_dropout",), "FAIL", "max_gap", "size_ms",
        "Concealment noise at -45 dBFS in place of 60 ms of speech is a dropout the listener hears; "
        "a detector keyed on digital silence misses it (issue 18 item 5).",
        _IN_REPLY,
    ),
    FaultEntry(
        "stall_500", {"kind": "stall", "ms": 500}, "path", ("max_gap",), "FAIL", "max_gap", "size_ms",
        "A 500 ms stall at a sentence pause makes a silence of pause + 500 ms, beyond any natural "
        "pause (issue 18 item 4 caps excused pauses near 400 ms); max_gap's 200 ms rule is a FAIL.",
        _IN_REPLY,
    ),
    FaultEntry(
        "rate_22k_as_24k", {"kind": "rate_22k_as_24k"}, "path", ("speed",), "WARN", "speed", "speed_ratio",
        "22.05 kHz played as 24 kHz: 8.8 % faster and a semitone and a half higher; intelligible but "
        "wrong. At least a WARN that names the ratio (issue 18 item 6).",
        unit="ratio",
    ),
    FaultEntry(
        "lowpass_3k4", {"kind": "lowpass", "cutoff_hz": 3400.0}, "path", ("hf_loss",), "WARN", "hf_loss",
        "cutoff_hz",
        "Telephone band (3.4 kHz) on a wideband Opus call: dull, sibilants smeared, still intelligible; "
        "at least a WARN named as HF loss (issue 17 text, issue 18 item 6).",
        unit="Hz",
    ),
    FaultEntry(
        "head_cut_250", {"kind": "head_cut", "ms": 250}, "path", ("missing_audio",), "FAIL", "missing_audio",
        "size_ms",
        "The first 250 ms of speech never reach the user (the first word is gone); on a P0 reply that is a "
        "FAIL, found against the agent's own copy.",
    ),
    FaultEntry(
        "tail_cut_60", {"kind": "tail_cut", "fraction": 0.6}, "path", ("keywords", "missing_audio"), "FAIL",
        "missing_audio", "size_ms",
        "The reply stops at 60 %: the user never hears its end and its last keyword (issue 18 item 3); FAIL.",
    ),
    # -- agent faults: in the agent's own copy too ---------------------------------------------
    FaultEntry(
        "clipping_x6", {"kind": "clipping", "gain": 6.0}, "agent", ("clipping",), "FAIL", "clipping",
        "clipped_ratio",
        "Gain x6 with clamping flat-tops most of the speech; the seed's clipping < 0.1 % is a FAIL, "
        "and it is judged although the agent's copy has it too (issue 18 item 4).",
        unit="ratio",
    ),
    FaultEntry(
        "click_first", {"kind": "click"}, "agent", ("peak_spike",), "WARN", "peak_spike", None,
        "A full-scale sample at the reply's start is an audible pop; the spike fingerprint is WARN-level "
        "by the seed's design, so at least WARN.",
        unit="count",
    ),
    FaultEntry(
        "repeat_40", {"kind": "repeat", "ms": 40}, "agent", ("repeats",), "WARN", "repeats", None,
        "A 40 ms chunk played twice is a stutter; the repeat fingerprint is WARN-level by the seed's design.",
        _IN_REPLY,
        unit="count",
    ),
    FaultEntry(
        "wrong_words", {"kind": "wrong_words"}, "agent", ("keywords",), "FAIL", None, None,
        "A fluent reply without the case's keywords is the wrong answer; on P0 a FAIL (issue 18 item 3).",
        unit="",
    ),
    # -- turn-taking faults ------------------------------------------------------------------
    FaultEntry(
        "premature_500", {"kind": "premature", "ms": 500}, "turn", ("talk_over",), "FAIL", "talk_over",
        "lead_ms",
        "A reply that starts 500 ms before the user has finished is talk-over, never a latency "
        "(issue 18 item 1); FAIL on respond turns.",
    ),
    FaultEntry(
        "no_reply", {"kind": "no_reply"}, "turn", ("no_reply",), "FAIL", None, None,
        "An agent that does not answer is a case FAIL with cause NO_REPLY, not a retried harness error "
        "(issue 18 item 8).",
        unit="",
    ),
    FaultEntry(
        "no_yield", {"kind": "no_yield"}, "turn", ("barge_in_stop",), "FAIL", "barge_in_stop", None,
        "An agent that talks through a barge-in stops only when its reply ends (> 1 s); the stop-time gate "
        "FAILs above 1000 ms (issue 18 item 2).",
        needs=("barge_in",),
    ),
    FaultEntry(
        "false_yield", {"kind": "false_yield"}, "turn", ("false_yield",), "FAIL", "false_yield", None,
        "Falling silent on an 'uh-huh' is a false yield; zero false yields on ignore segments (issue 18 item 2).",
        needs=("backchannel",),
        unit="count",
    ),
    # -- timing truth: delay recovery (not scored for recall) ------------------------------------
    FaultEntry(
        "delay_300", {"kind": "delay", "ms": 300}, "turn", (), None, "eot_to_first_audio", "size_ms",
        "Planted delay, paired with delay_600 on the same case: the measured difference must be 300 ms.",
        timing=True,
    ),
    FaultEntry(
        "delay_600", {"kind": "delay", "ms": 600}, "turn", (), None, "eot_to_first_audio", "size_ms",
        "Planted delay, paired with delay_300.",
        timing=True,
    ),
)


def by_name(catalogue: tuple[FaultEntry, ...] = CATALOGUE) -> dict[str, FaultEntry]:
    names = [e.name for e in catalogue]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"fault catalogue: duplicate names {sorted(dup)}")
    return {e.name: e for e in catalogue}


@dataclass(frozen=True)
class GateCoverage:
    """Which expected gates a gate set defines (the rest cannot catch anything yet)."""

    defined: tuple[str, ...]
    missing: dict[str, tuple[str, ...]] = field(default_factory=dict)  # fault name -> missing gates


def gate_coverage(gate_names: set[str] | frozenset[str], catalogue: tuple[FaultEntry, ...] = CATALOGUE) -> GateCoverage:
    """Say, per fault, which of its expected gates ``gate_names`` (e.g. of ``defaults.toml``) lacks."""
    missing = {}
    for e in catalogue:
        lack = tuple(g for g in e.gates if g not in gate_names)
        if lack:
            missing[e.name] = lack
    return GateCoverage(defined=tuple(sorted(gate_names)), missing=missing)

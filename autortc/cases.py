"""Test cases: the case-file schema, its validation, and loading a suite.

A case file (``cases/all_cases.json`` or a user's own file) is JSON, ``"v": 1``::

    {"v": 1,
     "suites": {"fast": {"mode": "per_case", "cases": ["endpoint_short_hello", ...]},
                "nightly": {"mode": "conversation", "turns": 20, "cases": [...]}},
     "cases": [{"id": "endpoint_short_hello", "p_level": "P0", "description": "...",
                "segments": [{"wav": "wavs/endpoint_short_hello.wav", "after": "start",
                              "offset_ms": 0, "expect": "respond",
                              "speech_start_ms": 300, "speech_end_ms": 1060}],
                "expect_keywords": ["help"], "reference_reply": "...",
                "expected_silence_ms": [], "gates": {}, "tags": []}]}

The full field reference is ``cases/README.md``.  WAV paths are relative to the case
file's folder and must stay inside it.  Validation collects every problem of a file
and raises one :class:`CaseFileError` whose lines each name the file, the case id
and the field.

Segment timing is relative to the agent, not the clock: ``after`` names the anchor
(``start`` of the case, ``previous_end`` of the previous segment's WAV, or the
``agent_speech_start`` / ``agent_speech_end`` of the agent's reply to the previous
segment, detected at the probe) and ``offset_ms`` the delay from it to the WAV's
first sample.  The user's speech onset is then ``anchor + offset_ms + speech_start_ms``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autortc.audio.energy import measure_speech_span  # the annotation's definition of a speech span

__all__ = [
    "ALLOWED_SAMPLE_RATES",
    "CASE_FILE_VERSION",
    "Case",
    "CaseFile",
    "CaseFileError",
    "CaseProblem",
    "Segment",
    "Suite",
    "case_file_json_schema",
    "load_case_file",
    "load_cases",
    "measure_speech_span",
    "valid_id",
]

CASE_FILE_VERSION = 1

Anchor = Literal["start", "previous_end", "agent_speech_start", "agent_speech_end"]
Expect = Literal["respond", "stop", "ignore"]
PLevel = Literal["P0", "P1", "P2"]
SuiteMode = Literal["per_case", "conversation"]

# Rates a LiveKit AudioSource accepts as they are (the SDK resamples to Opus's 48 kHz itself).
ALLOWED_SAMPLE_RATES = (8000, 16000, 24000, 32000, 44100, 48000)
MAX_WAV_SECONDS = 120.0
MAX_OFFSET_MS = 600_000

# Ids become folder names under output/runs/<run_id>/: letters, digits, "_", "-", "."
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # gate names, suite names
_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")



def valid_id(value: str) -> str | None:
    """Return why ``value`` is not a valid case id (``None`` when it is valid).

    Case ids become folder names: 1–64 characters from ``A-Z a-z 0-9 _ - .``,
    starting with a letter or digit, no ``..``, no ``/``, no control characters.
    """
    if not isinstance(value, str):
        return f"expected a string, got {type(value).__name__}"
    if not value:
        return "is empty"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "contains a control character"
    if "/" in value or "\\" in value:
        return "contains a path separator ('/' or '\\')"
    if ".." in value:
        return "contains '..'"
    if not _ID_RE.match(value):
        return "must be 1-64 characters from A-Z a-z 0-9 _ - . and start with a letter or digit"
    return None


# --------------------------------------------------------------------------- schema


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SegmentSpec(_Strict):
    """One user utterance of a case, as written in the case file."""

    wav: str = Field(min_length=1, description="WAV path relative to the case file's folder")
    after: Anchor = Field(description="anchor the segment is timed from")
    offset_ms: int = Field(default=0, ge=0, le=MAX_OFFSET_MS, description="delay from the anchor to the WAV's first sample")
    expect: Expect = Field(description="what the agent must do: respond, stop (barge-in) or ignore (backchannel)")
    transcript: str | None = Field(default=None, description="what the user says (informative)")
    speech_start_ms: int | None = Field(default=None, ge=0, description="first speech sample in the WAV, ms")
    speech_end_ms: int | None = Field(default=None, ge=0, description="last speech sample in the WAV (the user's EoT), ms")


class CaseSpec(_Strict):
    """One case as written in the case file."""

    id: str
    p_level: PLevel
    description: str = Field(min_length=1)
    segments: list[SegmentSpec] = Field(min_length=1)
    expect_keywords: list[str] = Field(default_factory=list, description="words the reply to the first segment must contain")
    reference_reply: str | None = Field(default=None, description="exact reply text to the first segment, for WER")
    expected_silence_ms: list[list[int]] = Field(
        default_factory=list, description="[start_ms, end_ms] spans of intended silence in the first segment's WAV"
    )
    gates: dict[str, float] = Field(default_factory=dict, description="gate name -> threshold override for this case")
    tags: list[str] = Field(default_factory=list)
    fault: dict[str, str | int | float] | None = Field(default=None, description="injected fault and its parameters")


class SuiteSpec(_Strict):
    mode: SuiteMode = Field(description="per_case: one room per case; conversation: one room, turns cycle through cases")
    cases: list[str] = Field(min_length=1)
    turns: int | None = Field(default=None, ge=1, le=10_000)
    description: str | None = None
    gates: dict[str, float] = Field(default_factory=dict, description="gate name -> threshold override for this suite")


class CaseFileSpec(_Strict):
    v: Literal[1]
    description: str | None = None
    suites: dict[str, SuiteSpec] = Field(default_factory=dict)
    cases: list[CaseSpec] = Field(min_length=1)


def case_file_json_schema() -> dict[str, Any]:
    """JSON Schema of a case file (for editors; validation beyond it lives in the loader)."""
    return CaseFileSpec.model_json_schema()


# --------------------------------------------------------------------------- loaded objects


@dataclass(frozen=True)
class Segment:
    """A validated segment with its WAV's facts.

    ``speech_start_ms`` / ``speech_end_ms`` are the file's annotation, or measured by
    :func:`measure_speech_span` when the file has none (``speech_span_measured``).
    """

    index: int
    wav_path: Path
    after: Anchor
    offset_ms: int
    expect: Expect
    sample_rate: int
    n_samples: int
    speech_start_ms: int
    speech_end_ms: int
    speech_span_measured: bool
    transcript: str | None = None

    @property
    def duration_ms(self) -> int:
        return int(round(self.n_samples * 1000 / self.sample_rate))

    @property
    def speech_start_sample(self) -> int:
        return int(round(self.speech_start_ms * self.sample_rate / 1000))

    @property
    def eot_sample(self) -> int:
        """Sample index of the user's end of speech in this segment's WAV."""
        return int(round(self.speech_end_ms * self.sample_rate / 1000))


@dataclass(frozen=True)
class Case:
    """A validated case.  ``expect_keywords``, ``reference_reply`` and
    ``expected_silence_ms`` concern the first segment (the turn that opens the case)."""

    id: str
    p_level: PLevel
    description: str
    segments: tuple[Segment, ...]
    expect_keywords: tuple[str, ...] = ()
    reference_reply: str | None = None
    expected_silence_ms: tuple[tuple[int, int], ...] = ()
    gates: Mapping[str, float] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    fault: Mapping[str, str | int | float] | None = None
    source: Path | None = None

    @property
    def sample_rate(self) -> int:
        return self.segments[0].sample_rate


@dataclass(frozen=True)
class Suite:
    """A named selection of cases.

    ``per_case``: every case in its own room, in ``case_ids`` order.
    ``conversation``: one room, ``turns`` user turns cycling through ``case_ids``.
    """

    name: str
    mode: SuiteMode
    case_ids: tuple[str, ...]
    turns: int | None = None
    description: str | None = None
    gates: Mapping[str, float] = field(default_factory=dict)

    def turn_case_ids(self, turns: int | None = None) -> tuple[str, ...]:
        """Case id of every turn: ``case_ids`` cycled to ``turns`` (default: the suite's).

        For a ``per_case`` suite without ``turns`` this is ``case_ids``.
        """
        n = turns if turns is not None else (self.turns if self.turns is not None else len(self.case_ids))
        if n < 1:
            raise ValueError(f"suite {self.name!r}: turns must be >= 1, got {n}")
        return tuple(self.case_ids[i % len(self.case_ids)] for i in range(n))


@dataclass(frozen=True)
class CaseFile:
    path: Path
    cases: tuple[Case, ...]
    suites: Mapping[str, Suite]

    def case(self, case_id: str) -> Case:
        for c in self.cases:
            if c.id == case_id:
                return c
        raise KeyError(f"{self.path}: no case {case_id!r}")

    def select(self, suite: str | None = None) -> list[Case]:
        """Cases of ``suite`` in suite order (distinct), or every case in file order."""
        if suite is None:
            return list(self.cases)
        if suite not in self.suites:
            known = ", ".join(sorted(self.suites)) or "none defined"
            raise CaseFileError(self.path, [CaseProblem(None, "suites", f"unknown suite {suite!r}; known suites: {known}")])
        by_id = {c.id: c for c in self.cases}
        seen: dict[str, Case] = {}
        for cid in self.suites[suite].case_ids:
            seen.setdefault(cid, by_id[cid])
        return list(seen.values())


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class CaseProblem:
    case_id: str | None  # None: a file-level or suite-level problem
    field: str  # e.g. "segments[1].expect", "suites.fast.cases[3]"
    message: str


class CaseFileError(ValueError):
    """A case file that does not validate; ``problems`` holds every problem found."""

    def __init__(self, path: Path | str, problems: list[CaseProblem]) -> None:
        self.path = Path(path)
        self.problems = list(problems)
        lines = []
        for p in self.problems:
            where = f"case {p.case_id!r}: " if p.case_id is not None else ""
            lines.append(f"{self.path}: {where}{p.field}: {p.message}")
        head = f"{self.path}: {len(self.problems)} problem(s) in case file" if len(lines) > 1 else None
        super().__init__("\n".join(([head] if head else []) + lines))


# --------------------------------------------------------------------------- speech span


# --------------------------------------------------------------------------- loading


def load_cases(path: Path, *, suite: str | None = None) -> list[Case]:
    """Load and validate a case file; return the cases of ``suite`` (or all, in file order).

    For a ``conversation`` suite this returns its distinct cases; the turn order is
    ``load_case_file(path).suites[name].turn_case_ids()``.

    Raises:
        CaseFileError: the file is missing, is not JSON, or fails validation; the
            message has one line per problem naming the file, the case id and the field.
    """
    return load_case_file(path).select(suite)


def load_case_file(path: Path) -> CaseFile:
    """Load and validate a whole case file (cases and suites); see :func:`load_cases`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CaseFileError(path, [CaseProblem(None, "(file)", "case file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseFileError(path, [CaseProblem(None, "(file)", f"cannot read case file ({exc})")]) from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CaseFileError(
            path, [CaseProblem(None, "(file)", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")]
        ) from exc
    if not isinstance(raw, dict):
        raise CaseFileError(path, [CaseProblem(None, "(file)", f"expected a JSON object at top level, got {type(raw).__name__}")])
    if "v" in raw and raw["v"] != CASE_FILE_VERSION:
        raise CaseFileError(
            path, [CaseProblem(None, "v", f"unsupported case file version {raw['v']!r}; expected {CASE_FILE_VERSION}")]
        )

    try:
        spec = CaseFileSpec.model_validate(raw)
    except ValidationError as exc:
        raise CaseFileError(path, _problems_from_pydantic(exc, raw)) from None

    problems: list[CaseProblem] = []
    base = path.resolve().parent
    cases: list[Case] = []
    seen_ids: dict[str, int] = {}
    for i, cs in enumerate(spec.cases):
        why = valid_id(cs.id)
        if why is not None:
            problems.append(CaseProblem(cs.id, "id", f"invalid case id: {why}"))
            continue
        if cs.id in seen_ids:
            problems.append(CaseProblem(cs.id, "id", f"duplicate case id (cases[{seen_ids[cs.id]}] and cases[{i}])"))
            continue
        seen_ids[cs.id] = i
        case = _load_case(cs, base, path, problems)
        if case is not None:
            cases.append(case)

    suites: dict[str, Suite] = {}
    for name, ss in spec.suites.items():
        suite = _check_suite(name, ss, seen_ids, problems)
        if suite is not None:
            suites[name] = suite

    if problems:
        raise CaseFileError(path, problems)
    return CaseFile(path=path, cases=tuple(cases), suites=suites)


def _problems_from_pydantic(exc: ValidationError, raw: dict[str, Any]) -> list[CaseProblem]:
    problems = []
    for err in exc.errors():
        loc = list(err["loc"])
        case_id: str | None = None
        if len(loc) >= 2 and loc[0] == "cases" and isinstance(loc[1], int):
            entry = raw.get("cases", [])[loc[1]] if isinstance(raw.get("cases"), list) else None
            cid = entry.get("id") if isinstance(entry, dict) else None
            case_id = cid if isinstance(cid, str) else f"cases[{loc[1]}]"
            loc = loc[2:]
        field_name = _format_loc(loc) or "(case)"
        msg = err["msg"]
        if err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field (see cases/README.md for the fields of a case file)"
        elif "input" in err:
            shown = repr(err["input"])
            msg = f"{msg}; got {shown[:80]}"
        problems.append(CaseProblem(case_id, field_name, msg))
    return problems


def _format_loc(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _load_case(cs: CaseSpec, base: Path, path: Path, problems: list[CaseProblem]) -> Case | None:
    n_before = len(problems)

    def bad(field_name: str, message: str) -> None:
        problems.append(CaseProblem(cs.id, field_name, message))

    segments: list[Segment] = []
    for j, ss in enumerate(cs.segments):
        f = f"segments[{j}]"
        # timing semantics
        if j == 0:
            if ss.after != "start":
                bad(f"{f}.after", f"the first segment must be timed from 'start', got {ss.after!r}")
            if ss.expect != "respond":
                bad(f"{f}.expect", f"the first segment must expect 'respond' (nothing to stop or ignore yet), got {ss.expect!r}")
        else:
            prev_respond = any(s.expect == "respond" for s in cs.segments[:j])
            if ss.after in ("agent_speech_start", "agent_speech_end") and not prev_respond:
                bad(f"{f}.after", f"{ss.after!r} needs an earlier segment that expects 'respond'")
        if ss.expect in ("stop", "ignore") and ss.after != "agent_speech_start":
            bad(
                f"{f}.after",
                f"a segment that expects {ss.expect!r} talks into the agent's reply, so it must be timed "
                f"from 'agent_speech_start', got {ss.after!r}",
            )
        if ss.expect == "respond" and ss.after == "agent_speech_start":
            bad(f"{f}.expect", "a segment timed into the agent's reply must expect 'stop' or 'ignore', got 'respond'")
        if (ss.speech_start_ms is None) != (ss.speech_end_ms is None):
            bad(f"{f}.speech_start_ms", "give both speech_start_ms and speech_end_ms, or neither (then they are measured)")
        seg = _load_segment(j, ss, base, bad)
        if seg is not None:
            segments.append(seg)

    if len(segments) == len(cs.segments) and segments:
        rates = {s.sample_rate for s in segments}
        if len(rates) > 1:
            bad("segments", f"all segments of a case must share one sample rate, got {sorted(rates)} Hz")

    keywords: list[str] = []
    for k, kw in enumerate(cs.expect_keywords):
        if not kw.strip():
            bad(f"expect_keywords[{k}]", "empty keyword")
        else:
            keywords.append(kw.strip().lower())
    if cs.reference_reply is not None and not cs.reference_reply.strip():
        bad("reference_reply", "empty string; use null when there is no reference reply")

    spans: list[tuple[int, int]] = []
    first_ms = segments[0].duration_ms if segments and segments[0].index == 0 else None
    for k, span in enumerate(cs.expected_silence_ms):
        f = f"expected_silence_ms[{k}]"
        if len(span) != 2:
            bad(f, f"expected [start_ms, end_ms], got {span!r}")
            continue
        a, b = span
        if not 0 <= a < b:
            bad(f, f"expected 0 <= start_ms < end_ms, got {span!r}")
            continue
        if first_ms is not None and b > first_ms:
            bad(f, f"span ends at {b} ms, after the end of segments[0]'s WAV ({first_ms} ms)")
            continue
        if spans and a < spans[-1][1]:
            bad(f, f"spans must be sorted and not overlap; {span!r} starts before the previous one ends")
            continue
        spans.append((a, b))

    for name, value in cs.gates.items():
        if not _NAME_RE.match(name):
            bad(f"gates.{name}", "gate names are lower_snake_case (a-z, 0-9, _)")
        elif not math.isfinite(value):
            bad(f"gates.{name}", f"threshold must be a finite number, got {value!r}")
    for k, tag in enumerate(cs.tags):
        if not _TAG_RE.match(tag):
            bad(f"tags[{k}]", f"tags are 1-64 characters from A-Z a-z 0-9 _ . : - ; got {tag!r}")
    if cs.fault is not None and not isinstance(cs.fault.get("kind"), str):
        bad("fault.kind", "a fault needs a string 'kind' (e.g. 'boom', 'speed_drift')")

    if len(problems) > n_before:
        return None
    return Case(
        id=cs.id,
        p_level=cs.p_level,
        description=cs.description,
        segments=tuple(segments),
        expect_keywords=tuple(keywords),
        reference_reply=cs.reference_reply,
        expected_silence_ms=tuple(spans),
        gates=dict(cs.gates),
        tags=tuple(cs.tags),
        fault=dict(cs.fault) if cs.fault is not None else None,
        source=path,
    )


def _load_segment(j: int, ss: SegmentSpec, base: Path, bad: Callable[[str, str], None]) -> Segment | None:
    import soundfile as sf

    f = f"segments[{j}].wav"
    rel = Path(ss.wav)
    if rel.is_absolute():
        bad(f, f"must be a path relative to the case file's folder, got absolute path {ss.wav!r}")
        return None
    wav_path = (base / rel).resolve()
    if not wav_path.is_relative_to(base):
        bad(f, f"{ss.wav!r} points outside the case file's folder {base}")
        return None
    if not wav_path.is_file():
        bad(f, f"WAV file not found: {wav_path} (paths are relative to {base})")
        return None
    try:
        info = sf.info(str(wav_path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        bad(f, f"{wav_path} is not a readable WAV file ({exc})")
        return None
    fmt_problems = []
    if info.format != "WAV":
        fmt_problems.append(f"container {info.format}, expected WAV")
    if info.channels != 1:
        fmt_problems.append(f"{info.channels} channels, expected mono (1)")
    if info.subtype != "PCM_16":
        fmt_problems.append(f"sample format {info.subtype}, expected PCM_16 (int16)")
    if info.samplerate not in ALLOWED_SAMPLE_RATES:
        fmt_problems.append(f"sample rate {info.samplerate} Hz, expected one of {list(ALLOWED_SAMPLE_RATES)}")
    if info.frames == 0:
        fmt_problems.append("no samples")
    elif info.frames / info.samplerate > MAX_WAV_SECONDS:
        fmt_problems.append(f"{info.frames / info.samplerate:.1f} s long, expected at most {MAX_WAV_SECONDS:.0f} s")
    if fmt_problems:
        bad(f, f"{wav_path}: " + "; ".join(fmt_problems))
        return None

    sr, n = int(info.samplerate), int(info.frames)
    duration_ms = int(round(n * 1000 / sr))
    if ss.speech_start_ms is not None and ss.speech_end_ms is not None:
        start_ms, end_ms, measured = ss.speech_start_ms, ss.speech_end_ms, False
        if not start_ms < end_ms <= duration_ms:
            bad(
                f"segments[{j}].speech_end_ms",
                f"expected speech_start_ms < speech_end_ms <= WAV duration ({duration_ms} ms), "
                f"got {start_ms} and {end_ms}",
            )
            return None
    else:
        data, _ = sf.read(str(wav_path), dtype="int16")
        span = measure_speech_span(data, sr)
        if span is None:
            bad(f, f"{wav_path}: no speech found (no 30 ms run above the speech threshold); is the file silent?")
            return None
        start_ms, end_ms, measured = span[0], span[1], True
    return Segment(
        index=j,
        wav_path=wav_path,
        after=ss.after,
        offset_ms=ss.offset_ms,
        expect=ss.expect,
        sample_rate=sr,
        n_samples=n,
        speech_start_ms=start_ms,
        speech_end_ms=end_ms,
        speech_span_measured=measured,
        transcript=ss.transcript,
    )


def _check_suite(name: str, ss: SuiteSpec, known: Mapping[str, int], problems: list[CaseProblem]) -> Suite | None:
    n_before = len(problems)
    if not _NAME_RE.match(name):
        problems.append(CaseProblem(None, f"suites.{name}", "suite names are lower_snake_case (a-z, 0-9, _)"))
    for k, cid in enumerate(ss.cases):
        if cid not in known:
            problems.append(CaseProblem(cid, f"suites.{name}.cases[{k}]", f"suite {name!r} names unknown case {cid!r}"))
    if ss.mode == "per_case":
        if ss.turns is not None:
            problems.append(
                CaseProblem(None, f"suites.{name}.turns", "'turns' only applies to mode 'conversation'; remove it")
            )
        dup = sorted({c for c in ss.cases if ss.cases.count(c) > 1})
        if dup:
            problems.append(CaseProblem(dup[0], f"suites.{name}.cases", f"case(s) listed twice in a per_case suite: {dup}"))
    elif ss.turns is None:
        problems.append(CaseProblem(None, f"suites.{name}.turns", "mode 'conversation' needs 'turns' (>= 1)"))
    if len(problems) > n_before:
        return None
    return Suite(name=name, mode=ss.mode, case_ids=tuple(ss.cases), turns=ss.turns, description=ss.description,
                 gates=dict(ss.gates))

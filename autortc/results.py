"""Typed results of a run and their JSON form: turn -> case -> run.

The runner writes ``<case>/result.json`` (:class:`CaseResult`), each turn folder's
``result.json`` (:class:`TurnResult`) and ``summary.json`` (:class:`RunSummary`);
the report reads them back.  (De)serialisation goes through pydantic so a bad
file gets an error naming the file and the field::

    write_json(path, case_result)            # atomic (tmp file + rename)
    case = read_json(path, CaseResult)       # ResultFileError on bad content

Units: times in ms unless the name says otherwise; ratios 0..1; ``None`` = not measured.
"""

from __future__ import annotations

import functools

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

RESULT_VERSION = 1

Status = Literal["PASS", "WARN", "FAIL", "SKIP"]
"""Gate/turn/case/run verdicts.  SKIP: no data for the gate (never counts as PASS in a rate)."""

CaptureStatusName = Literal["OK", "POST_SILENT", "PRE_MISSING", "POST_MISSING", "PRE_SILENT"]

_ORDER = {"SKIP": 0, "PASS": 1, "WARN": 2, "FAIL": 3}


def worst(statuses: list[str] | tuple[str, ...], *, empty: Status = "SKIP") -> Status:
    """Worst of verdicts (FAIL > WARN > PASS > SKIP)."""
    return max(statuses, key=lambda s: _ORDER[s]) if statuses else empty  # type: ignore[return-value]


@dataclass
class GateVerdict:
    """One gate checked against one turn (``scope="turn"``) or the whole run (``scope="run"``).

    ``measured`` is the value compared (for run gates, the aggregate, e.g. P95);
    ``threshold`` the limit that decided ``status``; ``worst_case``/``worst_trace``
    point at the turn with the worst value for run gates.
    """

    gate: str
    status: Status
    measured: float | None
    threshold: float | None
    op: str
    scope: Literal["turn", "run"] = "turn"
    metric: str = ""
    case_id: str | None = None
    trace_id: str | None = None
    turn_index: int | None = None
    warn_threshold: float | None = None
    n: int | None = None
    message: str = ""
    expected_n: int | None = None  # turns that should have measured it (run scope); n = measured


@dataclass
class GateInfo:
    """A gate as it applied in a run (``summary.json``): the report shows these, never the defaults.

    Fields mirror :class:`autortc.gates.GateSpec` (see ``autortc/gates/defaults.toml``).
    """

    name: str
    metric: str
    op: str
    scope: Literal["turn", "run"] = "turn"
    aggregate: str = "p95"
    fail: float | None = None
    warn: float | None = None
    p_levels: list[str] | None = None
    enabled: bool = True
    title: str = ""
    source: str = ""
    fix: str = ""


@dataclass
class Interval:
    start_ms: float
    end_ms: float


@dataclass
class LatencyMetrics:
    eot_to_first_audio_ms: float | None = None
    first_audio_t: float | None = None  # host monotonic s of the first audible sample at the probe
    tts_first_to_publish_ms: float | None = None  # from the reply's release: max(first chunk, end of turn)
    tts_first_held_ms: float | None = None  # a preemptive first chunk's wait for the end of turn
    llm_ttft_ms: float | None = None
    inter_arrival_p95_ms: float | None = None
    inter_arrival_max_ms: float | None = None
    agent_reported_ms: float | None = None
    reported_vs_heard_ms: float | None = None  # heard - reported: silence the agent does not see
    user_kpi_ms: float | None = None  # browser-side, filled by the browser harness (clamped at 0, as gates use it)
    user_kpi_raw_ms: float | None = None  # the page's own, unclamped (< 0: talk-over): the second receiver
    clock_sync_rtt_ms: float | None = None  # page -> host clock sync round trip (its error <= RTT/2)
    # the reply was already sounding at the user's EoT (talk-over): no latency, counted apart
    premature: bool = False
    # eot_to_first_audio_ms split on one clock (autortc.metrics.instrument.latency_parts), ms:
    # user EoT -> agent end_of_turn -> first frame published -> first audible sample at the probe
    uplink_ms: float | None = None
    agent_ms: float | None = None
    downlink_ms: float | None = None
    # why a part the agent reported is not used (the reply heard followed a later decision), else None
    split_note: str | None = None


@dataclass
class ContinuityMetrics:
    max_gap_ms: float | None = None  # reply segment only, expected silence excluded
    gaps: list[Interval] = field(default_factory=list)  # ms in post_rtc_reply.wav
    excused_gaps: list[Interval] = field(default_factory=list)
    audible_dropouts: int | None = None
    dropouts: list[Interval] = field(default_factory=list)
    dropout_method: Literal["reference", "signal", ""] = ""
    silence_threshold: float | None = None
    expected_silence_coverage: float | None = None
    # the user's first segment (ms from its WAV's start), case.expected_silence_ms excused
    user_max_gap_ms: float | None = None
    user_gaps: list[Interval] = field(default_factory=list)
    user_expected_silence_coverage: float | None = None
    # --via browser, capture mode: late fake-capture chunks inside the user's speech, zero-filled
    # on the page's mic (trace.json browser.mic_underruns): the user side's timing fault, not the
    # agent's; None = not measured
    user_mic_underruns: int | None = None
    user_mic_underrun_ms: float | None = None
    # silences of the agent's own copy longer than the sentence-pause cap: judged as gaps,
    # attributed to the agent (ms in post_rtc_reply.wav)
    agent_gaps: list[Interval] = field(default_factory=list)
    # audible duration of the agent's copy the user did not get (speed-corrected), ms
    missing_audio_ms: float | None = None
    # waits of the agent's own audio output inside the reply (its framework's playback runs: a
    # TTS segment late), placed in post_rtc_reply.wav ms by the turn's published -> heard delay
    agent_output_dry: list[Interval] = field(default_factory=list)


@dataclass
class LevelMetrics:
    reply_rms: float | None = None
    full_rms: float | None = None
    pre_rms: float | None = None
    clipping_ratio: float | None = None  # post reply, 0..1
    pre_clipping_ratio: float | None = None


@dataclass
class FidelityMetrics:
    lag_ms: float | None = None  # post - pre, after cross-correlation
    mel_distance: float | None = None  # dB, -1 when capture_status != OK (seed convention)
    align_corr: float | None = None


@dataclass
class PerceptualMetrics:
    mos_lqo: float | None = None
    scored: bool = False
    reason: str = ""  # why not scored


@dataclass
class ContentMetrics:
    transcript: str | None = None
    keyword_hit_rate: float | None = None
    missing_keywords: list[str] = field(default_factory=list)
    wer: float | None = None


@dataclass
class TurnTakingMetrics:
    # respond turns: ms the reply sounded before the user's EoT (0.0 = started after EoT)
    premature_ms: float | None = None
    stop_time_ms: float | None = None
    false_yields: int | None = None
    talk_over_ms: float | None = None


@dataclass
class Fingerprints:
    peak_spike_count: int | None = None
    spikes: list[Interval] = field(default_factory=list)
    peak_derivative_max: float | None = None
    input_spike_count: int | None = None
    input_peak: float | None = None
    drift_ratio: float | None = None
    hf_energy_ratio_pre: float | None = None
    hf_energy_ratio_post: float | None = None
    hf_ratio_drop: float | None = None
    repeat_count: int | None = None
    repeats: list[Interval] = field(default_factory=list)
    speed_ratio: float | None = None  # post plays this much faster/higher than the agent's copy
    speed_change: float | None = None  # |speed_ratio - 1|


ORIGIN_TEXT = {
    "agent": "in the agent's own audio (its pre-RTC copy, or a wait of its audio output)",
    "path": "added on the way",
    "agent+path": "partly in the agent's own audio, partly added on the way",
    # after the agent's copy but with no packet missing or late at the probe's receiver: what the
    # agent sent had it (its audio output ran dry, or its encoder dropped it)
    "sender": "in what the agent sent, not in its copy (no packet missing or late at the receiver: its "
              "output ran dry or its encoder dropped the audio)",
}
"""``TurnResult.origin`` values and what they say."""


@dataclass
class ReceiverMetrics:
    """The probe's WebRTC receiver over the heard reply: differences of libwebrtc's inbound-rtp
    counters of the agent's audio (autortc/metrics/receiver.py); None = not read."""

    packets_received: int | None = None
    packets_lost: int | None = None
    concealment_events: int | None = None
    concealed_ms: float | None = None  # synthesised for missing/late packets, not silent
    silent_concealed_ms: float | None = None
    accelerate_ms: float | None = None  # removed to play faster (time stretch)
    decelerate_ms: float | None = None  # inserted to play slower
    jitter_buffer_ms: float | None = None  # mean time an emitted sample spent in the jitter buffer
    # of the heard dropouts (continuity.dropouts), how many met a concealment in the receiver; the
    # rest came with no packet missing or late at the probe
    dropouts_concealed: int | None = None


@dataclass
class UplinkMetrics:
    """The user's speech as the agent received it (``agent_input.wav`` vs ``user.wav``,
    autortc/metrics/uplink.py); None = not measured (the agent sent no input copy)."""

    delay_ms: float | None = None  # first spoken segment's end of speech: agent receipt - user hand-over
    # how late the user side handed that end of speech over against its schedule (the instrument's own:
    # its event loop held up); not part of delay_ms
    handover_late_ms: float | None = None
    delay_max_ms: float | None = None  # over the spoken segments' ends
    warp_ms: float | None = None  # first spoken segment: its start's delay - its end's (+ = the receiver compressed it)
    corr: float | None = None  # lowest normalised correlation of a segment with its copy (0..1)
    lost_ms: float | None = None  # user speech that reached the agent as silence, ms (gaps >= 20 ms)
    lost: list[Interval] = field(default_factory=list)  # where, ms in user.wav
    segments: int | None = None  # spoken segments found in the copy


@dataclass
class TurnResult:
    """All metrics and gate verdicts of one user turn (one ``<trace_id>/`` folder)."""

    case_id: str
    trace_id: str
    turn_index: int = 0
    p_level: str = "P0"
    capture_status: CaptureStatusName = "OK"
    audio_valid: bool = False
    verdict: Status = "SKIP"
    latency: LatencyMetrics = field(default_factory=LatencyMetrics)
    continuity: ContinuityMetrics = field(default_factory=ContinuityMetrics)
    level: LevelMetrics = field(default_factory=LevelMetrics)
    fidelity: FidelityMetrics = field(default_factory=FidelityMetrics)
    perceptual: PerceptualMetrics = field(default_factory=PerceptualMetrics)
    content: ContentMetrics = field(default_factory=ContentMetrics)
    turntaking: TurnTakingMetrics = field(default_factory=TurnTakingMetrics)
    fingerprints: Fingerprints = field(default_factory=Fingerprints)
    receiver: ReceiverMetrics = field(default_factory=ReceiverMetrics)
    uplink: UplinkMetrics = field(default_factory=UplinkMetrics)
    verdicts: list[GateVerdict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # metric paths this turn should have measured -> why not ("" when measured): a gate on
    # such a metric that stayed None FAILs "not measured: <reason>" on P0 turns
    expected: dict[str, str] = field(default_factory=dict)
    # where a fault arose, per metric family (ORIGIN_TEXT): attribution, never an excuse
    origin: dict[str, str] = field(default_factory=dict)
    no_reply: bool | None = None  # the agent never answered this turn (cause NO_REPLY)
    v: int = RESULT_VERSION

    def metric(self, path: str) -> Any:
        """Value at a dotted path such as ``"latency.eot_to_first_audio_ms"`` (``None`` if absent)."""
        obj: Any = self
        for part in path.split("."):
            if obj is None or not hasattr(obj, part):
                return None
            obj = getattr(obj, part)
        return obj


@dataclass
class CaseResult:
    """One case: its turns, the worst verdict, retries.  Written to ``<case>/result.json``."""

    case_id: str
    p_level: str = "P0"
    verdict: Status = "SKIP"
    turns: list[TurnResult] = field(default_factory=list)
    attempts: int = 1
    error: str | None = None
    duration_s: float | None = None
    tags: list[str] = field(default_factory=list)
    cause: str | None = None  # why the agent failed the case: NO_REPLY, AGENT_GONE, NO_AGENT, LATE_REPLY
    flaky: bool = False  # passed only on a later attempt (earlier attempts failed)
    v: int = RESULT_VERSION


@dataclass
class CaseEntry:
    """A case's line in ``summary.json``; ``result`` is the path of its result.json relative to the run dir."""

    case_id: str
    verdict: Status
    p_level: str = "P0"
    turns: int = 0
    result: str = ""
    error: str | None = None
    cause: str | None = None
    flaky: bool = False


@dataclass
class RunSummary:
    """``summary.json``: the run, its cases and the run-level gate verdicts."""

    run_id: str
    suite: str = ""
    verdict: Status = "SKIP"
    started_at: str | None = None
    ended_at: str | None = None
    cases: list[CaseEntry] = field(default_factory=list)
    gates: list[GateVerdict] = field(default_factory=list)
    gate_specs: list[GateInfo] = field(default_factory=list)  # the run's gates (defaults, --gates file, suite)
    gate_sources: list[str] = field(default_factory=list)  # files/tables they came from, in order
    case_gates: dict[str, list[GateInfo]] = field(default_factory=dict)  # case_id -> gates its overrides changed
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    v: int = RESULT_VERSION


class ResultFileError(ValueError):
    """A result/summary JSON file is missing, not JSON, or does not match its schema."""


T = TypeVar("T")


@functools.lru_cache(maxsize=None)
def _adapter(cls: type) -> Any:
    """One pydantic TypeAdapter per result type: building one costs ~16 ms, so it is built once."""
    from pydantic import TypeAdapter

    return TypeAdapter(cls)


def to_dict(obj: Any) -> Any:
    """JSON-ready dict of a result dataclass (NaN/inf become ``None``)."""
    d = _adapter(type(obj)).dump_python(obj, mode="json")
    return _clean(d)


def _clean(v: Any) -> Any:
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


def from_dict(cls: type[T], data: Any, *, source: str = "<data>") -> T:
    """Build ``cls`` from parsed JSON; :class:`ResultFileError` names ``source`` and the bad fields."""
    from pydantic import ValidationError

    try:
        return _adapter(cls).validate_python(data)
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:8])
        raise ResultFileError(f"{source}: not a valid {cls.__name__} ({errs})") from exc


def write_json(path: Path | str, obj: Any) -> Path:
    """Write a result dataclass (or plain data) as JSON atomically (temp file + ``os.replace``)."""
    from system.files import atomic_write_text

    data = obj if isinstance(obj, (dict, list)) else to_dict(obj)
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def load_json(path: Path | str, *, error: type[ValueError] = ValueError) -> Any:
    """Parsed JSON of ``path``; ``error`` (e.g. :class:`ResultFileError`) naming the file when it
    is missing or not readable JSON."""
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise error(f"{p}: file not found") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{p}: not readable JSON ({exc})") from exc


def read_json(path: Path | str, cls: type[T]) -> T:
    """Read ``path`` as ``cls``; :class:`ResultFileError` naming the file on any problem."""
    return from_dict(cls, load_json(path, error=ResultFileError), source=str(path))

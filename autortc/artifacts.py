"""The turn contract: what the user side hands to the metrics, and its file ``trace.json``.

One typed, versioned model (:class:`TurnArtifacts`) carries everything a turn's metrics need
besides the audio: the user side (segments, EoT, onset times), the probe capture (frame
arrivals, reply slices), the agent block (stages re-based to the runner's clock, LiveKit
metrics, replies, pre-RTC rate) and the case block (expected silence, keywords, reference).
This module is the only writer and reader of ``trace.json``::

    write_trace(turn_dir, artifacts)              # atomic (temp file + rename)
    artifacts = read_trace(turn_dir / "trace.json")   # TraceFileError naming file + field
    turn = load_turn(turn_dir)                    # artifacts + the turn's WAVs (TurnAudio)

``docs/trace.schema.json`` is :func:`json_schema` (a unit test keeps them equal); the prose
is ``docs/artifacts.md``.  Units: ``t_*`` seconds on the runner host's ``CLOCK_MONOTONIC``;
``*_sample`` sample indices in the named WAV; ``*_ms`` milliseconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autortc.audio import Audio, AudioFileError, load_audio

TRACE_VERSION = 2
"""v2: typed contract; ``case.expected_silence_ms`` is in ``user.wav`` ms, agent stages re-based."""

TRACE_FILE = "trace.json"
AGENT_INPUT_WAV = "agent_input.wav"
WAV_NAMES = {"user": "user.wav", "pre": "pre_rtc.wav", "full": "post_rtc_full.wav", "reply": "post_rtc_reply.wav",
             "agent_input": AGENT_INPUT_WAV}

Span = tuple[float, float]


class TraceFileError(ValueError):
    """``trace.json`` is missing, not JSON, of an unknown version, or a field is bad.

    The message names the file and the field (dotted path) and says what was expected.
    """


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserSegment(_Strict):
    """One segment the user spoke in this turn (bots: placed on the mic timeline)."""

    index: int = Field(ge=0)
    expect: Literal["respond", "stop", "ignore"]
    after: str | None = Field(default=None, description="anchor of the segment (case file's 'after')")
    offset_ms: float | None = None
    start_sample: int | None = Field(default=None, description="first sample of the segment in user.wav")
    speech_start_sample: int | None = Field(default=None, description="first speech sample in user.wav")
    eot_sample: int | None = Field(default=None, description="last speech sample + 1 in user.wav (the user's EoT)")
    t_onset: float | None = Field(default=None, description="monotonic s when the first speech sample left the user side")
    t_end: float | None = Field(default=None, description="monotonic s of the segment's end of speech")


class UserBlock(_Strict):
    """The user side: a bot's mic timeline (``source='bot'``) or the browser page."""

    source: Literal["bot", "browser"]
    wav: str | None = Field(default=None, description="file name of what the user side published (bots: user.wav)")
    sr: int | None = Field(default=None, gt=0)
    t_audio_start: float | None = Field(default=None, description="monotonic s of sample 0 of user.wav")
    speech_start_sample: int | None = None
    eot_sample: int | None = None
    t_user_eot: float | None = Field(default=None, description="monotonic s of the user's end of speech (first segment)")
    segments: list[UserSegment] = Field(default_factory=list)


class ProbeReply(_Strict):
    """One reply as the probe saw it: protocol events and where they fell in post_rtc_full.wav."""

    reply_index: int = Field(ge=0)
    start_sample: int | None = None
    end_sample: int | None = None
    t_start_recv: float | None = None
    t_end_recv: float | None = None
    interrupted: bool = False


class ReceiverSample(_Strict):
    """The probe's WebRTC receiver at one moment: libwebrtc's cumulative inbound-rtp counters of
    the agent's audio stream (what its jitter buffer, NetEq, did to the audio the probe records),
    read with the track's ``get_stats()``.  Sample counts are at ``sample_rate_hz``."""

    t: float = Field(description="monotonic s of the read (midpoint of the stats request)")
    packets_received: int = Field(ge=0)
    packets_lost: int = Field(description="RTP sequence gaps not filled later (may go down when a late packet comes)")
    concealed_samples: int = Field(ge=0, description="samples NetEq synthesised for missing/late packets")
    silent_concealed_samples: int = Field(ge=0, description="of those, samples concealed as silence")
    concealment_events: int = Field(ge=0, description="runs of concealed samples (one per loss/underrun episode)")
    inserted_samples_for_deceleration: int = Field(ge=0, description="time stretch: samples added to slow playout")
    removed_samples_for_acceleration: int = Field(ge=0, description="time stretch: samples dropped to speed it up")
    total_samples_received: int = Field(ge=0)
    jitter_buffer_delay_s: float = Field(ge=0, description="sum over emitted samples of their time in the buffer")
    jitter_buffer_emitted_count: int = Field(ge=0)
    sample_rate_hz: int = Field(default=48000, gt=0, description="rate of the sample counters (the codec's clock)")


class ProbeBlock(_Strict):
    """What the probe recorded: ``post_rtc_full.wav`` and when each frame arrived."""

    sr: int = Field(gt=0)
    full_wav: str = "post_rtc_full.wav"
    t_full_start: float | None = None
    frames: list[tuple[float, int]] = Field(default_factory=list,
                                            description="[arrival monotonic s, first sample index in post_rtc_full.wav]")
    t_reply_start_evt: float | None = None
    t_reply_end_evt: float | None = None
    reply_slice: tuple[int, int] | None = Field(default=None, description="[start, end) of post_rtc_full.wav cut into post_rtc_reply.wav")
    replies: list[ProbeReply] = Field(default_factory=list)
    receiver: list[ReceiverSample] = Field(
        default_factory=list, description="the probe's receiver counters of the agent's audio, read every ~0.1 s "
                                          "from before the first frame to after the last (empty: not read)")


class AgentReply(BaseModel):
    """One reply as the agent reported it in its ``trace`` message (extra agent fields kept)."""

    model_config = ConfigDict(extra="allow")

    reply_index: int = Field(ge=0)
    t_first_frame_published: float | None = None
    t_end: float | None = None
    interrupted: bool = False
    playback_position_s: float | None = None
    pre_rtc_sr: int | None = None
    pre_rtc_samples: int | None = None
    runs: list[tuple[float, float, float]] = Field(
        default_factory=list,
        description="the agent framework's playback runs: [offset s into the reply's audio, monotonic s it began "
                    "to play (runner clock), s played]; a new run after a gap in time = the agent's audio output "
                    "ran dry (LiveKit Agents' playback_progressed)")


class AgentInput(_Strict):
    """The agent-input copy: what the agent's audio input received in the turn (the user's speech
    as its VAD and STT got it, after the uplink), from the turn's ``turn_start`` on."""

    wav: str | None = Field(default=None, description="file name in the turn folder (None: announced, not received)")
    sr: int = Field(gt=0, description="its sample rate, Hz")
    samples: int = Field(ge=0, description="its length in samples")
    t_first_sample: float = Field(description="monotonic s (runner clock) the agent received its first sample: "
                                              "the receipt of its first frame minus that frame's duration")


class AgentBlock(_Strict):
    """From the agent's ``trace`` message; its times are re-based to the runner's clock.

    ``clock_offset_s`` = runner (t_wall − t_mono) − agent (t_wall − t_mono), added to every
    agent time; ≈0 on one host, the hosts' clock difference otherwise (accuracy = NTP sync).
    """

    stages: dict[str, float] = Field(default_factory=dict, description="stage name -> monotonic s (runner clock)")
    lk_metrics: dict[str, float] = Field(default_factory=dict, description="LiveKit Agents' own figures, ms")
    transcript: str = ""
    reply_text: str = ""
    replies: list[AgentReply] = Field(default_factory=list)
    pre_rtc_sr: int | None = None
    expected_silence_ms: list[Span] = Field(default_factory=list,
                                            description="pauses the agent meant, ms from the reply's first published sample")
    agent_input: AgentInput | None = None
    clock_offset_s: float = 0.0
    extra: dict[str, Any] = Field(default_factory=dict,
                                  description="fields of the agent's trace message this version does not interpret, "
                                              "kept verbatim (e.g. a fault injector's 'fault', 'fault_truth')")


class CaseBlock(_Strict):
    """What the case file asks of this turn."""

    p_level: str = "P0"
    expect_keywords: list[str] = Field(default_factory=list)
    expected_silence_ms: list[Span] = Field(default_factory=list,
                                            description="intended pauses of the user's first segment, ms in user.wav")
    reference_reply: str | None = None
    gates: dict[str, float] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)


class BrowserMicUnderrun(_Strict):
    """A fake-capture chunk reached the page late and Chromium zero-filled 10 ms of the page's mic
    tap (autobrowser/underruns.py). What WebRTC sent was not zeroed: the chunk was late, and if it
    was 10 ms late or more the capture skipped a tick, so the rest of the file was sent ``ms`` later."""

    at_ms: float = Field(description="where in the case WAV (ms from its start) the stream was")
    ms: float = Field(ge=0, description="zero-filled on the page (10 ms per chunk)")
    in_speech: bool = Field(description="between the case's first speech onset and its end of speech")


class BrowserBlock(_Strict):
    """The browser user side's own measurement (USER_KPI on the page)."""

    trace: str | None = None
    webm: str | None = None
    user_kpi_raw_ms: float | None = None
    user_kpi_ms: float | None = None
    is_talk_over: bool | None = None
    eot_source: str | None = None
    t_first_playout: float | None = None
    clock_sync_rtt_ms: float | None = None
    reply_complete: bool | None = None
    mic_underruns: list[BrowserMicUnderrun] | None = Field(
        default=None, description="capture mode: late fake-capture chunks the page's mic tap zero-filled (a "
                                  "lower bound: lateness within the tap FIFO's slack leaves no trace); "
                                  "None = not measured")


class TurnArtifacts(_Strict):
    """Everything of one turn but its audio; the only hand-off from runner to metrics."""

    v: Literal[2] = TRACE_VERSION
    run_id: str
    case_id: str
    trace_id: str
    turn_index: int = Field(default=0, ge=0)
    wall_offset_s: float | None = Field(default=None, description="time.time() - time.monotonic() of the writer")
    user: UserBlock
    probe: ProbeBlock | None = None
    agent: AgentBlock | None = None
    case: CaseBlock = Field(default_factory=CaseBlock)
    browser: BrowserBlock | None = None


def json_schema() -> dict[str, Any]:
    """JSON Schema of ``trace.json`` (what ``docs/trace.schema.json`` holds)."""
    schema = TurnArtifacts.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"AutoRTC trace.json v{TRACE_VERSION}"
    return schema


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "<root>"


def parse_trace(data: Any, *, source: str = "<trace>") -> TurnArtifacts:
    """Validate parsed JSON as a trace; :class:`TraceFileError` names ``source`` and the field."""
    if not isinstance(data, dict):
        raise TraceFileError(f"{source}: expected a JSON object, got {type(data).__name__}")
    if data.get("v") != TRACE_VERSION:
        raise TraceFileError(f"{source}: field 'v': expected trace version {TRACE_VERSION}, got {data.get('v')!r} "
                             "(written by another AutoRTC version)")
    try:
        return TurnArtifacts.model_validate(data)
    except ValidationError as exc:
        e = exc.errors()[0]
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise TraceFileError(f"{source}: field '{_field_path(e['loc'])}': {e['msg']}"
                             f" (got {e.get('input')!r:.80}){more}") from exc


def read_trace(path: Path | str) -> TurnArtifacts:
    """Read ``trace.json``.  Raises :class:`TraceFileError` naming the file and the bad field."""
    from autortc.results import load_json

    return parse_trace(load_json(path, error=TraceFileError), source=str(path))


def write_trace(turn_dir: Path | str, artifacts: TurnArtifacts) -> Path:
    """Write ``<turn_dir>/trace.json`` atomically; returns its path."""
    from autortc.results import write_json

    return write_json(Path(turn_dir) / TRACE_FILE, artifacts.model_dump(mode="json"))


@dataclass
class TurnAudio:
    """A turn's recordings as mono float32 (``None`` = file absent).

    ``user``: what the user side published; ``pre``: the agent's own copy of its first reply;
    ``full``: everything the probe received; ``reply``: the first reply's slice of ``full``;
    ``agent_input``: what the agent received from the user side (its own copy of the uplink).
    """

    user: Audio | None = None
    pre: Audio | None = None
    full: Audio | None = None
    reply: Audio | None = None
    agent_input: Audio | None = None


@dataclass
class LoadedTurn:
    """:func:`load_turn`'s result: ``artifacts`` is ``None`` when trace.json was unusable."""

    artifacts: TurnArtifacts | None
    audio: TurnAudio
    errors: list[str] = field(default_factory=list)


def load_turn(turn_dir: Path | str) -> LoadedTurn:
    """Read a turn folder: trace.json and the WAVs it names.  Never raises for bad artifacts;
    missing WAVs are ``None``, unreadable ones and a bad trace are lines in ``errors``."""
    d = Path(turn_dir)
    errors: list[str] = []
    try:
        art: TurnArtifacts | None = read_trace(d / TRACE_FILE)
    except TraceFileError as exc:
        errors.append(str(exc))
        art = None
    names = dict(WAV_NAMES)
    if art is not None:
        if art.user.wav:
            names["user"] = art.user.wav
        if art.probe is not None and art.probe.full_wav:
            names["full"] = art.probe.full_wav
    audio = TurnAudio()
    for key, name in names.items():
        p = d / name
        if not p.exists():
            continue
        try:
            setattr(audio, key, load_audio(p))
        except AudioFileError as exc:
            errors.append(str(exc))
    return LoadedTurn(art, audio, errors)


def main() -> None:
    """``python -m autortc.artifacts > docs/trace.schema.json`` regenerates the committed schema."""
    import sys

    sys.stdout.write(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()

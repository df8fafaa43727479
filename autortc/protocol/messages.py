"""Wire format of the AutoRTC protocol: JSON objects with ``v`` and ``type`` on one data topic.

Every message carries ``t_mono`` (sender's ``CLOCK_MONOTONIC`` seconds) and ``t_wall``
(Unix seconds) so one-host runs compare exactly and remote agents can be re-based.
"""

from __future__ import annotations

import json
import time
from typing import Any

from autortc.protocol.ids import valid_id

PROTOCOL_VERSION = 1
TOPIC = "autortc"  # reliable data packets, JSON, one message per packet
PRE_RTC_TOPIC = "autortc.pre_rtc"  # byte stream: WAV of what the agent published for a reply
AGENT_INPUT_TOPIC = "autortc.agent_input"  # byte stream: WAV of what the agent received from the user in a turn

# type -> fields that must be present besides v/type/t_mono/t_wall
REQUIRED: dict[str, tuple[str, ...]] = {
    "probe_ready": (),
    "agent_ready": (),
    "turn_start": ("trace_id",),
    "reply_start": ("trace_id", "reply_index"),
    "reply_end": ("trace_id", "reply_index", "interrupted"),
    "trace": ("trace_id", "stages"),
}

# type -> optional fields the receiver understands (docs/protocol.md's message table; a test
# reads the table against REQUIRED and OPTIONAL)
OPTIONAL: dict[str, tuple[str, ...]] = {
    "probe_ready": (),
    "agent_ready": ("agent",),
    "turn_start": ("case_id", "turn_index"),
    "reply_start": ("t_first_frame_published",),
    "reply_end": ("playback_position_s", "t_end"),
    "trace": ("lk_metrics", "transcript", "reply_text", "replies", "expected_silence_ms", "agent_input"),
}

# stage names of the ``trace`` message (all optional, the sender's CLOCK_MONOTONIC seconds).
# ``user_speech_end`` is the agent's own estimate of the user's end of speech: AutoRTC reports
# ``first_frame_published - user_speech_end`` as what the agent believes the user waited.
STAGES: tuple[str, ...] = (
    "turn_start_received", "vad_speech_start", "user_speech_end", "vad_end_of_speech", "stt_final", "end_of_turn",
    "llm_request", "llm_first_token", "llm_done", "tts_request", "tts_first_chunk", "first_frame_published",
    "reply_end",
)


Message = dict[str, Any]


class ProtocolError(ValueError):
    """A data packet on the AutoRTC topic that is not a valid v1 message."""


def valid_trace_id(trace_id: str) -> bool:
    """Trace ids become folder names: letters, digits and ``_ . : -``, no ``/`` or ``..``."""
    return valid_id(trace_id)


def make(type_: str, **fields: Any) -> Message:
    """Build a message of ``type_`` stamped with the sender's clocks."""
    if type_ not in REQUIRED:
        raise ProtocolError(f"unknown message type {type_!r}; expected one of {sorted(REQUIRED)}")
    msg: Message = {"v": PROTOCOL_VERSION, "type": type_, "t_mono": time.monotonic(), "t_wall": time.time()}
    msg.update(fields)
    _check(msg)
    return msg


def encode(msg: Message) -> bytes:
    _check(msg)
    return json.dumps(msg, separators=(",", ":")).encode()


def decode(payload: bytes | str) -> Message:
    """Parse and validate one packet; raises ``ProtocolError`` saying what is wrong."""
    try:
        msg = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from exc
    if not isinstance(msg, dict):
        raise ProtocolError("expected a JSON object")
    _check(msg)
    return msg


def _check(msg: Message) -> None:
    if msg.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"field 'v': expected {PROTOCOL_VERSION}, got {msg.get('v')!r}")
    kind = msg.get("type")
    if kind not in REQUIRED:
        raise ProtocolError(f"field 'type': expected one of {sorted(REQUIRED)}, got {kind!r}")
    missing = [f for f in REQUIRED[kind] if f not in msg]
    if missing:
        raise ProtocolError(f"{kind}: missing field(s) {missing}")
    if "trace_id" in msg and not (isinstance(msg["trace_id"], str) and valid_trace_id(msg["trace_id"])):
        raise ProtocolError(f"{kind}: field 'trace_id' {msg['trace_id']!r} is not a valid trace id")

"""The AutoRTC agent protocol (v1): what the bots need from any LiveKit agent.

Spec: ``docs/protocol.md``. ``messages`` holds the wire format shared by bots and
agents; ``livekit_agents`` is the few-lines helper for agents built on LiveKit Agents.
"""

from autortc.protocol.messages import (
    AGENT_INPUT_TOPIC,
    PRE_RTC_TOPIC,
    PROTOCOL_VERSION,
    TOPIC,
    Message,
    ProtocolError,
    decode,
    encode,
    make,
)

__all__ = ["AGENT_INPUT_TOPIC", "PRE_RTC_TOPIC", "PROTOCOL_VERSION", "TOPIC", "Message", "ProtocolError", "decode", "encode", "make"]

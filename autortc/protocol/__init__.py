"""The AutoRTC agent protocol (v1): what the bots need from any LiveKit agent.

Spec: ``docs/protocol.md``. ``messages`` holds the wire format shared by bots and
agents; ``livekit_agents`` is the few-lines helper for agents built on LiveKit Agents.
"""

from autortc.protocol.messages import (
    PRE_RTC_TOPIC,
    PROTOCOL_VERSION,
    TOPIC,
    Message,
    ProtocolError,
    decode,
    encode,
    make,
)

__all__ = ["PRE_RTC_TOPIC", "PROTOCOL_VERSION", "TOPIC", "Message", "ProtocolError", "decode", "encode", "make"]

"""The bundled voice agent: a LiveKit Agents worker with local VAD → STT → LLM → TTS.

It implements the AutoRTC agent protocol (``docs/protocol.md``) through
``autortc.protocol.agent``, the same helper a user's own agent would import.
"""

"""The voice-agent stack under test: LiveKit server, LiveKit Agents worker, token server.

AutoRTC tests any LiveKit agent that speaks the protocol in ``docs/protocol.md``;
this package is the bundled, fully local implementation used out of the box.
"""

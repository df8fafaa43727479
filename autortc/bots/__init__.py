"""Bots in the room: a user bot that speaks a case, a probe bot that records the agent.

Both run over real WebRTC through the LiveKit SDK and meet at protocol barriers
(``probe_ready`` → ``agent_ready``), never at sleeps.
"""

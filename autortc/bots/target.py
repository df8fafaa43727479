"""The LiveKit deployment under test and the per-case room around a test."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

from livekit import api

from autortc.protocol.tokens import join_token

log = logging.getLogger("autortc.bots")


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where the agent under test lives.

    ``agent_name``: dispatch explicitly to this agent (LiveKit Agents' ``agent_name``);
    ``None`` relies on automatic dispatch to every new room.
    """

    livekit_url: str
    api_key: str
    api_secret: str
    agent_name: str | None = None

    def __repr__(self) -> str:
        return f"Target(livekit_url={self.livekit_url!r}, agent_name={self.agent_name!r})"

    @property
    def http_url(self) -> str:
        return self.livekit_url.replace("ws://", "http://").replace("wss://", "https://")

    @classmethod
    def from_env(cls) -> Target:
        """``LIVEKIT_URL``, ``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET``, ``AUTORTC_AGENT_NAME``."""
        missing = [k for k in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET") if not os.environ.get(k)]
        if missing:
            raise ValueError(f"environment: {', '.join(missing)} not set (needed to reach the agent under test)")
        return cls(
            livekit_url=os.environ["LIVEKIT_URL"],
            api_key=os.environ["LIVEKIT_API_KEY"],
            api_secret=os.environ["LIVEKIT_API_SECRET"],
            agent_name=os.environ.get("AUTORTC_AGENT_NAME") or None,
        )

    def token(self, *, room: str, identity: str, kind: str | None = None, ttl_s: int = 900) -> str:
        return join_token(self.api_key, self.api_secret, room=room, identity=identity, kind=kind, ttl_s=ttl_s)


class CaseRoom:
    """``async with CaseRoom(target, name, metadata={...}):`` creates the room (its metadata = the JSON
    object, docs/protocol.md "Rooms"), dispatches the agent with the same metadata, deletes the room."""

    def __init__(self, target: Target, name: str, *, metadata: dict | None = None) -> None:
        self.target = target
        self.name = name
        self.metadata = metadata or {}
        self._api: api.LiveKitAPI | None = None

    async def __aenter__(self) -> CaseRoom:
        self._api = api.LiveKitAPI(self.target.http_url, self.target.api_key, self.target.api_secret)
        # the case travels in the room's metadata (JSON) so an agent that watches for rooms
        # needs no name parsing; the dispatch carries the same object
        await self._api.room.create_room(api.CreateRoomRequest(name=self.name, empty_timeout=10, departure_timeout=2,
                                                               metadata=json.dumps(self.metadata)))
        if self.target.agent_name:
            await self._api.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(
                    agent_name=self.target.agent_name, room=self.name, metadata=json.dumps(self.metadata)
                )
            )
        log.info("room=%s created (agent=%s)", self.name, self.target.agent_name or "auto-dispatch")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._api is not None
        try:
            await self._api.room.delete_room(api.DeleteRoomRequest(room=self.name))
        except Exception as e:  # the room may already be gone (empty timeout)
            log.debug("room=%s delete: %s", self.name, e)
        finally:
            await self._api.aclose()

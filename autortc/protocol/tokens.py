"""Join tokens for a LiveKit room, shared by the tester (bots) and the stack (token server).

It lives in the protocol package because both sides need it and the stack may import
nothing of AutoRTC but ``autortc.protocol``.  Tokens are minted with ``livekit-api``.
"""

from __future__ import annotations

import datetime

from livekit import api

from autortc.protocol.ids import check_id

MAX_TTL_S = 900  # no longer than a case (plus its retries)


def join_token(api_key: str, api_secret: str, *, room: str, identity: str, kind: str | None = None,
               ttl_s: int = 900) -> str:
    """A JWT that lets ``identity`` join ``room`` to publish, subscribe and send data for ``ttl_s`` s.

    ``kind``: LiveKit participant kind (``"agent"`` for the probe, an observer).
    Raises ``ValueError`` naming the field when ``room``/``identity`` are not safe names
    (letters, digits, ``_ . : -``; they become folder and room names).
    """
    for name, value in (("room", room), ("identity", identity)):
        check_id(name, value)  # BadIdError (a ValueError) naming the field
    tok = (
        api.AccessToken(api_key, api_secret)
        .with_identity(identity)
        .with_name(identity)
        .with_ttl(datetime.timedelta(seconds=ttl_s))
        .with_grants(api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True, can_publish_data=True))
    )
    if kind:
        tok = tok.with_kind(kind)  # type: ignore[arg-type]
    return tok.to_jwt()


def mint_token(api_key: str, api_secret: str, *, room: str, identity: str, ttl_s: int = 600,
               kind: str | None = None) -> str:
    """:func:`join_token` with ``ttl_s`` clamped to [30, ``MAX_TTL_S``] (what the token server serves)."""
    return join_token(api_key, api_secret, room=room, identity=identity, kind=kind,
                      ttl_s=min(max(ttl_s, 30), MAX_TTL_S))

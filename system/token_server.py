"""Token server: mints short-lived per-room tokens with ``livekit-api`` and serves ``web/dist``.

``GET /token?room=R&identity=I[&kind=agent][&ttl=600]`` → ``{"token", "url", "room", "identity"}``.
``GET /healthz`` → ``ok``. Everything else: static files of the product web page.
Run: ``python -m system.token_server --port 7890 --livekit-url ws://127.0.0.1:7880``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from aiohttp import web

from autortc.bots.target import join_token
from autortc.protocol.ids import check_id
from system.credentials import ApiCredentials, load_or_create
from system.paths import REPO_ROOT

log = logging.getLogger("autortc.stack.token")

MAX_TTL_S = 900  # no longer than a case (plus its retries)


def mint_token(
    creds: ApiCredentials, *, room: str, identity: str, ttl_s: int = 600, kind: str | None = None
) -> str:
    """A join token for ``room`` valid ``ttl_s`` seconds (capped at ``MAX_TTL_S``).

    Raises ``ValueError`` naming the field when ``room``/``identity`` are not safe names.
    """
    for field, value in (("room", room), ("identity", identity)):
        check_id(field, value)  # ValueError naming the field
    return join_token(creds.api_key, creds.api_secret, room=room, identity=identity, kind=kind,
                      ttl_s=min(max(ttl_s, 30), MAX_TTL_S))


def make_app(creds: ApiCredentials, livekit_url: str, web_root: Path) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def token(req: web.Request) -> web.Response:
        q = req.query
        try:
            jwt = mint_token(
                creds,
                room=q.get("room", ""),
                identity=q.get("identity", ""),
                ttl_s=int(q.get("ttl", "600")),
                kind=q.get("kind") or None,
            )
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(
            {"token": jwt, "url": livekit_url, "room": q["room"], "identity": q["identity"]},
            headers={"Cache-Control": "no-store"},
        )

    async def index(_: web.Request) -> web.StreamResponse:
        page = web_root / "index.html"
        if not page.exists():
            return web.Response(status=404, text=f"{page} not built: run web/build.sh")
        return web.FileResponse(page)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/token", token)
    app.router.add_get("/", index)
    if web_root.is_dir():
        app.router.add_static("/", web_root, show_index=False)
    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7890)
    p.add_argument("--livekit-url", default="ws://127.0.0.1:7880")
    p.add_argument("--web-root", type=Path, default=REPO_ROOT / "web" / "dist")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    web.run_app(make_app(load_or_create(), a.livekit_url, a.web_root), host=a.host, port=a.port, print=None)


if __name__ == "__main__":
    main()

"""A local static server for web/dist (the offline self-test; the token server serves it in runs)."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path
from types import TracebackType

WEB_DIST = Path(__file__).resolve().parent.parent / "web" / "dist"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript",
                      ".mjs": "text/javascript", ".map": "application/json"}

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


class StaticServer:
    """Serves ``root`` on 127.0.0.1 at a free port from a daemon thread; ``with`` closes it."""

    def __init__(self, root: Path = WEB_DIST) -> None:
        if not (root / "index.html").is_file():
            raise FileNotFoundError(f"{root}/index.html missing: build the page with web/build.sh")
        handler = functools.partial(_QuietHandler, directory=str(root))
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="autobrowser-static", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "StaticServer":
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

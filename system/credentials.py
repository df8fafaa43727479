"""The LiveKit API key/secret of this install: generated once, never committed, never logged."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from system.paths import secrets_dir


@dataclass(frozen=True)
class ApiCredentials:
    api_key: str
    api_secret: str

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return f"ApiCredentials(api_key={self.api_key!r}, api_secret=<hidden>)"

    def env(self) -> dict[str, str]:
        """The variables LiveKit SDKs and ``livekit-api`` read."""
        return {"LIVEKIT_API_KEY": self.api_key, "LIVEKIT_API_SECRET": self.api_secret}


def load_or_create(path: Path | None = None) -> ApiCredentials:
    """Read ``credentials.json`` from the secrets folder, creating it (0600) on first use.

    Raises ``ValueError`` naming the file when it exists but is not a valid credentials file.
    """
    path = path or secrets_dir() / "credentials.json"
    if path.exists():
        try:
            data = json.loads(path.read_text())
            return ApiCredentials(api_key=str(data["api_key"]), api_secret=str(data["api_secret"]))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(
                f"{path}: expected JSON with 'api_key' and 'api_secret' ({exc}); delete it to regenerate"
            ) from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    creds = ApiCredentials(api_key="AR" + secrets.token_hex(6), api_secret=secrets.token_urlsafe(32))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"api_key": creds.api_key, "api_secret": creds.api_secret}, f)
    return creds

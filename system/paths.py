"""Where the stack keeps its binary, secrets, state and logs."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Build cache shared by every clone on the machine (``$AUTORTC_CACHE`` or ``~/.cache/autortc``)."""
    return Path(os.environ.get("AUTORTC_CACHE", Path.home() / ".cache" / "autortc"))


def output_dir() -> Path:
    """Run outputs (``$AUTORTC_OUTPUT`` or ``<repo>/output``)."""
    return Path(os.environ.get("AUTORTC_OUTPUT", REPO_ROOT / "output"))


def stack_dir() -> Path:
    """State of the running stack: config, pids, per-component logs."""
    return output_dir() / "stack"


def secrets_dir() -> Path:
    """Per-install secrets (git-ignored, mode 0700)."""
    return Path(os.environ.get("AUTORTC_SECRETS", REPO_ROOT / ".autortc"))

"""Run folders. Every id that becomes a path part is validated; nothing is written outside the run folder."""

from __future__ import annotations

import datetime
import secrets
from pathlib import Path

from autortc.protocol.ids import BadIdError, check_id

__all__ = ["BadIdError", "check_id", "new_run_id", "new_trace_id", "child"]


def new_run_id() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d_%H%M%S") + "_" + secrets.token_hex(2)


def new_trace_id(case_id: str, turn_index: int) -> str:
    return check_id("trace_id", f"{case_id}-t{turn_index:02d}-{secrets.token_hex(3)}")


def child(root: Path, *parts: str) -> Path:
    """``root/part/...`` after validating each part; raises ``BadIdError`` if it would leave ``root``."""
    p = root
    for part in parts:
        p = p / check_id("path part", part)
    if root.resolve() not in (p.resolve(), *p.resolve().parents):
        raise BadIdError(f"{p} is outside {root}")
    return p

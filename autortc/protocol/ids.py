"""The one id check: trace ids, room names, identities and run/case folder parts.

Ids travel in protocol messages and become folder names under ``output/runs/``, so they
are 1-128 characters from letters, digits and ``_ . : -``, start with a letter or digit,
and never contain ``..``.  Part of the protocol (``docs/protocol.md``) so the stack's token
server, the runner and the message codec share it; an agent written from the doc alone
(``tests/e2e/minimal_agent.py``) restates it instead of importing it.
"""

from __future__ import annotations

import re

__all__ = ["ID_PATTERN", "BadIdError", "valid_id", "check_id"]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
_ID = re.compile(ID_PATTERN)


class BadIdError(ValueError):
    """An id that cannot be a folder name (``/``, ``..``, control characters, empty, too long)."""


def valid_id(value: object) -> bool:
    """True when ``value`` is a string matching :data:`ID_PATTERN` without ``..``."""
    return isinstance(value, str) and bool(_ID.match(value)) and ".." not in value


def check_id(kind: str, value: object) -> str:
    """``value`` if it is a valid id, else :class:`BadIdError` naming ``kind`` (e.g. ``"room"``)."""
    if not valid_id(value):
        raise BadIdError(f"{kind} {value!r}: expected 1-128 letters, digits and _ . : - "
                         f"(no '/', '..' or control characters)")
    return value  # type: ignore[return-value]

"""Network profiles: what the user's access link does to each packet, per direction.

Profiles live in TOML files (the built-in ``profiles.toml`` beside this module,
plus any files the user adds). Validation uses pydantic; every error names the
file, the profile and the field, and says what was expected.

Units: delays in milliseconds (one-way, per direction), loss in percent,
rates in kbit/s, sizes in bytes.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

logger = logging.getLogger("autortc.network")

BUILTIN_PROFILES_FILE = Path(__file__).with_name("profiles.toml")
#: Colon-separated extra profile files, read after the built-in one.
PROFILES_ENV = "AUTORTC_NETWORK_PROFILES"

DIRECTION_FIELDS = (
    "delay_ms",
    "jitter_ms",
    "reorder",
    "loss_pct",
    "burst_packets",
    "rate_kbps",
    "bucket_bytes",
    "queue_ms",
)


class ProfileError(ValueError):
    """A profile file or name is wrong; the message names file, profile and field."""


class DirectionSpec(BaseModel):
    """Impairment of one direction of the link (validated, immutable).

    ``jitter_ms`` is a half-range as in ``tc netem delay D J``: each packet's
    added delay stays within ``[delay_ms - jitter_ms, delay_ms + jitter_ms]``.
    ``burst_packets`` > 1 turns independent losses into Gilbert-Elliott bursts
    of that mean length at the same average ``loss_pct``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    delay_ms: float = Field(0.0, ge=0, le=10_000, description="one-way added delay, ms")
    jitter_ms: float = Field(0.0, ge=0, le=10_000, description="delay half-range, ms")
    reorder: bool = Field(False, description="let jitter reorder packets")
    loss_pct: float = Field(0.0, ge=0, lt=100, description="average loss, percent")
    burst_packets: float = Field(1.0, ge=1, le=1000, description="mean loss burst length, packets")
    rate_kbps: float | None = Field(None, gt=0, le=10_000_000, description="rate cap, kbit/s")
    bucket_bytes: int = Field(3000, ge=1500, le=10_000_000, description="token bucket depth, bytes")
    queue_ms: float = Field(300.0, gt=0, le=10_000, description="max wait for tokens before drop, ms")

    @model_validator(mode="after")
    def _jitter_within_delay(self) -> DirectionSpec:
        if self.jitter_ms > self.delay_ms:
            raise ValueError(
                f"jitter_ms ({self.jitter_ms:g}) must not exceed delay_ms ({self.delay_ms:g}): "
                "the delay would have to go negative"
            )
        if self.burst_packets > 1 and self.loss_pct > 0:
            # Gilbert: P(good->bad) = loss * r / (1 - loss) with r = 1 / burst must stay <= 1
            loss = self.loss_pct / 100.0
            if loss / (1.0 - loss) / self.burst_packets > 1.0:
                raise ValueError(
                    f"loss_pct {self.loss_pct:g} with burst_packets {self.burst_packets:g} is not reachable "
                    "by a Gilbert-Elliott chain (need loss/(1-loss) <= burst_packets)"
                )
        return self

    @property
    def is_identity(self) -> bool:
        """True when this direction changes nothing (no delay, loss or cap)."""
        return self.delay_ms == 0 and self.jitter_ms == 0 and self.loss_pct == 0 and self.rate_kbps is None


class _ProfileFile(BaseModel):
    """Shape of one [profiles.<name>] table (direction fields plus overrides)."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    delay_ms: float | None = None
    jitter_ms: float | None = None
    reorder: bool | None = None
    loss_pct: float | None = None
    burst_packets: float | None = None
    rate_kbps: float | None = None
    bucket_bytes: int | None = None
    queue_ms: float | None = None
    uplink: dict[str, Any] = Field(default_factory=dict)
    downlink: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class NetworkProfile:
    """A named profile: one :class:`DirectionSpec` per direction.

    ``uplink`` is user -> SFU, ``downlink`` is SFU -> user.
    """

    name: str
    description: str
    uplink: DirectionSpec
    downlink: DirectionSpec
    source: str = "<code>"

    @classmethod
    def symmetric(cls, name: str, description: str = "", **fields: Any) -> NetworkProfile:
        """Build a profile whose two directions share ``fields`` (validated)."""
        spec = DirectionSpec(**fields)
        return cls(name=name, description=description, uplink=spec, downlink=spec)

    @property
    def is_identity(self) -> bool:
        return self.uplink.is_identity and self.downlink.is_identity

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "uplink": self.uplink.model_dump(),
            "downlink": self.downlink.model_dump(),
        }


def _format_validation(file: str, name: str, where: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        field = f"profiles.{name}{'.' + where if where else ''}{'.' + loc if loc else ''}"
        got = e.get("input")
        got_s = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"{file}: {field}: {e['msg']}{got_s}")
    return "\n".join(lines)


def _build_profile(file: str, name: str, raw: Any) -> NetworkProfile:
    if not isinstance(raw, Mapping):
        raise ProfileError(f"{file}: profiles.{name}: expected a table of fields, got {type(raw).__name__}")
    try:
        parsed = _ProfileFile.model_validate(raw)
    except ValidationError as e:
        raise ProfileError(_format_validation(file, name, "", e)) from None
    base = {k: v for k in DIRECTION_FIELDS if (v := getattr(parsed, k)) is not None}
    specs = {}
    for where, override in (("uplink", parsed.uplink), ("downlink", parsed.downlink)):
        try:
            specs[where] = DirectionSpec.model_validate({**base, **override})
        except ValidationError as e:
            raise ProfileError(_format_validation(file, name, where if override else "", e)) from None
    return NetworkProfile(
        name=name, description=parsed.description, uplink=specs["uplink"], downlink=specs["downlink"], source=file
    )


def parse_profiles(text: str, *, source: str) -> dict[str, NetworkProfile]:
    """Parse the TOML ``text`` of a profiles file; ``source`` names it in errors.

    Raises:
        ProfileError: bad TOML, missing ``[profiles]`` table, or a bad field.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{source}: not valid TOML: {e}") from None
    unknown = set(doc) - {"profiles"}
    if unknown:
        raise ProfileError(f"{source}: unknown top-level key(s) {sorted(unknown)}; expected only [profiles.<name>] tables")
    table = doc.get("profiles")
    if not isinstance(table, Mapping) or not table:
        raise ProfileError(f"{source}: expected at least one [profiles.<name>] table")
    return {name: _build_profile(source, name, raw) for name, raw in table.items()}


def load_profiles(extra_files: Iterable[str | os.PathLike[str]] = (), *, use_env: bool = True) -> dict[str, NetworkProfile]:
    """All known profiles: built-in, then ``$AUTORTC_NETWORK_PROFILES``, then ``extra_files``.

    A later file's profile replaces an earlier one of the same name (logged).

    Raises:
        ProfileError: a file is missing or invalid.
    """
    files: list[Path] = [BUILTIN_PROFILES_FILE]
    if use_env and os.environ.get(PROFILES_ENV):
        files += [Path(p) for p in os.environ[PROFILES_ENV].split(os.pathsep) if p]
    files += [Path(p) for p in extra_files]
    out: dict[str, NetworkProfile] = {}
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except OSError as e:
            raise ProfileError(f"{f}: cannot read network profiles file: {e.strerror or e}") from None
        for name, prof in parse_profiles(text, source=str(f)).items():
            if name in out:
                logger.info("network profile %r from %s replaces the one from %s", name, f, out[name].source)
            out[name] = prof
    return out


def get_profile(name: str, extra_files: Iterable[str | os.PathLike[str]] = ()) -> NetworkProfile:
    """The profile called ``name``.

    Raises:
        ProfileError: unknown name (the message lists the known ones) or a bad file.
    """
    profiles = load_profiles(extra_files)
    try:
        return profiles[name]
    except KeyError:
        raise ProfileError(f"unknown network profile {name!r}; known: {', '.join(sorted(profiles))}") from None

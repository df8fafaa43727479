"""The bench's sentence set (``cases/tts/sentences.json``), validated with pydantic.

File format (v1)::

    {"version": 1, "description": "...",
     "sentences": [{"id": "short_01", "category": "short", "text": "Sure, one moment.",
                    "allow_repeat": false}]}

``id`` names the gold WAV (``<gold_dir>/<id>.wav``); ``allow_repeat`` exempts a sentence
that repeats a phrase on purpose from the repetition gate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = ["Sentence", "SentenceSet", "SentenceSetError", "load_sentences"]


class SentenceSetError(ValueError):
    """The sentence file is missing or invalid; the message names the file and the field."""


class Sentence(BaseModel):
    """One bench sentence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)
    category: str = Field(min_length=1)
    text: str = Field(min_length=1)
    allow_repeat: bool = False

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text must contain non-space characters")
        return value


class SentenceSet(BaseModel):
    """A versioned list of sentences with unique ids."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    description: str = ""
    sentences: list[Sentence] = Field(min_length=1)

    @field_validator("sentences")
    @classmethod
    def _unique_ids(cls, value: list[Sentence]) -> list[Sentence]:
        seen: set[str] = set()
        for s in value:
            if s.id in seen:
                raise ValueError(f"duplicate sentence id {s.id!r}")
            seen.add(s.id)
        return value


def load_sentences(path: Path | str) -> SentenceSet:
    """Read and validate a sentence file.

    Raises:
        SentenceSetError: missing file, bad JSON, or a field that fails validation
            (the message gives the file, the field path such as ``sentences.3.text``
            and what was expected).
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SentenceSetError(f"{path}: sentence file not found") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SentenceSetError(f"{path}: expected a JSON sentence file: {exc}") from exc
    try:
        return SentenceSet.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
                             for e in exc.errors())
        raise SentenceSetError(f"{path}: {problems}") from exc

"""Gold WAVs of the TTS bench: ``<gold_dir>/<id>.wav`` (int16 mono) + ``manifest.json``.

The manifest records what produced the gold (engine, voice, options, versions) and,
per sentence, the text, sample count and PCM hash, so a fidelity failure can say
"the text changed" or "gold was made with other options" instead of only "low SNR".
Gold is only written by :func:`write_gold` (``autortc tts-bench --update-gold``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from system.files import atomic_path, atomic_write_text

__all__ = ["GoldEntry", "GoldError", "read_gold", "read_manifest", "write_gold"]

MANIFEST = "manifest.json"


class GoldError(ValueError):
    """A gold file is unreadable or not int16 mono; the message names the file."""


@dataclass(frozen=True)
class GoldEntry:
    """One sentence's gold: int16 PCM ``(n,)`` at ``sr`` and the text it was made from (``None``: unknown)."""

    pcm: np.ndarray
    sr: int
    text: str | None


def read_manifest(gold_dir: Path) -> dict[str, Any]:
    """The manifest, or ``{}`` when there is none."""
    path = gold_dir / MANIFEST
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise GoldError(f"{path}: expected a JSON gold manifest: {exc}") from exc


def read_gold(gold_dir: Path, sentence_id: str, manifest: dict[str, Any] | None = None) -> GoldEntry | None:
    """The gold of ``sentence_id``, or ``None`` if its WAV does not exist.

    Raises:
        GoldError: the WAV exists but is not a mono 16-bit PCM file.
    """
    import soundfile as sf

    path = gold_dir / f"{sentence_id}.wav"
    if not path.is_file():
        return None
    try:
        info = sf.info(str(path))
        if info.channels != 1 or info.subtype != "PCM_16":
            raise GoldError(f"{path}: expected mono PCM_16, got {info.channels} ch {info.subtype}")
        pcm, sr = sf.read(str(path), dtype="int16")
    except GoldError:
        raise
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError
        raise GoldError(f"{path}: cannot read gold WAV: {exc}") from exc
    entry = (manifest or {}).get("sentences", {}).get(sentence_id, {})
    return GoldEntry(pcm=pcm, sr=int(sr), text=entry.get("text"))


def write_gold(gold_dir: Path, items: dict[str, tuple[str, np.ndarray]], sr: int, engine: dict[str, Any]) -> Path:
    """Write ``{id: (text, int16 pcm)}`` as gold WAVs and a fresh manifest; return the manifest path.

    Gold of ids not in ``items`` (a partial update) is left alone and stays in the manifest.
    Each file is written to a temporary name and renamed, so a crash never leaves half a WAV.
    """
    import soundfile as sf

    from autortc.tts_bench.metrics import pcm_sha256

    gold_dir.mkdir(parents=True, exist_ok=True)
    old = read_manifest(gold_dir).get("sentences", {})
    sentences: dict[str, Any] = {k: v for k, v in old.items() if k not in items and (gold_dir / f"{k}.wav").is_file()}
    for sid, (text, pcm) in items.items():
        with atomic_path(gold_dir / f"{sid}.wav") as tmp:  # world-readable: gold is committed
            sf.write(str(tmp), pcm, sr, subtype="PCM_16", format="WAV")
        sentences[sid] = {"text": text, "n_samples": int(pcm.shape[0]), "sha256": pcm_sha256(pcm)}
    manifest = {
        "v": 1,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sample_rate": sr,
        "engine": engine,
        "sentences": sentences,
    }
    path = gold_dir / MANIFEST
    atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path

"""Content: keyword hit rate and WER of what arrived (the caller supplies the STT transcript)."""

from __future__ import annotations

import re
import unicodedata
from typing import Sequence

__all__ = ["normalize_text", "keyword_hit_rate", "word_error_rate"]


def normalize_text(text: str) -> str:
    """Lower case, accents folded, punctuation to spaces, digits kept, single spaces."""
    t = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    t = t.lower().replace("'", "").replace("\u2019", "")
    t = re.sub(r"[^a-z0-9\s]+", " ", t)
    return re.sub(r"\s+", " ", t).strip()


def keyword_hit_rate(transcript: str, keywords: Sequence[str]) -> tuple[float | None, list[str]]:
    """Share (0..1) of ``keywords`` found as whole words (phrases allowed) in ``transcript``.

    Returns ``(rate, missing_keywords)``; rate is ``None`` when no keywords are given.
    """
    kws = [k for k in keywords if k and k.strip()]
    if not kws:
        return None, []
    hay = f" {normalize_text(transcript)} "
    missing = [k for k in kws if f" {normalize_text(k)} " not in hay]
    return (len(kws) - len(missing)) / len(kws), missing


def word_error_rate(reference: str, hypothesis: str) -> float | None:
    """WER of ``hypothesis`` against ``reference`` after :func:`normalize_text` (jiwer).

    ``None`` when the reference is empty.  Can exceed 1.0 (many insertions).
    """
    import jiwer

    ref = normalize_text(reference)
    if not ref:
        return None
    hyp = normalize_text(hypothesis)
    if not hyp:
        return 1.0
    return float(jiwer.wer(ref, hyp))

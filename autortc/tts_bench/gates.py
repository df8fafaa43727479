"""Gates of the TTS bench: thresholds (seed values as defaults) and their evaluation.

Threshold sources: TTFA P95 ≤ 350 ms, ``hash_unique == 1``, SNR ≥ 15 dB vs gold and
``repeat == 0`` are the seed system's TTS regression targets; duration diff P95 ≤ 50 ms
likewise.  The ms-per-character bounds, the repetition window/threshold and the
no-underrun rule are ours, calibrated on the bundled voice (see ``docs/tts.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["GateResult", "TTSGates", "evaluate_gates"]


@dataclass(frozen=True, kw_only=True)
class TTSGates:
    """Gate thresholds of ``autortc tts-bench``.

    Attributes:
        ttfa_p95_ms: P95 over all calls of text-in → first chunk (ms).
        hash_unique_max: most distinct PCM hashes allowed per sentence over the repeats.
        snr_min_db: lowest SNR (dB) vs gold allowed for any sentence.
        duration_diff_p95_ms: P95 over sentences of |duration − gold duration| (ms).
        ms_per_char_min, ms_per_char_max: bounds of audio ms per non-space character
            (joe-medium on the bundled set: 60–140; ±50 % margin).
        repeat_max: repeated segments allowed per sentence (``allow_repeat`` ones exempt).
        repeat_window_s, repeat_threshold: parameters of :func:`metrics.detect_repeats`
            (on joe-medium: unrelated speech ≤ 0.61, a repeated phrase ≥ 0.93 at 0.8 s).
        oversize_chunks_max: chunks larger than ``chunk_ms`` allowed (over all calls).
        underruns_max: stalls of a real-time player fed by the stream, over all calls.
        rtf_p95_max: optional RTF gate (``None``: RTF is only reported).
    """

    ttfa_p95_ms: float = 350.0
    hash_unique_max: int = 1
    snr_min_db: float = 15.0
    duration_diff_p95_ms: float = 50.0
    ms_per_char_min: float = 30.0
    ms_per_char_max: float = 210.0
    repeat_max: int = 0
    repeat_window_s: float = 0.8
    repeat_threshold: float = 0.85
    oversize_chunks_max: int = 0
    underruns_max: int = 0
    rtf_p95_max: float | None = None


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict: ``passed`` is ``None`` when the gate was skipped (``detail`` says why)."""

    name: str
    passed: bool | None
    value: Any
    threshold: str
    detail: str = ""


def _num(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def evaluate_gates(summary: dict[str, Any], gates: TTSGates, *, fidelity_skipped: str | None = None) -> list[GateResult]:
    """Turn the bench ``summary`` (see :func:`autortc.tts_bench.bench.summarize`) into verdicts.

    Args:
        summary: aggregate figures; keys used: ``ttfa_p95_ms``, ``hash_unique_max``,
            ``snr_min_db``, ``duration_diff_p95_ms``, ``gold_missing``, ``gold_engine_diff``, ``ms_per_char_min``,
            ``ms_per_char_max``, ``repeat_total``, ``repeat_worst``, ``oversize_chunks``,
            ``first_chunk_late_calls``, ``underruns``, ``max_stall_ms``, ``rtf_p95``.
        fidelity_skipped: reason to skip the fidelity gates (e.g. gold was just regenerated).
    """
    s = summary
    out: list[GateResult] = []
    ttfa = _num(s["ttfa_p95_ms"])
    out.append(GateResult("ttfa_p95", ttfa is not None and ttfa <= gates.ttfa_p95_ms, ttfa,
                          f"<= {gates.ttfa_p95_ms:g} ms"))
    out.append(GateResult("determinism", s["hash_unique_max"] <= gates.hash_unique_max, s["hash_unique_max"],
                          f"hash_unique <= {gates.hash_unique_max}",
                          ", ".join(s.get("nondeterministic", [])) or ""))
    if fidelity_skipped:
        out.append(GateResult("fidelity_snr", None, None, f">= {gates.snr_min_db:g} dB", fidelity_skipped))
        out.append(GateResult("duration_diff_p95", None, None, f"<= {gates.duration_diff_p95_ms:g} ms",
                              fidelity_skipped))
    else:
        missing = s.get("gold_missing", [])
        snr = _num(s["snr_min_db"])
        dur = _num(s["duration_diff_p95_ms"])
        detail = f"no usable gold for: {', '.join(missing)} (run with --update-gold)" if missing else \
            (f"worst: {s['snr_worst']}" if s.get("snr_worst") else "")
        if s.get("gold_engine_diff"):
            detail += "; engine differs from gold's: " + "; ".join(s["gold_engine_diff"])
        out.append(GateResult("fidelity_snr", not missing and snr is not None and snr >= gates.snr_min_db,
                              snr, f">= {gates.snr_min_db:g} dB", detail))
        out.append(GateResult("duration_diff_p95", not missing and dur is not None and dur <= gates.duration_diff_p95_ms,
                              dur, f"<= {gates.duration_diff_p95_ms:g} ms",
                              detail if missing or s.get("gold_engine_diff") else ""))
    lo, hi = _num(s["ms_per_char_min"]), _num(s["ms_per_char_max"])
    out.append(GateResult("ms_per_char", lo is not None and hi is not None and lo >= gates.ms_per_char_min
                          and hi <= gates.ms_per_char_max, [lo, hi],
                          f"within [{gates.ms_per_char_min:g}, {gates.ms_per_char_max:g}] ms/char",
                          ", ".join(s.get("ms_per_char_out", []))))
    out.append(GateResult("repetition", s["repeat_worst"] <= gates.repeat_max, s["repeat_worst"],
                          f"repeat <= {gates.repeat_max} per sentence", ", ".join(s.get("repeating", []))))
    out.append(GateResult("chunk_size", s["oversize_chunks"] <= gates.oversize_chunks_max and s["empty_chunks"] == 0,
                          s["oversize_chunks"], f"chunks > chunk_ms <= {gates.oversize_chunks_max}, no empty chunk",
                          f"max chunk {s['max_chunk_samples']} samples, asked {s['chunk_samples']}"))
    out.append(GateResult("first_chunk_early", s["first_chunk_late_calls"] == 0, s["first_chunk_late_calls"],
                          "first chunk before the last segment is synthesized, every multi-segment call"))
    out.append(GateResult("underruns", s["underruns"] <= gates.underruns_max, s["underruns"],
                          f"<= {gates.underruns_max}", f"longest stall {s['max_stall_ms']:.1f} ms"))
    if gates.rtf_p95_max is not None:
        rtf = _num(s["rtf_p95"])
        out.append(GateResult("rtf_p95", rtf is not None and rtf <= gates.rtf_p95_max, rtf, f"<= {gates.rtf_p95_max:g}"))
    return out

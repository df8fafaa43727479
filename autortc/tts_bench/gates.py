"""Gates of the TTS bench: ``gates.toml`` beside this file, judged by :mod:`autortc.gates`
(the same layout, overrides and evaluator as a run's gates).

Threshold sources are in the TOML (seed TTS regression targets, or ours, calibrated on the
bundled voice; see ``docs/tts.md``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from autortc.gates import GateSet, judge_values, load_gates
from autortc.results import GateVerdict

__all__ = ["TTS_GATES_PATH", "load_tts_gates", "evaluate_gates"]

TTS_GATES_PATH = Path(__file__).with_name("gates.toml")
_FIDELITY = ("fidelity_snr", "duration_diff_p95")


def load_tts_gates(path: Path | str | None = None, overrides: Mapping[str, Any] | None = None,
                   *, source: str = "--gate") -> GateSet:
    """The bench's gates: ``gates.toml``, then the ``[gates.*]`` tables of ``path``, then
    ``overrides`` (``{gate: threshold}`` as from ``-g NAME=VALUE``).

    Raises:
        autortc.gates.GateConfigError: a file or override names an unknown gate or key.
    """
    return load_gates(path, defaults=TTS_GATES_PATH).override(overrides, source=source)


def evaluate_gates(summary: dict[str, Any], gates: GateSet, *, fidelity_skipped: str | None = None) -> list[GateVerdict]:
    """Verdicts of the bench ``summary`` (see :func:`autortc.tts_bench.bench.summarize`), each
    with a message naming the sentences behind a bad figure.

    Args:
        fidelity_skipped: reason to skip the fidelity gates (e.g. gold was just regenerated).
    """
    s = summary
    values = dict(s, gold_missing_count=len(s.get("gold_missing", [])))
    skip = {name: fidelity_skipped for name in (*_FIDELITY, "gold_complete")} if fidelity_skipped else None
    out = judge_values(values, gates, skip=skip)
    engine_diff = ("engine differs from gold's: " + "; ".join(s["gold_engine_diff"])) if s.get("gold_engine_diff") else ""
    details = {
        "determinism": ", ".join(s.get("nondeterministic", [])),
        "gold_complete": (f"no usable gold for: {', '.join(s['gold_missing'])} (run with --update-gold)"
                          if s.get("gold_missing") else ""),
        "fidelity_snr": "; ".join(x for x in (f"worst: {s['snr_worst']}" if s.get("snr_worst") else "", engine_diff) if x),
        "duration_diff_p95": engine_diff,
        "ms_per_char_min": ", ".join(s.get("ms_per_char_out", [])),
        "ms_per_char_max": ", ".join(s.get("ms_per_char_out", [])),
        "repetition": ", ".join(s.get("repeating", [])),
        "chunk_size": f"max chunk {s.get('max_chunk_samples')} samples, asked {s.get('chunk_samples')}",
        "underruns": f"longest stall {s.get('max_stall_ms', 0.0):.1f} ms",
    }
    for v in out:
        if v.status != "SKIP" and details.get(v.gate):
            v.message = details[v.gate]
    return out

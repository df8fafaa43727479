"""Metrics for finished turns, in a worker process so analysis never stalls the bots' audio pacing."""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

log = logging.getLogger("autortc.runner")

_TRANSCRIBER: Any = None


def _init_worker() -> None:
    global _TRANSCRIBER
    from system.agent.stt_whisper import WhisperOptions, WhisperTranscriber

    _TRANSCRIBER = WhisperTranscriber(WhisperOptions(cpu_threads=1))


def _analyze(turn_dir: str, gate_overrides: dict[str, float], gate_source: str, gates_path: str | None, perceptual: bool):
    from autortc.gates import load_gates
    from autortc.metrics.turn import compute_turn_metrics

    gates = load_gates(gates_path)
    if gate_overrides:
        gates = gates.override(gate_overrides, source=gate_source)
    return compute_turn_metrics(Path(turn_dir), gates=gates, transcribe=_TRANSCRIBER.transcribe, perceptual=perceptual)


def new_pool() -> ProcessPoolExecutor:
    """One worker: it holds a whisper model for the content check (STT of what arrived)."""
    import multiprocessing as mp

    return ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"), initializer=_init_worker)


def analyze_args(turn_dir: Path, gate_overrides: dict[str, float], gate_source: str, gates_path: Path | None,
                 perceptual: bool) -> tuple:
    return (str(turn_dir), dict(gate_overrides), gate_source, str(gates_path) if gates_path else None, perceptual)


analyze = _analyze

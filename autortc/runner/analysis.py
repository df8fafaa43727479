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


def _analyze(turn_dir: str, gates: Any, perceptual: bool):
    """Metrics of one turn folder, then its verdicts by the case's gates (the gates stage)."""
    from autortc.gates import judge_turn
    from autortc.metrics.turn import load_turn, metrics_from_inputs

    inp = load_turn(Path(turn_dir))
    res = metrics_from_inputs(inp, transcribe=_TRANSCRIBER.transcribe, perceptual=perceptual)
    judge_turn(res, gates, failed=not inp.trace)
    log.info("turn case=%s trace_id=%s capture=%s verdict=%s", res.case_id, res.trace_id, res.capture_status,
             res.verdict)
    return res


def new_pool() -> ProcessPoolExecutor:
    """One worker: it holds a whisper model for the content check (STT of what arrived)."""
    import multiprocessing as mp

    return ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"), initializer=_init_worker)


def analyze_args(turn_dir: Path, gates: Any, perceptual: bool) -> tuple:
    """Arguments of :func:`analyze` (picklable: ``gates`` is the case's :class:`autortc.gates.GateSet`)."""
    return (str(turn_dir), gates, perceptual)


analyze = _analyze

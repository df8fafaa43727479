"""Metrics of finished turns, in a worker process so analysis never stalls the bots' audio pacing.

The worker reads a turn folder through the contract (:func:`autortc.artifacts.load_turn`),
runs the pure :func:`autortc.metrics.turn.compute`, then the gates stage evaluates it.
The content check's STT is given as an import spec (``"package.module:factory"``, the
factory returning a :class:`~autortc.metrics.turn.Transcriber`), so the runner never
imports the agent under test; ``autortc run`` passes the bundled whisper by default.
"""

from __future__ import annotations

import importlib
import logging
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from autortc.metrics.turn import FunctionTranscriber, Transcriber

log = logging.getLogger("autortc.runner")

_TRANSCRIBER: Transcriber | None = None


def load_transcriber(spec: str | None) -> Transcriber | None:
    """``"module:factory"`` -> the factory's :class:`Transcriber` (a plain callable is wrapped).

    Raises ``ValueError`` naming the spec when it cannot be imported or called.
    """
    if not spec:
        return None
    mod_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(mod_name), attr)
        obj = factory()
    except (ImportError, AttributeError, TypeError) as exc:
        raise ValueError(f"transcriber {spec!r}: cannot load ({type(exc).__name__}: {exc}); "
                         "expected 'package.module:factory' returning a Transcriber") from exc
    return obj if isinstance(obj, Transcriber) else FunctionTranscriber(obj.transcribe if hasattr(obj, "transcribe") else obj)


ANALYSIS_NICE = 19
"""Niceness of the analysis worker (the lowest priority). With ``--jobs`` > 1 a finished turn is
analysed (STT of the heard reply, spectra) while another room's turn is live; on a machine shared
with the agent under test that CPU would show up as the agent's latency. Niced, the analysis waits
for idle CPU: it only reads recorded files, so its own timing does not matter. Nice 19's CFS weight
is 15 against 1024 for the agent's default (``sched_prio_to_weight`` in the kernel), ~1.5 % of a
contended core, where nice 10 (110) left it ~10 %."""

AUTOGROUP = Path("/proc/self/autogroup")


def lower_priority(nice: int = ANALYSIS_NICE) -> None:
    """Make this process yield the CPU to the agent under test.

    ``os.nice`` alone is not enough on Linux with autogroup (``/proc/sys/kernel/sched_autogroup_enabled``
    = 1, this machine kind's default): the scheduler first shares the CPU between *sessions*
    (autogroups) and applies a process's nice only against the other processes of its own session
    (sched(7), "The autogroup feature"). The worker shares the harness's session, while
    ``autortc stack up`` starts the agent in a session of its own, so a niced worker still took a
    full session's share from the agent during another room's live turn. Here the worker starts a
    session of its own (``os.setsid``) and gives that autogroup the same nice (writing
    ``/proc/self/autogroup``; raising it needs no privilege). Without autogroup (no such file, or
    the kernel shows none for the task, as in some sandboxes) only ``os.nice`` applies. The worker leaves the terminal's process group, so Ctrl-C reaches only the runner,
    which shuts the pool down. Raises ``OSError`` only from ``os.nice``; a refused autogroup nice
    is logged.
    """
    import os

    os.nice(nice)
    if not AUTOGROUP.exists():
        return  # no autogroup in this kernel: the process nice is what the scheduler uses
    try:
        os.setsid()  # a new session is a new autogroup
    except OSError:
        pass  # already a session leader: its autogroup is its own
    if not AUTOGROUP.read_text().strip():
        return  # the kernel shows no autogroup for this task (e.g. a cgroup or sandbox governs it)
    try:
        AUTOGROUP.write_text(f"{nice}\n")
    except OSError as exc:
        log.warning("analysis worker: cannot set its autogroup nice (%s); it competes with the agent at full share", exc)


def _init_worker(transcriber_spec: str | None) -> None:
    global _TRANSCRIBER
    lower_priority(ANALYSIS_NICE)
    _TRANSCRIBER = load_transcriber(transcriber_spec)


def analyze_turn(turn_dir: Path | str, gates: Any, *, transcriber: Transcriber | None = None,
                 perceptual: bool = False):
    """One turn folder -> :class:`autortc.results.TurnResult` with verdicts.

    ``gates``: the :class:`autortc.gates.GateSet` for this case (run file + case overrides
    applied).  An unusable trace.json is a FAIL with the reason in ``errors``.
    """
    from autortc.artifacts import load_turn
    from autortc.gates import judge_turn
    from autortc.metrics.turn import compute

    d = Path(turn_dir)
    turn = load_turn(d)
    res = compute(turn.artifacts, turn.audio, transcriber=transcriber, perceptual=perceptual, errors=turn.errors)
    if turn.artifacts is None:
        res.case_id, res.trace_id = d.parent.name, d.name
    judge_turn(res, gates, failed=turn.artifacts is None)
    log.info("turn metrics case=%s trace_id=%s capture=%s verdict=%s eot_to_first_audio_ms=%s max_gap_ms=%s",
             res.case_id, res.trace_id, res.capture_status, res.verdict, res.latency.eot_to_first_audio_ms,
             res.continuity.max_gap_ms)
    return res


def ready() -> bool:
    """The runner's warm-up: True once the worker has run its initializer (niced, transcriber
    loaded) and imported what :func:`analyze_turn` needs (the metrics stack: ~1-2 s of CPU)."""
    import autortc.artifacts  # noqa: F401
    import autortc.gates  # noqa: F401
    import autortc.metrics.turn  # noqa: F401

    return True


def _analyze(turn_dir: str, gates: Any, perceptual: bool):
    """Metrics of one turn folder, then its verdicts by the case's gates (the gates stage)."""
    return analyze_turn(turn_dir, gates, transcriber=_TRANSCRIBER, perceptual=perceptual)


def new_pool(transcriber_spec: str | None) -> ProcessPoolExecutor:
    """One worker; it holds the content check's STT model (e.g. whisper) once loaded."""
    import multiprocessing as mp

    return ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                               initargs=(transcriber_spec,))


def analyze_args(turn_dir: Path, gates: Any, perceptual: bool) -> tuple:
    """Arguments of :func:`analyze` (picklable: ``gates`` is the case's :class:`autortc.gates.GateSet`)."""
    return (str(turn_dir), gates, perceptual)


analyze = _analyze

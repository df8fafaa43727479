"""The bundled worker's load counts calls, not jobs still tearing their rooms down.

With ``--jobs 2`` a finished job stays in the worker's list until its room is gone; counted, the
SFU dropped a dispatch in 3 of 4 runs and in none of 2 runs without (docs/agent-latency.md
"Parallel rooms", session 12).
"""

from __future__ import annotations

from types import SimpleNamespace


def _srv(*ids: str) -> SimpleNamespace:
    return SimpleNamespace(active_jobs=[SimpleNamespace(job=SimpleNamespace(id=i)) for i in ids])


def test_a_job_whose_session_closed_is_not_counted_as_load():
    from system.agent import worker

    srv = _srv("AJ_live1", "AJ_live2", "AJ_done1", "AJ_done2")
    worker._CLOSING.clear()
    try:
        assert worker._job_load(srv) == min(1.0, 4 / worker.MAX_JOBS)
        worker._CLOSING.update({"AJ_done1", "AJ_done2", "AJ_gone"})  # AJ_gone: already out of the list
        assert worker._job_load(srv) == min(1.0, 2 / worker.MAX_JOBS)
        assert worker.calls_carried(["a", "b"], {"b"}) == 1
    finally:
        worker._CLOSING.clear()

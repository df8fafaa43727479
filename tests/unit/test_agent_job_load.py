"""The bundled worker's load counts calls, and the SFU keeps dispatching up to ``MAX_JOBS`` of them.

With ``--jobs 2`` a finished job stays in the worker's list until its room is gone; counted, the
SFU dropped a dispatch in 3 of 4 runs and in none of 2 runs without (docs/agent-latency.md
"Parallel rooms", session 12). The SFU claims a job only while ``target_load - load > 0``
(livekit-server 1.13.5, service/agentservice.go ``JobRequestAffinity``, target 0.7 by default,
pkg/agent/config.go): the rule is written out here from that source, not taken from worker.py.
"""

from __future__ import annotations

from types import SimpleNamespace

LIVEKIT_DEFAULT_TARGET_LOAD = 0.7  # livekit-server pkg/agent/config.go DefaultTargetLoad


def _srv(*ids: str) -> SimpleNamespace:
    return SimpleNamespace(active_jobs=[SimpleNamespace(job=SimpleNamespace(id=i)) for i in ids])


def _sfu_claims(load: float) -> bool:
    return max(0.0, LIVEKIT_DEFAULT_TARGET_LOAD - load) > 0.0


def test_a_job_whose_call_ended_is_not_counted_as_load():
    from system.agent import worker

    worker._CLOSING.clear()
    try:
        srv = _srv("AJ_live1", "AJ_done1", "AJ_done2")
        worker._CLOSING.update({"AJ_done1", "AJ_done2", "AJ_gone"})  # AJ_gone: already out of the list
        one_call = worker._job_load(srv)
        assert worker._CLOSING == {"AJ_done1", "AJ_done2"}  # marks live as long as their jobs are listed
        assert one_call == worker._job_load(_srv("AJ_live1")) > 0.0
        assert worker._CLOSING == set()
        assert worker.calls_carried(["a", "b"], {"b"}) == 1
    finally:
        worker._CLOSING.clear()


def test_the_sfu_dispatches_until_max_jobs_calls_are_live():
    from system.agent import worker

    worker._CLOSING.clear()
    for live in range(worker.MAX_JOBS):
        ids = [f"AJ_{i}" for i in range(live)]
        # two more jobs tearing their rooms down, as at the end of two --jobs 2 cases
        srv = _srv(*ids, "AJ_closing1", "AJ_closing2")
        worker._CLOSING.update({"AJ_closing1", "AJ_closing2"})
        assert _sfu_claims(worker._job_load(srv)), f"{live} live calls of {worker.MAX_JOBS}: the SFU refuses"
    worker._CLOSING.clear()
    full = _srv(*[f"AJ_{i}" for i in range(worker.MAX_JOBS)])
    assert not _sfu_claims(worker._job_load(full))

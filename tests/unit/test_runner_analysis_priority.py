"""The analysis worker must yield the CPU to the agent under test, seen from outside the worker.

With ``--jobs`` > 1 a finished turn is analysed while another room is live. On Linux with
autogroup the scheduler shares the CPU between sessions before it looks at a process's nice, so
the worker needs a session of its own whose autogroup is niced; a per-process nice inside the
harness's session did not reach the agent (started by ``autortc stack up`` in its own session).
The test reads the worker's scheduling state from ``/proc`` and ``os.getpriority`` in this
process, not what the worker says about itself.
"""

from __future__ import annotations

import os
from pathlib import Path

from autortc.runner import analysis


def test_the_analysis_worker_runs_niced_in_a_session_and_autogroup_of_its_own():
    pool = analysis.new_pool(None)
    try:
        pid = pool.submit(os.getpid).result(timeout=120)
        assert pid != os.getpid()
        assert os.getpriority(os.PRIO_PROCESS, pid) == analysis.ANALYSIS_NICE
        assert os.getsid(pid) != os.getsid(0), "the worker shares the harness's session (and autogroup)"
        # "/autogroup-N nice K" on kernels built with CONFIG_SCHED_AUTOGROUP; empty where the kernel
        # shows no autogroup for the task (seen on a CI sandbox): there the process nice is what counts.
        theirs_file = Path(f"/proc/{pid}/autogroup")
        theirs = theirs_file.read_text().split() if theirs_file.exists() else []
        if theirs:
            mine = Path("/proc/self/autogroup").read_text().split()
            assert theirs[0] != (mine[0] if mine else None), "the worker shares the harness's autogroup"
            assert theirs[-1] == str(analysis.ANALYSIS_NICE)
    finally:
        pool.shutdown(wait=True)

"""The agent's compute threads run niced; the caller's thread is left alone (Linux per-thread nice)."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from system.agent.compute_priority import nice_this_thread, niced_executor

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")


def _my_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_executor_thread_is_niced_and_the_caller_is_not() -> None:
    before = _my_nice()
    target = min(19, before + 7)
    ex = niced_executor("t", target)
    try:
        assert ex.submit(_my_nice).result(timeout=10) == target
    finally:
        ex.shutdown()
    assert _my_nice() == before


def test_zero_leaves_the_thread_alone() -> None:
    before = _my_nice()
    nice_this_thread(0)
    assert _my_nice() == before


def test_blas_is_kept_to_one_thread() -> None:
    """In a fresh interpreter (numpy's OpenBLAS starts with a thread per core): one thread after the call."""
    import json
    import subprocess
    from pathlib import Path

    code = ("import json\nimport numpy\nfrom threadpoolctl import threadpool_info\n"
            "from system.agent.compute_priority import limit_blas_threads\n"
            "blas = lambda: [i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas']\n"
            "before = blas()\nlimit_blas_threads(1)\nprint(json.dumps([before, blas()]))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], capture_output=True,
                         text=True, timeout=60, env={k: v for k, v in os.environ.items() if not k.endswith("NUM_THREADS")})
    assert out.returncode == 0, out.stderr
    before, after = json.loads(out.stdout)
    assert before and after == [1] * len(before)
    if (os.cpu_count() or 1) > 1:
        assert max(before) > 1  # the default this call changes

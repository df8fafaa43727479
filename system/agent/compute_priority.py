"""Threads of the agent's compute at a lower CPU priority than what must run on time.

A reply's first TTS chunk is what the user waits for; the rest of the reply is synthesized ahead
of its playback (piper makes ~1 s of audio in ~0.1 s), so it has slack. On a shared machine that
look-ahead comes in bursts of 100-400 ms of CPU while the reply starts and while the user speaks
over it -- exactly when a barge-in's word check is decoded (live, a 35 ms check took 87-120 ms,
bench of session 10). At the same priority the two share the CPU; niced, the look-ahead takes
only the cycles the decode, the first chunks and the media threads leave.

Linux keeps the nice value per thread (``setpriority(PRIO_PROCESS, tid)``); raising one's own
nice value needs no privilege, lowering it back does, so a niced thread stays niced. Elsewhere
than Linux the calls do nothing.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("autortc.agent")

__all__ = ["limit_blas_threads", "nice_this_thread", "niced_executor"]


def nice_this_thread(nice: int) -> None:
    """Set the calling thread's nice value to ``nice`` (0..19; 0 leaves it alone). Linux only."""
    if nice <= 0 or not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError as exc:  # lowering one's own priority is always allowed; say so if it was not
        log.warning("could not set nice %d on thread %d: %s", nice, tid, exc)


def niced_executor(name: str, nice: int, *, workers: int = 1) -> ThreadPoolExecutor:
    """``workers`` threads named ``name`` whose nice value is ``nice`` (that many blocking model calls at a time)."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name, initializer=nice_this_thread,
                              initargs=(nice,))


def limit_blas_threads(n: int = 1) -> None:
    """Let the BLAS libraries loaded in this process (numpy's OpenBLAS) use ``n`` threads.

    OpenBLAS starts one thread per core, and its helper thread spins on the other core after each
    call. The agent's numpy work is small (the whisper mel filterbank of each decode, levels,
    resampling), so the second thread buys no time and takes CPU from the core the SFU, the bots
    and the other room share. Measured (session 17, 2 cores, idle): the 18 case clips decoded as
    the agent does (``scripts/stt_window.py --windows 8``, two passes each way) took the same wall
    time (4.7-5.0 s; decode median 129-138 ms either way) and 6.5 / 6.8 CPU-s with OpenBLAS's
    default against 4.5 / 4.4 with ``OPENBLAS_NUM_THREADS=1``. CTranslate2 and onnxruntime keep
    their own thread settings (1 each). Applies to the BLAS libraries already loaded (threadpoolctl):
    numpy's is, once the worker's modules are imported."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n, user_api="blas")

"""A child process in its own process group, killed as a group (seed SOP: no orphan workers).

The child is started with ``start_new_session=True`` (its own session and process
group, pgid = its pid), so everything it spawns shares the group and one
``killpg`` reaches all of it.  :meth:`ProcessGroup.kill` sends SIGTERM to the group,
waits, then SIGKILLs whatever is left of the group (also after the leader exited)
and reaps the leader.  Use it as a context manager so failures and Ctrl-C kill too.
"""

from __future__ import annotations

import logging
import os
import signal
import select
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from system.procs import group_members  # noqa: F401  (re-exported)

__all__ = ["ProcessGroup", "group_members", "wait_pid_exit"]

logger = logging.getLogger("autortc.tts_bench")


def wait_pid_exit(pid: int, timeout_s: float) -> bool:
    """Wait until process ``pid`` (any process, not only a child) has exited; True if it did.

    Uses a Linux pidfd, readable once the process terminates (a zombie counts as exited).
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout_s)
        return bool(ready)
    finally:
        os.close(fd)


class ProcessGroup:
    """Start ``argv`` as the leader of a new process group; kill the whole group on exit.

    ``stdin`` is a pipe that is never written: when this process dies, the pipe closes and
    a child that watches its stdin for EOF (the bench worker does) exits on its own.
    ``stdout`` is a text pipe (line-buffered) the caller reads; ``stderr`` goes to
    ``stderr_path`` when given (the worker's log), else is inherited.
    """

    def __init__(self, argv: Sequence[str], *, name: str, env: Mapping[str, str] | None = None,
                 cwd: Path | str | None = None, stderr_path: Path | None = None) -> None:
        self.argv = list(argv)
        self.name = name
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._stderr_path = stderr_path
        self._stderr: IO[bytes] | None = None
        self.proc: subprocess.Popen[str] | None = None

    @property
    def pgid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name}: not started")
        return self.proc.pid  # leader of its own session: pgid == pid

    def start(self) -> subprocess.Popen[str]:
        if self.proc is not None:
            raise RuntimeError(f"{self.name}: already started")
        if self._stderr_path is not None:
            self._stderr_path.parent.mkdir(parents=True, exist_ok=True)
            self._stderr = open(self._stderr_path, "wb")
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            env=self._env, cwd=self._cwd, text=True, bufsize=1, start_new_session=True,
        )
        logger.info("%s: started pid=%d (own process group)", self.name, self.proc.pid)
        return self.proc

    def kill(self, *, term_timeout_s: float = 5.0) -> None:
        """SIGTERM the group, wait up to ``term_timeout_s`` for the leader, SIGKILL the rest; idempotent."""
        proc = self.proc
        if proc is None:
            return
        pgid = proc.pid
        try:
            if proc.poll() is None:
                _killpg(pgid, signal.SIGTERM)
                try:
                    proc.wait(timeout=term_timeout_s)
                except subprocess.TimeoutExpired:
                    logger.warning("%s: pid=%d ignored SIGTERM for %.1f s; SIGKILL", self.name, pgid, term_timeout_s)
            # members that outlived the leader (or the leader itself) get SIGKILL
            _killpg(pgid, signal.SIGKILL)
            proc.wait(timeout=term_timeout_s)
            # SIGKILL is delivered asynchronously: wait for each member's exit on a pidfd
            for pid in group_members(pgid):
                wait_pid_exit(pid, term_timeout_s)
            left = group_members(pgid)
            if left:
                logger.error("%s: processes %s of group %d survived SIGKILL", self.name, left, pgid)
        finally:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
            if self._stderr is not None:
                self._stderr.close()
                self._stderr = None

    def __enter__(self) -> ProcessGroup:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def _killpg(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass

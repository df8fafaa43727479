"""Process groups: start a command as the leader of its own group, see who is left in a
group, stop a whole group (SIGTERM, then SIGKILL) and wait until nobody is left.

Used by the stack (``system/stack.py``: one group per component, stopped from another CLI
process by its pgid) and the TTS bench (:class:`ProcessGroup` around its worker).  It lives
in ``system/`` because the stack may import nothing of the tester but ``autortc.protocol``;
the tester may import ``system``.

Process lookup goes through ``psutil`` (live, non-zombie processes); a process's group
through ``os.getpgid``.  Waiting polls the group's membership rather than reaping: the
leader may be another process's child (``stack down`` runs in a new CLI process).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import psutil

__all__ = ["ProcessGroup", "ProcessGroupError", "group_members", "kill_group", "wait_pid_exit"]

log = logging.getLogger("autortc.procgroup")

_POLL_S = 0.02  # membership poll while waiting for a group to empty (a readiness probe, not a barrier)


class ProcessGroupError(RuntimeError):
    """Members of a process group survived SIGKILL; the message names the group and the pids."""


def group_members(pgid: int) -> list[int]:
    """Pids of live (non-zombie) processes whose process group is ``pgid``."""
    members: list[int] = []
    for p in psutil.process_iter(["status"]):
        try:
            if p.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(p.pid) == pgid:
                members.append(p.pid)
        except (ProcessLookupError, psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return sorted(members)


def wait_pid_exit(pid: int, timeout_s: float) -> bool:
    """Wait until process ``pid`` (any process, not only a child) has exited or is a zombie; True if it did."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)


def _wait_empty(pgid: int, timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while True:
        left = group_members(pgid)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(_POLL_S)


def _killpg(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


def kill_group(pgid: int, *, name: str = "", term_timeout_s: float = 5.0, kill_timeout_s: float = 5.0) -> None:
    """Stop every member of group ``pgid``: SIGTERM, wait up to ``term_timeout_s`` for the group
    to empty, SIGKILL whoever is left, wait up to ``kill_timeout_s``.  Idempotent.

    Raises:
        ProcessGroupError: members survived SIGKILL (named with their pids).
    """
    label = name or f"group {pgid}"
    if not group_members(pgid) or not _killpg(pgid, signal.SIGTERM):
        return
    left = _wait_empty(pgid, term_timeout_s)
    if not left:
        return
    log.warning("%s: pids %s ignored SIGTERM for %.1f s; SIGKILL", label, left, term_timeout_s)
    _killpg(pgid, signal.SIGKILL)
    left = _wait_empty(pgid, kill_timeout_s)
    if left:
        raise ProcessGroupError(f"{label}: processes {left} of group {pgid} survived SIGKILL")


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
        log.info("%s: started pid=%d (own process group)", self.name, self.proc.pid)
        return self.proc

    def kill(self, *, term_timeout_s: float = 5.0) -> None:
        """SIGTERM the group, SIGKILL what is left after ``term_timeout_s``, reap the leader; idempotent.

        A survivor of SIGKILL is logged (the caller is usually unwinding another error).
        """
        proc = self.proc
        if proc is None:
            return
        try:
            try:
                kill_group(proc.pid, name=self.name, term_timeout_s=term_timeout_s)
            except ProcessGroupError as exc:
                log.error("%s", exc)
            try:
                proc.wait(timeout=term_timeout_s)
            except subprocess.TimeoutExpired:
                log.error("%s: leader pid=%d not reaped after SIGKILL", self.name, proc.pid)
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

"""system/procgroup.py: the one process-group module (stack and TTS bench)."""

import subprocess
import sys
import time

import pytest

from system.procgroup import group_members, kill_group, wait_pid_exit

pytestmark = pytest.mark.unit


def _group(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE, text=True)


def test_a_member_that_ignores_sigterm_gets_sigkill_after_the_timeout():
    # the leader starts a child that ignores SIGTERM, prints its pid, and waits
    code = ("import signal,subprocess,sys,time;"
            "c=subprocess.Popen([sys.executable,'-c','import signal,time;signal.signal(signal.SIGTERM,signal.SIG_IGN);"
            "print(1,flush=True);time.sleep(60)'],stdout=subprocess.PIPE,text=True);c.stdout.readline();"
            "print(c.pid,flush=True);time.sleep(60)")
    leader = _group(code)
    try:
        stubborn = int(leader.stdout.readline())
        assert set(group_members(leader.pid)) == {leader.pid, stubborn}
        t0 = time.monotonic()
        kill_group(leader.pid, name="test", term_timeout_s=0.5, kill_timeout_s=5.0)
        took = time.monotonic() - t0
        assert group_members(leader.pid) == [] and wait_pid_exit(stubborn, 0.0)
        assert took >= 0.5, "SIGKILL came before the SIGTERM grace period ended"
    finally:
        leader.kill()
        leader.wait()


def test_kill_group_is_idempotent_and_a_zombie_leader_is_not_a_member():
    leader = _group("print(1, flush=True)")
    leader.stdout.readline()
    assert wait_pid_exit(leader.pid, 10.0)  # exited, not yet reaped: a zombie
    assert group_members(leader.pid) == []
    kill_group(leader.pid)
    kill_group(leader.pid)
    leader.wait()


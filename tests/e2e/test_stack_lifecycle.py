"""The stack comes up with three ready components and ``down`` leaves no process behind.

Runs its own stack on other ports and state folder, so the session stack is untouched.
"""

import json
import subprocess
import sys

import pytest

from system.livekit_server import ServerOptions
from system.stack import COMPONENTS, Stack, StackOptions, group_members

pytestmark = pytest.mark.e2e


def test_up_status_down_leaves_nothing(tmp_path):
    opts = StackOptions(
        server=ServerOptions(port=17880, rtc_udp_port=17882, rtc_tcp_port=17881),
        token_port=17890,
        agent_http_port=18081,
        # one process per job here (the default runs jobs as threads), so the test proves that
        # down also kills the worker's children
        agent_env={"AUTORTC_AGENT_IDLE_PROCESSES": "1", "AUTORTC_AGENT_EXECUTOR": "process"},
    )
    stack = Stack(opts, state_dir=tmp_path / "stack")
    try:
        timings = stack.up()
        assert set(timings) == set(COMPONENTS)
        status = {s.name: s for s in stack.status()}
        assert all(status[c].running for c in COMPONENTS), status
        assert status["agent"].group_members >= 2  # the worker and at least one prewarmed job process
        assert status["livekit"].ports["rtc_udp"] == 17882
        pgids = [status[c].pid for c in COMPONENTS]
        # the CLI reads the same state: status --json lists the three components
        state = json.loads(stack.state_path.read_text())
        assert set(state["components"]) == set(COMPONENTS)
    finally:
        stopped = stack.down()
    assert set(stopped) == set(COMPONENTS)
    for pgid in pgids:
        assert group_members(pgid) == [], f"process group {pgid} survived down"
    assert not any(s.running for s in stack.status())


def test_cli_status_reports_a_stopped_stack(tmp_path):
    env = {"AUTORTC_OUTPUT": str(tmp_path)}
    import os

    out = subprocess.run([sys.executable, "-m", "autortc.cli", "stack", "status"], capture_output=True, text=True,
                         env={**os.environ, **env}, timeout=60)
    assert out.returncode == 1
    for c in COMPONENTS:
        assert c in out.stdout and "stopped" in out.stdout

import os
import stat
import subprocess
import sys

import pytest

from system.credentials import load_or_create
from system.livekit_server import ServerOptions, render_config
from system.stack import Stack, group_members
from system.token_server import mint_token

pytestmark = pytest.mark.unit


def test_credentials_are_created_private_and_reused(tmp_path):
    p = tmp_path / "s" / "credentials.json"
    a = load_or_create(p)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    assert load_or_create(p) == a
    assert a.api_secret not in repr(a)


def test_server_config_binds_loopback_with_one_udp_port(tmp_path):
    creds = load_or_create(tmp_path / "c.json")
    cfg = render_config(ServerOptions(), creds)
    assert 'bind_addresses: ["127.0.0.1"]' in cfg and "udp_port: 7882" in cfg
    assert "empty_timeout: 10" in cfg


def test_token_names_are_validated(tmp_path):
    creds = load_or_create(tmp_path / "c.json")
    assert mint_token(creds, room="r1", identity="u1").count(".") == 2
    with pytest.raises(ValueError, match="room"):
        mint_token(creds, room="../x", identity="u1")


def test_down_kills_the_whole_process_group(tmp_path):
    """A component's grandchild (like an agent job process) must not survive ``down``."""
    from system.stack import ComponentState, _save_state

    code = "import subprocess,sys,time; subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        st = ComponentState(name="agent", pid=proc.pid, cmd=["x"], log=str(tmp_path / "a.log"), ports={}, started_mono=0.0)
        stack = Stack(state_dir=tmp_path)
        _save_state(stack.state_path, {"agent": st})
        for _ in range(100):
            if len(group_members(proc.pid)) == 2:
                break
            __import__("time").sleep(0.02)
        assert len(group_members(proc.pid)) == 2
        assert stack.down(timeout_s=2) == ["agent"]
        assert group_members(proc.pid) == []
    finally:
        proc.kill()
        proc.wait()

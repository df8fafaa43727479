"""Lifecycle of the stack under test: LiveKit server, agent worker, token server.

Each component runs in its own process group (its children too: the agent's job
processes); ``down`` signals whole groups and waits until no member is left.
Readiness is real: the SFU answers an authenticated API call, the worker has
registered with the SFU, the token server mints a token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from system import livekit_server
from system.files import atomic_write_text
from system.procgroup import ProcessGroupError, group_members, kill_group
from system.credentials import ApiCredentials, load_or_create
from system.paths import REPO_ROOT, stack_dir

log = logging.getLogger("autortc.stack")

COMPONENTS = ("livekit", "agent", "token")


class StackError(RuntimeError):
    """A component did not start or stop; the message names it and points at its log."""


@dataclass(frozen=True, kw_only=True)
class StackOptions:
    server: livekit_server.ServerOptions = field(default_factory=livekit_server.ServerOptions)
    token_port: int = 7890
    agent_http_port: int = 8081
    agent_env: dict[str, str] = field(default_factory=dict)  # AUTORTC_AGENT_* overrides
    ready_timeout_s: float = 120.0

    @property
    def token_url(self) -> str:
        return f"http://{self.server.host}:{self.token_port}"


@dataclass
class ComponentState:
    name: str
    pid: int
    cmd: list[str]
    log: str
    ports: dict[str, int]
    started_mono: float
    ready_s: float | None = None


@dataclass
class ComponentStatus:
    name: str
    running: bool
    pid: int | None
    ports: dict[str, int]
    log: str | None
    group_members: int


def _load_state(p: Path) -> dict[str, ComponentState]:
    if not p.exists():
        return {}
    data = json.loads(p.read_text())
    return {k: ComponentState(**v) for k, v in data.get("components", {}).items()}


def _save_state(p: Path, state: dict[str, ComponentState], opts: StackOptions | None = None) -> None:
    payload = {"components": {k: asdict(v) for k, v in state.items()}}
    if opts is not None:
        payload["livekit_url"] = opts.server.url
        payload["token_url"] = opts.token_url
        payload["node_ip"] = opts.server.node_ip
        payload["rtc_udp_port"] = opts.server.rtc_udp_port
    atomic_write_text(p, json.dumps(payload, indent=2))


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def _tail(path: str, n: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


async def _api_ready(opts: StackOptions, creds: ApiCredentials) -> bool:
    from livekit import api

    lk = api.LiveKitAPI(opts.server.http_url, creds.api_key, creds.api_secret)
    try:
        await lk.room.list_rooms(api.ListRoomsRequest())
        return True
    except Exception:
        return False
    finally:
        await lk.aclose()


def _token_ready(opts: StackOptions) -> bool:
    try:
        with urllib.request.urlopen(f"{opts.token_url}/token?room=healthcheck&identity=healthcheck", timeout=2) as r:
            return r.status == 200 and "token" in json.loads(r.read())
    except Exception:
        return False


class Stack:
    """Start/stop/inspect the stack. State lives in ``output/stack/state.json``."""

    def __init__(self, opts: StackOptions | None = None, *, state_dir: Path | None = None) -> None:
        self.opts = opts or StackOptions()
        self.dir = state_dir or stack_dir()
        self.state_path = self.dir / "state.json"

    # -- status ---------------------------------------------------------------------------

    def status(self) -> list[ComponentStatus]:
        state = _load_state(self.state_path)
        out = []
        for name in COMPONENTS:
            st = state.get(name)
            members = group_members(st.pid) if st else []
            out.append(
                ComponentStatus(
                    name=name,
                    running=bool(st) and st.pid in members,
                    pid=st.pid if st else None,
                    ports=st.ports if st else {},
                    log=st.log if st else None,
                    group_members=len(members),
                )
            )
        return out

    def is_up(self) -> bool:
        return all(s.running for s in self.status())

    # -- up -------------------------------------------------------------------------------

    def up(self) -> dict[str, float]:
        """Start whatever is not running; returns seconds-to-ready per component started.

        Raises ``StackError`` naming the component (with its log tail) when one is not
        ready within ``ready_timeout_s``; components already started are left running
        for ``down`` to collect.
        """
        if self.is_up():
            log.info("stack already up")
            return {}
        self.down(quiet=True)  # a partial stack is restarted whole
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        creds = load_or_create()
        binary = livekit_server.ensure_binary(log_file=self.dir / "logs" / "livekit-build.log")
        log.info("%s", livekit_server.binary_version(binary))
        state: dict[str, ComponentState] = {}
        timings: dict[str, float] = {}
        so = self.opts.server

        for port in (so.port, self.opts.token_port, self.opts.agent_http_port):
            if _port_open(so.host, port):
                raise StackError(f"port {so.host}:{port} is already in use by another program")

        cfg = livekit_server.write_config(self.dir / "livekit.yaml", so, creds)
        state["livekit"] = self._spawn(
            "livekit", livekit_server.command(binary, cfg), {}, {"http": so.port, "rtc_udp": so.rtc_udp_port, "rtc_tcp": so.rtc_tcp_port}
        )
        _save_state(self.state_path, state, self.opts)
        timings["livekit"] = self._wait(
            state["livekit"], lambda: _port_open(so.host, so.port) and asyncio.run(_api_ready(self.opts, creds))
        )

        ready_file = self.dir / "agent.registered"
        ready_file.unlink(missing_ok=True)
        agent_env = {
            "LIVEKIT_URL": so.url,
            **creds.env(),
            "AUTORTC_AGENT_READY_FILE": str(ready_file),
            "AUTORTC_AGENT_HTTP_PORT": str(self.opts.agent_http_port),
            **self.opts.agent_env,
        }
        state["agent"] = self._spawn(
            "agent", [sys.executable, "-m", "system.agent.worker", "start"], agent_env, {"http": self.opts.agent_http_port}
        )
        _save_state(self.state_path, state, self.opts)

        state["token"] = self._spawn(
            "token",
            [sys.executable, "-m", "system.token_server", "--port", str(self.opts.token_port), "--livekit-url", so.url],
            {},
            {"http": self.opts.token_port},
        )
        _save_state(self.state_path, state, self.opts)
        timings["token"] = self._wait(state["token"], lambda: _token_ready(self.opts))
        timings["agent"] = self._wait(state["agent"], ready_file.exists)
        _save_state(self.state_path, state, self.opts)
        return timings

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str], ports: dict[str, int]) -> ComponentState:
        log_path = self.dir / "logs" / f"{name}.log"
        with open(log_path, "ab") as lf:
            proc = subprocess.Popen(
                cmd,
                cwd=REPO_ROOT,
                env={**os.environ, **env},
                stdout=lf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # own session and process group: down kills the group
            )
        log.info("started %s pid=%d log=%s", name, proc.pid, log_path)
        return ComponentState(name=name, pid=proc.pid, cmd=cmd[:1] + cmd[1:], log=str(log_path), ports=ports, started_mono=time.monotonic())

    def _wait(self, st: ComponentState, ready) -> float:
        deadline = st.started_mono + self.opts.ready_timeout_s
        while time.monotonic() < deadline:
            if st.pid not in group_members(st.pid):
                raise StackError(f"{st.name} exited during start-up; log {st.log}:\n{_tail(st.log)}")
            if ready():
                st.ready_s = time.monotonic() - st.started_mono
                log.info("%s ready in %.2f s", st.name, st.ready_s)
                return st.ready_s
            time.sleep(0.1)  # polling a readiness probe, not a barrier
        raise StackError(f"{st.name} not ready after {self.opts.ready_timeout_s:.0f} s; log {st.log}:\n{_tail(st.log)}")

    # -- down -----------------------------------------------------------------------------

    def down(self, *, timeout_s: float = 15.0, quiet: bool = False) -> list[str]:
        """Stop every component's whole process group: SIGTERM, then SIGKILL after ``timeout_s``.

        Returns the names stopped. Raises ``StackError`` if a group member survives SIGKILL.
        """
        state = _load_state(self.state_path)
        stopped = []
        for name in reversed(COMPONENTS):  # token, agent, then the SFU the agent talks to
            st = state.get(name)
            if st is None:
                continue
            if group_members(st.pid):
                self._kill_group(st, timeout_s)
                stopped.append(name)
            state.pop(name)
            _save_state(self.state_path, state)
        if not quiet:
            log.info("stopped: %s", ", ".join(stopped) or "nothing was running")
        return stopped

    @staticmethod
    def _kill_group(st: ComponentState, timeout_s: float) -> None:
        try:
            kill_group(st.pid, name=st.name, term_timeout_s=timeout_s)
        except ProcessGroupError as exc:
            raise StackError(str(exc)) from exc

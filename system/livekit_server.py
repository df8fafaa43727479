"""The real LiveKit SFU: built once from its Go module, cached, configured for loopback."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from system.credentials import ApiCredentials
from system.paths import cache_dir

log = logging.getLogger("autortc.stack.livekit")

LIVEKIT_MODULE = "github.com/livekit/livekit-server/cmd/server"
LIVEKIT_VERSION = "v1.13.5"  # that tag has no replace directives, so `go install` builds it
# With `stack up --net` the SFU advertises the impairment relay's address (docs/network.md):
# every peer's media then crosses the relay, which degrades only the user side's flows.
NET_NODE_IP = "198.18.0.1"


@dataclass(frozen=True, kw_only=True)
class ServerOptions:
    """Where and how the SFU listens. All addresses are loopback: this is a test rig."""

    host: str = "127.0.0.1"
    port: int = 7880  # HTTP + WebSocket signaling
    rtc_udp_port: int = 7882  # the single UDP port all media uses (one port makes impairment possible)
    rtc_tcp_port: int = 7881  # ICE/TCP fallback; 0 = none (it would listen on all addresses and bypass the relay)
    node_ip: str = "127.0.0.1"  # the address advertised in ICE candidates
    # Short timeouts so a per-case room disappears soon after its participants leave.
    empty_timeout_s: int = 10
    departure_timeout_s: int = 2
    log_level: str = "info"

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"


def binary_path() -> Path:
    return cache_dir() / "bin" / f"livekit-server-{LIVEKIT_VERSION}"


def ensure_binary(*, log_file: Path | None = None) -> Path:
    """Return the cached ``livekit-server`` binary, building it with ``go install`` when absent.

    A cold build takes about 7 minutes on 2 cores; later calls return at once.
    Raises ``RuntimeError`` with the tail of the Go output when the build fails.
    """
    target = binary_path()
    if target.exists() and os.access(target, os.X_OK):
        return target
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("`go` not found on PATH: it is needed once to build livekit-server")
    gobin = target.parent / "gobin"
    gobin.mkdir(parents=True, exist_ok=True)
    log.info("building livekit-server %s with go install (cold: ~7 min)", LIVEKIT_VERSION)
    t0 = time.monotonic()
    proc = subprocess.run(
        [go, "install", f"{LIVEKIT_MODULE}@{LIVEKIT_VERSION}"],
        env={**os.environ, "GOBIN": str(gobin), "CGO_ENABLED": os.environ.get("CGO_ENABLED", "1")},
        capture_output=True,
        text=True,
    )
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise RuntimeError(f"go install {LIVEKIT_MODULE}@{LIVEKIT_VERSION} failed:\n{tail}")
    (gobin / "server").rename(target)
    log.info("built livekit-server in %.0f s -> %s", time.monotonic() - t0, target)
    return target


def binary_version(binary: Path) -> str:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    return (out.stdout or out.stderr).strip()


def render_config(opts: ServerOptions, creds: ApiCredentials) -> str:
    """The server's YAML config. It holds the API secret: write it 0600, never log it."""
    return f"""\
port: {opts.port}
bind_addresses: ["{opts.host}"]
rtc:
  udp_port: {opts.rtc_udp_port}
  tcp_port: {opts.rtc_tcp_port}
  node_ip: {opts.node_ip}
  use_external_ip: false
  enable_loopback_candidate: true
  interfaces:
    includes: [lo]
room:
  empty_timeout: {opts.empty_timeout_s}
  departure_timeout: {opts.departure_timeout_s}
keys:
  {creds.api_key}: {creds.api_secret}
logging:
  level: {opts.log_level}
"""


def write_config(path: Path, opts: ServerOptions, creds: ApiCredentials) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(render_config(opts, creds))
    return path


def command(binary: Path, config_path: Path) -> list[str]:
    return [str(binary), "--config", str(config_path)]

"""``autortc net ...``: list profiles, check the host, measure a profile, serve a path for a run.

    autortc net profiles [--profiles-file F] [--json]
    autortc net check
    autortc net measure --profile bad_wifi [--seconds 30] [--rate 100] [--json]
    autortc net serve --profile 4g_ok --server-udp 127.0.0.1:7882 --server-tcp 127.0.0.1:7880 \
        [--node-ip 198.18.0.1] --state-file run/net.json

``serve`` is what a run starts (as its own process, in its own process group)
before the bots: it writes ``state-file`` once the path is up (``"ready": true``,
the namespace, the URL the user side must use), probes the path during the whole
run, and on SIGTERM/SIGINT tears everything down and rewrites ``state-file``
with the relay's counters and the configured-vs-measured verification.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

__all__ = ["register"]

net_app = typer.Typer(help="Network profiles: list, check the host, measure, serve the impaired path.", no_args_is_help=True)


def _addr(text: str, opt: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise typer.BadParameter(f"{opt}: expected HOST:PORT like 127.0.0.1:7882, got {text!r}")
    return host, int(port)


def _profile(name: str, files: list[Path]) -> Any:
    from autortc.network.profiles import ProfileError, get_profile

    try:
        return get_profile(name, files)
    except ProfileError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


@net_app.command("profiles")
def profiles_cmd(
    profiles_file: list[Path] = typer.Option([], "--profiles-file", help="extra TOML profile files (repeatable)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """List the known network profiles (built-in and user files)."""
    from autortc.network.profiles import ProfileError, load_profiles

    try:
        ps = load_profiles(profiles_file)
    except ProfileError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps({n: p.to_dict() for n, p in ps.items()}, indent=2))
        return
    for name, p in ps.items():
        u, d = p.uplink, p.downlink
        def fmt(s: Any) -> str:
            rate = f" {s.rate_kbps:g}kbit/s" if s.rate_kbps else ""
            burst = f" bursts~{s.burst_packets:g}" if s.burst_packets > 1 else ""
            return f"{s.delay_ms:g}+/-{s.jitter_ms:g}ms {s.loss_pct:g}%{burst}{rate}"
        dirs = fmt(u) if u == d else f"up {fmt(u)} | down {fmt(d)}"
        typer.echo(f"{name:18s} {dirs:45s} {p.description}")


@net_app.command("check")
def check_cmd() -> None:
    """Say which impairment backends this host supports (namespaces, netem)."""
    from autortc.network.netns import can_manage_namespaces, netem_available

    ok, why = can_manage_namespaces()
    typer.echo(f"namespaces+veth: {'yes' if ok else 'no'} ({why})")
    chk = netem_available()
    typer.echo(f"tc netem:        {'yes' if chk.available else 'no'} ({chk.reason})")
    typer.echo(f"backend used:    {'netem (jitter-free or reorder profiles), relay otherwise' if chk.available else 'relay'}; "
               f"mode {'netns (agent unimpaired)' if ok else 'loopback (agent impaired too)'}")


@net_app.command("measure")
def measure_cmd(
    profile: str = typer.Option(..., "--profile", "-p", help="profile name"),
    seconds: float = typer.Option(30.0, help="probe duration, s"),
    rate: float = typer.Option(100.0, help="probe packets per second"),
    backend: str = typer.Option("auto", help="auto | relay | netem"),
    mode: str = typer.Option("auto", help="auto | netns | loopback"),
    seed: Optional[int] = typer.Option(None, help="seed of the relay's loss/jitter draws"),
    profiles_file: list[Path] = typer.Option([], "--profiles-file"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Bench: put PROFILE in front of a local UDP echo and print configured vs measured.

    Exit status 0 when the profile is applied, 1 when not, 3 when inconclusive.
    """
    import asyncio

    from autortc.network.path import ImpairedPath

    prof = _profile(profile, profiles_file)

    async def run() -> Any:
        loop = asyncio.get_running_loop()

        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, t: Any) -> None:
                self.t = t

            def datagram_received(self, d: bytes, a: Any) -> None:
                self.t.sendto(d, a)

        t, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        try:
            port = t.get_extra_info("sockname")[1]
            async with ImpairedPath(prof, server_udp=("127.0.0.1", port), mode=mode, backend=backend,  # type: ignore[arg-type]
                                    node_ip="auto", seed=seed) as path:
                v = await path.measure(duration_s=seconds, rate_pps=rate)
                return v, path.stats()
        finally:
            t.close()

    _raise_priority()
    v, stats = asyncio.run(run())
    if as_json:
        typer.echo(json.dumps({"verification": v.to_dict(), "path": stats}, indent=2, default=float))
    else:
        typer.echo(v.table())
    raise typer.Exit({"applied": 0, "not_applied": 1}.get(v.verdict, 3))


def _raise_priority() -> None:
    """A user-space relay is only as punctual as its scheduling: ask for a better nice level (root)."""
    import os

    try:
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    except (PermissionError, OSError):
        pass


@net_app.command("serve")
def serve_cmd(
    profile: str = typer.Option(..., "--profile", "-p"),
    server_udp: str = typer.Option("127.0.0.1:7882", help="the SFU's single UDP media port, HOST:PORT"),
    server_tcp: str = typer.Option("127.0.0.1:7880", help="the SFU's signaling port, HOST:PORT (forwarded into the namespace)"),
    node_ip: str = typer.Option("198.18.0.1", help="the address the SFU advertises (rtc.node_ip)"),
    mode: str = typer.Option("auto", help="auto | netns | loopback"),
    backend: str = typer.Option("auto", help="auto | relay | netem"),
    state_file: Path = typer.Option(..., help="JSON written when ready and rewritten at exit"),
    probe_rate: float = typer.Option(50.0, help="probe packets per second during the run (0: no probe)"),
    probe_window: float = typer.Option(10.0, help="seconds per probe train"),
    seed: Optional[int] = typer.Option(None),
    profiles_file: list[Path] = typer.Option([], "--profiles-file"),
) -> None:
    """Hold the impaired path up for a run, probing it, until SIGTERM/SIGINT."""
    import asyncio
    import signal

    from autortc.network.measure import merge_raw, verify
    from autortc.network.path import ImpairedPath

    prof = _profile(profile, profiles_file)
    udp = _addr(server_udp, "--server-udp")
    tcp = _addr(server_tcp, "--server-tcp")

    def write(obj: dict[str, Any]) -> None:
        tmp = state_file.with_suffix(state_file.suffix + ".tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(obj, indent=2, default=float))
        tmp.replace(state_file)

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with ImpairedPath(prof, server_udp=udp, server_tcp=tcp, mode=mode, backend=backend,  # type: ignore[arg-type]
                                node_ip=node_ip, seed=seed) as path:
            base = {
                "ready": True, "profile": prof.to_dict(), "mode": path.mode, "backend": path.backend,
                "backend_reason": path.backend_reason, "node_ip": path.node_ip, "netns": path.netns,
                "client_bind_address": path.client_bind_address, "livekit_url": path.livekit_url,
                "agent_exempt": path.agent_exempt, "user_argv_prefix": path.wrap_argv([]),
            }
            write(base)
            typer.echo(json.dumps(base), err=False)
            sys.stdout.flush()
            raws = []

            async def probe() -> None:
                while not stop.is_set():
                    raws.append(await path.train(duration_s=probe_window, rate_pps=probe_rate))

            task = asyncio.create_task(probe(), name="autortc.network.serve.probe") if probe_rate > 0 else None
            await stop.wait()
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            out = {**base, "ready": False, "stats": path.stats()}
            if raws:
                v = verify(path.profile, merge_raw(raws), backend=path.backend)
                out["verification"] = v.to_dict()
                typer.echo(v.table(), err=True)
            write(out)
        return 0

    _raise_priority()
    raise typer.Exit(asyncio.run(run()))


def register(app: typer.Typer) -> None:
    app.add_typer(net_app, name="net")

"""``autortc stack up|down|status|logs``."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    stack_app = typer.Typer(help="Start, stop and inspect the voice-agent stack under test.", no_args_is_help=True)
    app.add_typer(stack_app, name="stack")

    @stack_app.command("up")
    def up(
        agent_env: list[str] = typer.Option([], "--agent-env", help="AUTORTC_AGENT_FIELD=value override (repeatable)"),
        port_offset: int = typer.Option(0, "--port-offset", help="add this to every port (a second stack beside the first)"),
        net: bool = typer.Option(False, "--net", help="advertise the impairment relay's address so `autortc run --profile` can degrade the user side's media (docs/network.md)"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="one line (ready times) instead of the status table"),
    ) -> None:
        """Build/reuse the SFU, start SFU, agent worker and token server; wait until each is ready."""
        from system.livekit_server import NET_NODE_IP, ServerOptions
        from system.stack import Stack, StackError, StackOptions

        env = {}
        for item in agent_env:
            key, sep, value = item.partition("=")
            if not sep or not key.startswith("AUTORTC_AGENT_"):
                raise typer.BadParameter(f"--agent-env {item!r}: expected AUTORTC_AGENT_<FIELD>=value")
            env[key] = value
        d = ServerOptions()
        server = ServerOptions(port=d.port + port_offset, rtc_udp_port=d.rtc_udp_port + port_offset,
                               rtc_tcp_port=0 if net else d.rtc_tcp_port + port_offset,
                               node_ip=NET_NODE_IP if net else d.node_ip)
        so = StackOptions()
        stack = Stack(StackOptions(agent_env=env, server=server, token_port=so.token_port + port_offset,
                                   agent_http_port=so.agent_http_port + port_offset))
        try:
            timings = stack.up()
        except StackError as exc:
            typer.echo(f"stack up failed: {exc}", err=True)
            raise typer.Exit(2) from exc
        if quiet:
            from system.paths import stack_dir

            parts = ", ".join(f"{name} {secs:.1f} s" for name, secs in timings.items())
            typer.echo(f"stack up: {parts} ready (logs: {stack_dir() / 'logs'})")
            return
        for name, secs in timings.items():
            typer.echo(f"{name:8s} ready in {secs:6.2f} s")
        _print_status(stack)

    @stack_app.command("down")
    def down(quiet: bool = typer.Option(False, "--quiet", "-q", help="print only errors")) -> None:
        """Stop every component's whole process group and wait until none is left."""
        from system.stack import Stack, StackError

        try:
            stopped = Stack().down()
        except StackError as exc:
            typer.echo(f"stack down failed: {exc}", err=True)
            raise typer.Exit(2) from exc
        if not quiet:
            typer.echo("stopped: " + (", ".join(stopped) or "nothing was running"))

    @stack_app.command("status")
    def status(as_json: bool = typer.Option(False, "--json")) -> None:
        """What runs, with pid, ports and process-group size. Exit 1 unless all three run."""
        from system.stack import Stack

        stack = Stack()
        if as_json:
            typer.echo(json.dumps([s.__dict__ for s in stack.status()], indent=2))
        else:
            _print_status(stack)
        if not stack.is_up():
            raise typer.Exit(1)

    @stack_app.command("logs")
    def logs(component: str = typer.Argument("agent"), lines: int = typer.Option(50, "-n")) -> None:
        """Print the last lines of a component's log (livekit, agent, token)."""
        from system.stack import COMPONENTS
        from system.paths import stack_dir

        if component not in COMPONENTS:
            raise typer.BadParameter(f"component {component!r}: expected one of {', '.join(COMPONENTS)}")
        path = stack_dir() / "logs" / f"{component}.log"
        if not path.exists():
            typer.echo(f"{path}: no log yet", err=True)
            raise typer.Exit(1)
        typer.echo("\n".join(path.read_text(errors="replace").splitlines()[-lines:]))


def _print_status(stack) -> None:
    for s in stack.status():
        ports = ", ".join(f"{k}={v}" for k, v in s.ports.items())
        state = "running" if s.running else "stopped"
        typer.echo(f"{s.name:8s} {state:8s} pid={s.pid or '-':<8} procs={s.group_members:<3} {ports}  log={s.log or '-'}")

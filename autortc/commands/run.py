"""``autortc run``: run a suite against the bundled stack or any LiveKit agent speaking the protocol."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import typer

DEFAULT_CASES = Path(__file__).resolve().parents[2] / "cases" / "all_cases.json"


def bundled_state() -> dict:
    """``state.json`` of the running bundled stack; raises ``RuntimeError`` when it is not running."""
    import json

    from system.stack import Stack

    stack = Stack()
    if not stack.is_up():
        raise RuntimeError("the bundled stack is not running: start it with `autortc stack up`")
    return json.loads(stack.state_path.read_text())


def bundled_target():
    """The bundled stack's target; raises ``RuntimeError`` when it is not running."""
    from autortc.bots.target import Target
    from system.agent.config import AGENT_NAME
    from system.credentials import load_or_create

    creds = load_or_create()
    return Target(livekit_url=bundled_state()["livekit_url"], api_key=creds.api_key, api_secret=creds.api_secret,
                  agent_name=AGENT_NAME)


async def _run_with_profile(opts, profile_name: str, extra_files: list[Path], measure_s: float, measure_pps: float):
    """Run the suite with the user side behind the impairment path; record configured vs measured.

    The bots' LiveKit FFI starts inside the path's namespace (its media and signaling cross the
    relay); the agent stays outside, unimpaired. The path is measured with a probe train before
    and after the suite and the verification goes into ``summary.json`` (``extra.network``).
    """
    import dataclasses
    import json

    from autortc.network.path import ImpairedPath
    from autortc.network.profiles import get_profile
    from autortc.results import RunSummary, read_json, write_json
    from autortc.runner.suite import run_suite

    state = bundled_state() if opts.target.agent_name else {}
    node_ip = state.get("node_ip")
    if state and node_ip in (None, "127.0.0.1"):
        raise RuntimeError("--profile needs the stack's SFU to advertise the relay: restart it with `autortc stack up --net`")
    if opts.via == "browser":
        raise RuntimeError("--profile with --via browser is not wired yet (the browser must run through the path's namespace)")
    prof = get_profile(profile_name, [str(p) for p in extra_files])
    udp = int(state.get("rtc_udp_port", 7882))
    http_port = int(opts.target.http_url.rsplit(":", 1)[1].split("/")[0])
    async with ImpairedPath(prof, server_udp=("127.0.0.1", udp), server_tcp=("127.0.0.1", http_port),
                            node_ip=node_ip or None) as path:
        path.attach_livekit_ffi()
        before = await path.measure(duration_s=measure_s, rate_pps=measure_pps)
        target = dataclasses.replace(opts.target, livekit_url=path.livekit_url)
        outcome = await run_suite(dataclasses.replace(opts, target=target))
        after = await path.measure(duration_s=measure_s, rate_pps=measure_pps)
        network = {
            "profile": prof.name,
            "configured": {"uplink": prof.uplink.model_dump(), "downlink": prof.downlink.model_dump()},
            "measured_before": before.to_dict(),
            "measured_after": after.to_dict(),
            "applied": bool(before.applied and after.applied),
            "path": path.stats(),
        }
    summary_path = outcome.run_dir / "summary.json"
    summary = read_json(summary_path, RunSummary)
    summary.extra["network"] = network
    write_json(summary_path, summary)
    (outcome.run_dir / "network.json").write_text(json.dumps(network, indent=2, default=str))
    from autortc.report import write_report

    write_report(outcome.run_dir)  # again, now with the network section
    outcome.summary = summary
    return outcome


def bundled_token_url() -> str:
    return bundled_state()["token_url"]


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        suite: str = typer.Option("fast", help="suite name in the cases file (fast, nightly, ...)"),
        cases: Path = typer.Option(DEFAULT_CASES, help="cases JSON (WAV paths relative to it)"),
        jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="cases in parallel rooms"),
        max_attempts: int = typer.Option(3, min=1, help="attempts per case on harness problems"),
        turns: int = typer.Option(None, help="conversation suites: number of turns"),
        gates: Path = typer.Option(None, help="TOML overriding gate thresholds for this run"),
        out: Path = typer.Option(Path("output/runs"), help="runs folder"),
        run_id: str = typer.Option(None, help="run id (default: UTC time + random)"),
        only: list[str] = typer.Option([], "--only", help="run only these case ids"),
        via: str = typer.Option("bots", help="bots (LiveKit SDK) or browser (headless Chromium)"),
        target: str = typer.Option("bundled", help="bundled (autortc stack) or env (LIVEKIT_URL/_API_KEY/_API_SECRET, AUTORTC_AGENT_NAME)"),
        perceptual: bool = typer.Option(False, "--perceptual/--no-perceptual", help="score ViSQOL MOS-LQO per turn (~4.5 s CPU each)"),
        profile: str = typer.Option(None, help="network profile for the user side's media (autortc net profiles); needs `autortc stack up --net`"),
        profiles_file: list[Path] = typer.Option([], "--profiles-file", help="extra TOML profiles (repeatable)"),
        measure_s: float = typer.Option(30.0, help="--profile: seconds of probe train before and after the suite"),
        measure_pps: float = typer.Option(200.0, help="--profile: probe packets per second (loss within ±0.5 point needs thousands)"),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
    ) -> None:
        """Run a suite; exit 0 when all gates pass, 1 when a gate fails, 2 when the harness failed."""
        from autortc.bots.target import Target
        from autortc.cases import CaseFileError
        from autortc.runner.suite import RunOptions, run_suite

        if via not in ("bots", "browser"):
            raise typer.BadParameter(f"--via {via!r}: expected bots or browser")
        try:
            tgt = bundled_target() if target == "bundled" else Target.from_env()
            token_url = bundled_token_url() if target == "bundled" else os.environ.get("AUTORTC_TOKEN_URL")
        except (RuntimeError, ValueError) as exc:
            typer.echo(f"target: {exc}", err=True)
            raise typer.Exit(2) from exc
        try:
            opts = RunOptions(target=tgt, cases_path=cases, suite=suite, out_root=out, run_id=run_id, jobs=jobs,
                              max_attempts=max_attempts, turns=turns, gates_path=gates, only=tuple(only),
                              perceptual=perceptual, via=via, progress=progress, token_url=token_url)  # type: ignore[arg-type]
            if profile:
                outcome = asyncio.run(_run_with_profile(opts, profile, profiles_file, measure_s, measure_pps))
            else:
                outcome = asyncio.run(run_suite(opts))
        except (CaseFileError, ValueError, RuntimeError) as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
        s = outcome.summary
        typer.echo(f"run {s.run_id}: {s.verdict} — {outcome.run_dir}")
        for g in s.gates:
            typer.echo(f"  {g.status:4s} {g.gate}: {g.measured} (threshold {g.threshold}) {getattr(g, 'where', '') or ''}")
        for e in outcome.harness_errors:
            typer.echo(f"  HARNESS {e}", err=True)
        if outcome.cut:
            typer.echo(f"  cut (not finished): {', '.join(outcome.cut)}", err=True)
        typer.echo(f"  report: {outcome.run_dir / 'report.md'}")
        raise typer.Exit(outcome.exit_code)

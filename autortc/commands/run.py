"""``autortc run``: run a suite against the bundled stack or any LiveKit agent speaking the protocol."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import typer

DEFAULT_CASES = Path(__file__).resolve().parents[2] / "cases" / "all_cases.json"


def bundled_target():
    """The bundled stack's target; raises ``RuntimeError`` when it is not running."""
    import json

    from autortc.bots.target import Target
    from system.agent.config import AGENT_NAME
    from system.credentials import load_or_create
    from system.paths import stack_dir
    from system.stack import Stack

    if not Stack().is_up():
        raise RuntimeError("the bundled stack is not running: start it with `autortc stack up`")
    state = json.loads((stack_dir() / "state.json").read_text())
    creds = load_or_create()
    return Target(livekit_url=state["livekit_url"], api_key=creds.api_key, api_secret=creds.api_secret, agent_name=AGENT_NAME)


def bundled_token_url() -> str:
    import json

    from system.paths import stack_dir

    return json.loads((stack_dir() / "state.json").read_text())["token_url"]


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
            outcome = asyncio.run(run_suite(opts))
        except (CaseFileError, ValueError) as exc:
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

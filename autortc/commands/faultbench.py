"""``autortc faultbench``: planted faults through the normal runner; recall, false alarms, timing truth.

docs/faultbench.md. Exit 0 when every scored fault's recall >= ``--min-recall`` and the clean
turns' false alarms <= ``--max-false-alarms``; 1 when the targets are missed; 2 when the bench
could not run (no stack, bad cases file, bad plan).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import secrets
import subprocess
import sys
from pathlib import Path

import typer

from autortc.commands.run import BUNDLED_TRANSCRIBER, DEFAULT_CASES


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parents[2]).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


async def run_bench(opts, plan, *, min_recall: float, max_false_alarms: int, command: str):
    """Run ``plan`` with ``opts`` (``RunOptions`` without items); returns ``(outcome, score, records, extra)``."""
    import dataclasses

    from autortc.faultbench import bench, render
    from autortc.metrics.instrument import INSTRUMENT
    from autortc.faultbench.score import score as score_turns
    from autortc.runner.suite import SuiteRunner

    state: dict = {}

    async def finalize() -> dict:
        runner = state["runner"]
        recs = bench.outcomes(plan, runner.results, runner.run_dir)
        sc = score_turns([r.outcome for r in recs], min_recall=min_recall, max_false_alarms=max_false_alarms)
        tim = bench.timing(recs)
        recv = bench.receivers(recs, plan) if opts.via == "browser" else None
        ins = bench.instrument_for(opts.via, INSTRUMENT, recv)
        state.update(records=recs, score=sc, timing=tim, receivers=recv, instrument=ins)
        return {"faultbench": bench.summary_extra(sc, plan, tim, ins, recv)}

    runner = SuiteRunner(dataclasses.replace(opts, items=bench.run_items(plan), finalize=finalize))
    state["runner"] = runner
    outcome = await runner.run()
    if "score" not in state:
        raise RuntimeError(f"faultbench: the run ended before scoring ({'; '.join(outcome.harness_errors)})")
    extra = {"command": command, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "commit": _commit(), "run_id": runner.run_id, "via": opts.via, "timing": state["timing"],
             "instrument": state["instrument"],
             "receivers": None if state["receivers"] is None else state["receivers"].to_dict(),
             "turns": [{"item": r.outcome.item, "entry": bench.entry_id(plan.items[r.outcome.item]),
                        "case_id": r.outcome.case_id, "fault": r.outcome.fault, "truth": list(r.outcome.truth),
                        "verdicts": [dataclasses.asdict(v) for v in r.outcome.verdicts],
                        "latency_ms": r.outcome.latency_ms, "pair": r.outcome.pair, "error": r.outcome.error,
                        "note": r.note, "uplink_ms": r.uplink_ms, "agent_ms": r.agent_ms, "downlink_ms": r.downlink_ms,
                        "split_note": r.split_note,
                        "browser_kpi_raw_ms": None if r.turn is None else r.turn.latency.user_kpi_raw_ms,
                        "clock_sync_rtt_ms": None if r.turn is None else r.turn.latency.clock_sync_rtt_ms}
                       for r in state["records"]]}
    render.write(outcome.run_dir, state["score"], plan=plan, extra=extra, receivers=state["receivers"])
    return outcome, state["score"], state["records"], extra


def register(app: typer.Typer) -> None:
    @app.command("faultbench")
    def faultbench(
        k: int = typer.Option(5, "--k", min=1, help="repeats per fault"),
        clean: int = typer.Option(50, "--clean", min=0, help="clean turns (same cases as the faulted ones)"),
        delay_pairs: int = typer.Option(20, "--delay-pairs", min=0, help="delay_300/delay_600 pairs on one case"),
        seed: int = typer.Option(None, "--seed", help="plan seed (default: random, printed)"),
        via: str = typer.Option("bots", help="bots (LiveKit SDK) or browser (headless Chromium)"),
        min_recall: float = typer.Option(0.95, "--min-recall", min=0.0, max=1.0),
        max_false_alarms: int = typer.Option(0, "--max-false-alarms", min=0),
        only_faults: str = typer.Option("", "--only-faults", help="comma-separated catalogue names (default: all)"),
        cases: Path = typer.Option(DEFAULT_CASES, help="cases JSON"),
        suite: str = typer.Option("fast", help="suite whose gate table applies (the cases come from the whole file)"),
        jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="rooms in parallel"),
        concurrent_turns: int = typer.Option(1, "--concurrent-turns", min=1,
                                             help="at most this many rooms with a turn live at once, as `autortc run`"),
        gates: Path = typer.Option(None, help="TOML overriding gate thresholds"),
        out: Path = typer.Option(Path("output/runs"), help="runs folder"),
        run_id: str = typer.Option(None, help="run id (default: UTC time + random)"),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
        transcriber: str = typer.Option(BUNDLED_TRANSCRIBER, help="content check's STT ('' skips it), as `autortc run`"),
    ) -> None:
        """Plant every fault K times + clean turns through the normal runner; score recall and false alarms."""
        from autortc.cases import CaseFileError, load_case_file
        from autortc.commands.run import bundled_target, bundled_token_url
        from autortc.faultbench import render
        from autortc.faultbench.plan import BenchCase, PlanError, make_plan
        from autortc.runner.suite import RunOptions

        if via not in ("bots", "browser"):
            raise typer.BadParameter(f"--via {via!r}: expected bots or browser")
        seed = seed if seed is not None else secrets.randbelow(2**31)
        try:
            cf = load_case_file(cases)
            bcases = [BenchCase.from_case(c) for c in cf.cases]
            faults = [f.strip() for f in only_faults.split(",") if f.strip()] or None
            plan = make_plan(bcases, seed=seed, k=k, clean=clean, delay_pairs=delay_pairs, faults=faults)
        except (CaseFileError, PlanError, ValueError) as exc:
            typer.echo(f"faultbench: {exc}", err=True)
            raise typer.Exit(2) from exc
        typer.echo(f"faultbench seed {seed}: {len(plan.items)} turns {json.dumps(plan.counts())}")
        try:
            tgt = bundled_target()
            token_url = bundled_token_url()
        except RuntimeError as exc:
            typer.echo(f"target: {exc}", err=True)
            raise typer.Exit(2) from exc
        opts = RunOptions(target=tgt, cases_path=cases, suite=suite, out_root=out, run_id=run_id, jobs=jobs,
                          concurrent_turns=concurrent_turns, gates_path=gates, via=via, progress=progress, token_url=token_url,  # type: ignore[arg-type]
                          transcriber=transcriber or None)
        command = "autortc faultbench " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "autortc faultbench"
        if "--seed" not in command:
            command += f" --seed {seed}"
        try:
            outcome, sc, _, extra = asyncio.run(run_bench(opts, plan, min_recall=min_recall, max_false_alarms=max_false_alarms,
                                                      command=command))
        except (CaseFileError, ValueError, RuntimeError) as exc:
            typer.echo(f"faultbench: {exc}", err=True)
            raise typer.Exit(2) from exc
        typer.echo(render.to_markdown(sc, plan=plan, receivers=extra.get("receivers")))
        for e in outcome.harness_errors:
            typer.echo(f"  HARNESS {e}", err=True)
        typer.echo(f"faultbench seed {seed} — {outcome.run_dir / 'faultbench.json'}, report {outcome.run_dir / 'report.md'}")
        raise typer.Exit(0 if sc.passed else 1)

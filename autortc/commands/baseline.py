"""``autortc baseline``: save a run's metric distributions, list baselines, compare a run, flake rates."""

from __future__ import annotations

from pathlib import Path

import typer

RUNS = Path("output/runs")
BASELINES = Path("output/baselines")


def _run_dir(run: str, runs: Path) -> Path:
    """A run given as a folder or as a run id under ``runs``."""
    p = Path(run)
    if (p / "summary.json").exists():
        return p
    if (runs / run / "summary.json").exists():
        return runs / run
    raise typer.BadParameter(f"{run!r}: neither a run folder nor a run id under {runs} (no summary.json)", param_hint="RUN")


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Baselines: metric distributions of earlier runs; regressions with bootstrap intervals.",
                      no_args_is_help=True)
    app.add_typer(sub, name="baseline")

    @sub.command("save")
    def save(
        run: list[str] = typer.Argument(..., help="run folder(s) or run id(s) under --runs; several repeats pool into one baseline"),
        name: str = typer.Option(None, "--name", help="baseline name (default: the first run's id)"),
        runs: Path = typer.Option(RUNS, help="runs folder for run ids"),
        out: Path = typer.Option(BASELINES, help="baselines folder"),
    ) -> None:
        """Save RUN's per-turn metric values as output/baselines/NAME.json."""
        from autortc.baseline import BaselineError, save_baseline

        dirs = [_run_dir(r, runs) for r in run]
        try:
            path, base = save_baseline(dirs, name or dirs[0].name, root=out)
        except BaselineError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
        n = max((len(v) for v in base.metrics.values()), default=0)
        typer.echo(f"saved baseline {base.name!r}: {len(base.runs)} run(s), up to {n} turns, "
                   f"{len(base.metrics)} metrics -> {path}")

    @sub.command("list")
    def list_(out: Path = typer.Option(BASELINES, help="baselines folder")) -> None:
        """Saved baselines: name, created, runs, turns."""
        from autortc.baseline import BaselineError, list_baselines, load_baseline

        paths = list_baselines(out)
        if not paths:
            typer.echo(f"no baselines in {out} (save one with `autortc baseline save RUN`)")
            return
        for p in paths:
            try:
                b = load_baseline(p)
            except BaselineError as exc:
                typer.echo(f"{p.stem:24s} unreadable: {exc}")
                continue
            turns = sum(r.turns for r in b.runs)
            typer.echo(f"{b.name:24s} {b.created_at}  {len(b.runs)} run(s) {turns} turns  "
                       f"[{', '.join(r.run_id for r in b.runs)}]")

    @sub.command("compare")
    def compare_(
        run: str = typer.Argument(..., help="run folder or run id"),
        baseline: str = typer.Option(..., "--baseline", "-b", help="baseline name (or path to its JSON)"),
        effects: Path = typer.Option(None, help="TOML of minimum effects (default autortc/baseline_effects.toml)"),
        runs: Path = typer.Option(RUNS, help="runs folder for run ids"),
        out: Path = typer.Option(BASELINES, help="baselines folder"),
    ) -> None:
        """Delta table of RUN vs a baseline; exit 1 when a metric regressed significantly."""
        from autortc.baseline import BaselineError, compare_run, delta_table, has_regression, load_baseline, load_effects
        from autortc.console import get_console

        try:
            rows = compare_run(_run_dir(run, runs), load_baseline(baseline, root=out), load_effects(effects))
        except BaselineError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
        con = get_console()
        con.print(delta_table(rows, title=f"{run} vs baseline {baseline} (median shift, 95 % bootstrap CI)"))
        bad = [r.key for r in rows if r.verdict == "REGRESSION"]
        con.print(f"regressions: {', '.join(bad)}" if bad else "no significant regression")
        raise typer.Exit(1 if has_regression(rows) else 0)

    @sub.command("flake")
    def flake(
        run: list[str] = typer.Argument(..., help="the repeated runs (folders or ids) of one suite"),
        runs: Path = typer.Option(RUNS, help="runs folder for run ids"),
    ) -> None:
        """Verdict flake rate per case over repeated runs (what `autortc run --repeat N` will print)."""
        from autortc.baseline import flake_rates, verdicts_by_case
        from autortc.results import ResultFileError, RunSummary, read_json

        try:
            summaries = [read_json(_run_dir(r, runs) / "summary.json", RunSummary) for r in run]
        except ResultFileError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
        for f in flake_rates(verdicts_by_case(summaries)):
            rate = "—" if f.flake_rate is None else f"{100 * f.flake_rate:.0f} %"
            ci = "" if f.ci_low is None else f"  fail rate {100 * f.fail_rate:.0f} % [{100 * f.ci_low:.0f}, {100 * f.ci_high:.0f}] %"
            typer.echo(f"{'FLAKY' if f.flaky else 'ok':5s} {f.case_id:28s} flake {rate:>5s}{ci}  {' '.join(f.verdicts)}")

"""``autortc calibrate``: the page's USER_KPI against the probe's EoT → first audio, same turns, N runs.

Each run sends every case through headless Chromium (the user) while the probe bot records
the agent in the same room, so both measure the *same* reply: their difference is the
measurement difference between the two ears (browser playout path vs probe), not agent
variance. ``calibration_report.md`` gives per case the means, the difference and the
repeatability (stdev across runs).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import typer

from autortc.commands.run import DEFAULT_CASES


def register(app: typer.Typer) -> None:
    @app.command("calibrate")
    def calibrate(
        runs: int = typer.Option(3, min=1, help="runs of each case"),
        suite: str = typer.Option("fast"),
        cases: Path = typer.Option(DEFAULT_CASES),
        only: list[str] = typer.Option([], "--only"),
        out: Path = typer.Option(Path("output/calibration")),
    ) -> None:
        """Run the suite N times via the browser (probe beside it) and write calibration_report.md."""
        from autobrowser.calibration import CalibrationRun, calibrate as calib, calibration_markdown
        from autortc.commands.run import bundled_target, bundled_token_url
        from autortc.runner.paths import new_run_id
        from autortc.runner.suite import RunOptions, run_suite

        try:
            target, token_url = bundled_target(), bundled_token_url()
        except RuntimeError as exc:
            typer.echo(f"target: {exc}", err=True)
            raise typer.Exit(2) from exc
        base = new_run_id()
        pairs: list[CalibrationRun] = []
        for r in range(runs):
            opts = RunOptions(target=target, cases_path=cases, suite=suite, only=tuple(only), out_root=out,
                              run_id=f"{base}-r{r}", via="browser", token_url=token_url, progress=False)
            outcome = asyncio.run(run_suite(opts))
            for entry in outcome.summary.cases:
                res = json.loads((outcome.run_dir / entry.result).read_text()) if entry.result else {}
                for t in res.get("turns", []):
                    lat = t.get("latency", {})
                    pairs.append(CalibrationRun(case_id=entry.case_id, run_index=r,
                                                browser_ms=lat.get("user_kpi_ms"), probe_ms=lat.get("eot_to_first_audio_ms")))
        table, overall = calib(pairs)
        cmd = "autortc calibrate " + " ".join(sys.argv[2:])
        out.mkdir(parents=True, exist_ok=True)
        path = out / "calibration_report.md"
        path.write_text(calibration_markdown(table, overall, command=cmd))
        typer.echo(path.read_text())

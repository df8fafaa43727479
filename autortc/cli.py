"""The ``autortc`` command line: stack lifecycle, suite runs, analysis, benches."""

from __future__ import annotations

import importlib
from pathlib import Path

import typer

app = typer.Typer(
    name="autortc",
    help="End-to-end QA for real-time voice agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Modules that add commands to ``app``; order is the order of ``--help``.
_COMMAND_MODULES = (
    "system.cli",
    "autortc.commands.run",
    "autortc.commands.stages",
    "autortc.commands.calibrate",
    "autortc.commands.analyze",
    "autortc.commands.baseline",
    "autortc.commands.cases_new",
    "autortc.commands.tts_bench",
    "autortc.commands.faultbench",
    "autortc.network.cli",
    "autobrowser.cli",
)


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(app)


@app.callback()
def _global_options(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True,
                                help="-v: INFO logs on the terminal; -vv: DEBUG and SDK lines"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="errors and failing cases only"),
    log_file: Path = typer.Option(None, "--log-file", help="also write every log record (INFO+, DEBUG at -vv) here"),
) -> None:
    """End-to-end QA for real-time voice agents (full logs of a run: output/runs/<run>/autortc.log)."""
    from autortc.console import attach_log_file, setup_logging

    setup_logging(-1 if quiet else verbose)
    if log_file is not None:
        attach_log_file(log_file)


def main() -> None:
    _register_all()
    app()


if __name__ == "__main__":
    main()

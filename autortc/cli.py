"""The ``autortc`` command line: stack lifecycle, suite runs, analysis, benches."""

from __future__ import annotations

import importlib
import logging
import os

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
    "autortc.commands.tts_bench",
    "autortc.commands.faultbench",
    "autortc.network.cli",
    "autobrowser.cli",
)


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(app)


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("AUTORTC_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # LiveKit Agents streams its session events to every participant on this topic; the bots do
    # not read them, and the SDK logs each unread stream at INFO on the root logger.
    logging.getLogger().addFilter(
        lambda r: not r.getMessage().startswith("ignoring byte stream with topic 'lk.agent.session'"))
    _register_all()
    app()


if __name__ == "__main__":
    main()

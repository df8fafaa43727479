"""``autortc browser-selftest`` and ``autortc browser-turn``.

    autortc browser-selftest [--out DIR] [--delay-ms 3000] [--repeat 5]
        Offline (no LiveKit): the page in headless Chromium against a tone-burst file; prints
        the EoT detection error (samples), the playout onset error, the clock-mapping error.
    autortc browser-turn CASE.wav [--room R] [--token-url http://127.0.0.1:7890] [--out DIR]
        One turn against the running stack: creates the room and dispatches the agent
        (LiveKit credentials from the environment or the stack's own), runs the page, prints
        USER_KPI and the receive statistics, deletes the room.

Register with ``autobrowser.cli`` in ``autortc/cli.py``'s ``_COMMAND_MODULES``.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("browser-selftest")(browser_selftest)
    app.command("browser-turn")(browser_turn)


def browser_selftest(
    out: Path = typer.Option(Path("output/browser_selftest"), help="Folder for traces and recordings."),
    delay_ms: float = typer.Option(3000.0, help="Delay of the stand-in agent (the mic, delayed)."),
    repeat: int = typer.Option(3, min=1, help="Runs (fresh browser each)."),
) -> None:
    """Measure the page's detection and clock-mapping error offline, with exact ground truth."""
    from rich.console import Console
    from rich.table import Table

    from .selftest import run_selftest

    rows = []
    for i in range(repeat):
        r = run_selftest(out / f"run{i}", delay_ms=delay_ms)
        rows.append(r)
    t = Table(title=f"browser selftest (delay {delay_ms:g} ms, 48 kHz; 1 sample = 0.0208 ms)")
    for c in ("run", "EoT err (smp)", "inserted zeros", "playout onset err (smp)", "USER_KPI (ms)",
              "KPI mapping err (ms)", "offset MAD (ms)", "render→output (ms)"):
        t.add_column(c)
    for i, r in enumerate(rows):
        t.add_row(str(i), str(r.eot_error_samples), str(r.inserted_zero_samples), str(r.playout_onset_error_samples),
                  f"{r.kpi.raw_ms:.3f}", f"{r.kpi_mapping_error_ms:.4f}", f"{(r.mapping or {}).get('offset_ms_mad', float('nan')):.3f}",
                  f"{r.render_to_output_ms:.2f}")
    Console(width=160).print(t)
    errs = [abs(r.eot_error_net_samples) for r in rows if r.eot_error_net_samples is not None]
    if errs:
        print(f"EoT |error| net of capture underruns, samples: median {statistics.median(errs)}, max {max(errs)} "
              f"({max(errs) / 48:.3f} ms); runs with underruns (10 ms chunks of zeros): "
              f"{sum(r.underrun_blocks > 0 for r in rows)}/{len(rows)}")


def browser_turn(
    case_wav: Path = typer.Argument(..., exists=True, dir_okay=False, help="The user's utterance (any WAV)."),
    room: Optional[str] = typer.Option(None, help="Room name (default: browser-<time>)."),
    token_url: str = typer.Option("http://127.0.0.1:7890", help="Token server (also serves the page)."),
    livekit_url: str = typer.Option("ws://127.0.0.1:7880", help="LiveKit server, for room creation."),
    agent_name: str = typer.Option("autortc-agent", help="Agent to dispatch ('' = automatic dispatch)."),
    out: Path = typer.Option(Path("output/browser_turn"), help="Artifacts folder."),
    trace_id: Optional[str] = typer.Option(None, help="AutoRTC trace id sent as turn_start."),
    speech_end_ms: Optional[float] = typer.Option(None, help="Annotated end of speech in CASE_WAV (ms)."),
    timeout_s: float = typer.Option(120.0, help="Bound on the whole turn."),
) -> None:
    """One turn of CASE_WAV through the product page in headless Chromium, against the stack."""
    import asyncio
    import os

    from autortc.bots.target import CaseRoom, Target

    from .harness import BrowserTurnError, arun_browser_turn

    if os.environ.get("LIVEKIT_API_KEY"):
        target = Target.from_env()
    else:
        from system.credentials import load_or_create

        c = load_or_create()
        target = Target(livekit_url=livekit_url, api_key=c.api_key, api_secret=c.api_secret, agent_name=agent_name or None)
    name = room or f"browser-{int(time.time())}"
    tid = trace_id or f"{case_wav.stem}-browser"

    async def go():
        async with CaseRoom(target, name):
            return await arun_browser_turn(case_wav, name, token_url, out, timeout_s=timeout_s, trace_id=tid,
                                           speech_end_ms=speech_end_ms)

    try:
        r = asyncio.run(go())
    except BrowserTurnError as e:
        typer.echo(f"browser turn failed: {e} (artifacts in {out})", err=True)
        raise typer.Exit(1) from e
    k = r.kpi
    typer.echo(json.dumps({
        "user_kpi_raw_ms": k.raw_ms, "user_kpi_ms": k.clamped_ms, "is_talk_over": k.is_talk_over,
        "eot_source": k.eot_source,
        "reply_complete": r.reply_complete, "stats": r.stats.to_dict(), "out": str(r.out_dir),
    }, indent=1))

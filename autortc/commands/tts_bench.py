"""``autortc tts-bench``: TTS regression gates (TTFA, determinism, fidelity vs gold,
repetition, streaming sanity) for the bundled piper TTS or any :class:`StreamingTTS`."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

_REPO_ROOT = Path(__file__).resolve().parents[2]
_DEFAULT_SENTENCES = Path("cases/tts/sentences.json")


def _parse_pairs(pairs: list[str], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{what} {pair!r}: expected NAME=VALUE")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def register(app: typer.Typer) -> None:
    """Add ``tts-bench`` to ``app``."""

    @app.command("tts-bench")
    def tts_bench(
        sentences: Annotated[Path, typer.Option(help="Sentence set (JSON, see docs/tts.md).")] = _DEFAULT_SENTENCES,
        repeats: Annotated[int, typer.Option(min=1, help="Synthesis calls per sentence.")] = 5,
        json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the result JSON here "
                                                          "(default: OUT_DIR/tts_bench.json).")] = None,
        out_dir: Annotated[Optional[Path], typer.Option(help="Audio, logs, JSON, markdown "
                                                         "(default: output/tts_bench/<run_id>).")] = None,
        gold_dir: Annotated[Optional[Path], typer.Option(help="Gold WAVs (default: <sentences dir>/gold).")] = None,
        update_gold: Annotated[bool, typer.Option("--update-gold", help="Regenerate gold from this run "
                                                  "and print the diff it caused.")] = False,
        engine: Annotated[str, typer.Option(help="Engine name (piper) or module:Class.")] = "piper",
        length_scale: Annotated[Optional[float], typer.Option(help="Phoneme length scale.")] = None,
        chunk_ms: Annotated[Optional[float], typer.Option(help="Largest chunk yielded (ms).")] = None,
        option: Annotated[list[str], typer.Option("--option", "-o", help="Engine option NAME=VALUE "
                                                  "(JSON value), e.g. -o noise_scale=0.5.")] = [],  # noqa: B006
        gate: Annotated[list[str], typer.Option("--gate", "-g", help="Gate threshold NAME=VALUE, "
                                                "e.g. -g ttfa_p95=500 (autortc/tts_bench/gates.toml).")] = [],  # noqa: B006
        gates_file: Annotated[Optional[Path], typer.Option("--gates", help="TOML [gates.*] tables over "
                                                           "autortc/tts_bench/gates.toml.")] = None,
        only: Annotated[list[str], typer.Option(help="Only these sentence ids or categories.")] = [],  # noqa: B006
    ) -> None:
        """Synthesize the sentence set REPEATS times in a worker process group and gate the TTS:
        TTFA P95, determinism (hash_unique), SNR and duration vs gold, ms/char and repetition,
        chunk sizes, first-chunk-early and underruns.  Exit 0 pass, 1 gate failed, 2 bad input,
        3 bench failure."""
        from datetime import datetime, timezone

        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.table import Table

        from autortc.tts_bench.bench import BenchConfig, BenchError, BenchEvent, run_bench, write_result
        from autortc.gates import GateConfigError
        from autortc.tts_bench.gates import load_tts_gates
        from autortc.tts_bench.gold import GoldError
        from autortc.tts_bench.report import render_markdown
        from autortc.tts_bench.sentences import SentenceSetError
        from system.tts import TTSError, engine_class

        console = Console(stderr=True)
        if sentences == _DEFAULT_SENTENCES and not sentences.exists():
            sentences = _REPO_ROOT / _DEFAULT_SENTENCES
        options = _parse_pairs(option, "--option")
        if length_scale is not None:
            options["length_scale"] = length_scale
        if chunk_ms is not None:
            options["chunk_ms"] = chunk_ms
        try:
            # validate options and gates here, so typos fail before a worker starts
            engine_class(engine).options_class(**options)
            gates = load_tts_gates(gates_file, _parse_pairs(gate, "--gate"))
        except (TTSError, TypeError, ValueError, GateConfigError) as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        run_dir = out_dir or Path("output/tts_bench") / datetime.now(timezone.utc).strftime("%Y%m%d_%H%M%S")
        config = BenchConfig(sentences_path=sentences, out_dir=run_dir, gold_dir=gold_dir, repeats=repeats,
                             engine=engine, options=options, gates=gates, update_gold=update_gold,
                             only=tuple(only) or None)

        def on_sigterm(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt  # unwind through the worker's process-group kill

        previous = signal.signal(signal.SIGTERM, on_sigterm)
        progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), console=console)
        task = progress.add_task(f"loading {engine}", total=None)

        def on_event(ev: BenchEvent) -> None:
            if ev.kind == "ready":
                progress.update(task, description=f"synthesizing ({ev.data['engine'].get('engine')}, "
                                f"{ev.data['sample_rate']} Hz)", total=ev.total, completed=0)
            elif ev.kind == "result":
                progress.update(task, completed=ev.done,
                                description=f"synthesizing {ev.data['id']} r{ev.data['repeat']}")

        try:
            with progress:
                result = run_bench(config, on_event)
        except (SentenceSetError, GoldError) as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        except BenchError as exc:
            console.print(f"[red]bench failed:[/red] {exc}")
            raise typer.Exit(3) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted; the TTS worker process group was killed[/yellow]")
            raise typer.Exit(130) from None
        finally:
            signal.signal(signal.SIGTERM, previous)

        json_path = json_out or run_dir / "tts_bench.json"
        write_result(result, json_path)
        md_path = run_dir / "tts_bench.md"
        md_path.write_text(render_markdown(result), encoding="utf-8")

        out = Console()
        s = result.summary
        table = Table(title=f"tts-bench {result.run_id}: {'PASS' if result.passed else 'FAIL'}")
        for col in ("gate", "value", "threshold", "verdict", "detail"):
            table.add_column(col)
        for g in result.gates:
            verdict = {"SKIP": "skipped", "PASS": "[green]PASS[/green]", "FAIL": "[red]FAIL[/red]"}.get(g.status, g.status)
            value = "–" if g.measured is None else f"{g.measured:g}"
            table.add_row(g.gate, value, f"{g.op} {g.threshold:g}" if g.threshold is not None else "–", verdict, g.message)
        out.print(table)
        out.print(f"TTFA P50 {s['ttfa_p50_ms']:.0f} ms  P95 {s['ttfa_p95_ms']:.0f} ms  |  "
                  f"RTF P50 {s['rtf_p50']:.3f}  P95 {s['rtf_p95']:.3f}  |  hash_unique max {s['hash_unique_max']} "
                  f"over {result.repeats} repeats  |  {s['calls']} calls")
        if result.gold_update is not None:
            diff = Table(title=f"gold regenerated in {result.gold_dir} (diff vs previous gold)")
            for col in ("id", "status", "SNR vs old (dB)", "duration change (ms)"):
                diff.add_column(col)
            for c in result.gold_update:
                diff.add_row(c.id, c.status, "–" if c.snr_db is None else f"{c.snr_db:.1f}",
                             "–" if c.duration_change_ms is None else f"{c.duration_change_ms:+.1f}")
            out.print(diff)
        out.print(f"JSON: {json_path}\nmarkdown: {md_path}\naudio: {run_dir / 'audio'}")
        if not result.passed:
            raise typer.Exit(1)


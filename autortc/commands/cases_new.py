"""``autortc cases new``: add a case (and its WAV) from a line of text or from a user's WAV."""

from __future__ import annotations

from pathlib import Path

import typer

DEFAULT_CASES = Path(__file__).resolve().parents[2] / "cases" / "all_cases.json"


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Case files: author new cases.", no_args_is_help=True)
    app.add_typer(sub, name="cases")

    @sub.command("new")
    def new(
        text: str = typer.Option(None, "--text", help="what the user says; spoken by the bundled TTS unless --wav is given"),
        wav: Path = typer.Option(None, "--wav", help="the user's own recording (any rate/channels; resampled to 16 kHz mono)"),
        case_id: str = typer.Option(None, "--id", help="case id (default: from the text or the WAV's name)"),
        cases: Path = typer.Option(DEFAULT_CASES, "--cases", help="case file to append to (created when missing)"),
        priority: str = typer.Option("P0", "--priority", help="P0, P1 or P2"),
        description: str = typer.Option(None, "--description"),
        keyword: list[str] = typer.Option([], "--keyword", "-k", help="word the agent's reply must contain (repeatable)"),
        suite: str = typer.Option("user", "--suite", help="per_case suite the case joins (created when missing)"),
        engine: str = typer.Option("auto", "--engine", help="auto (bundled piper, else espeak-ng), piper or espeak"),
        force: bool = typer.Option(False, "--force", help="replace a case/WAV with the same id"),
    ) -> None:
        """Make a case in one command: WAV, measured speech span, validated entry; prints how to run it."""
        from autortc.authoring import AuthoringError, add_case, load_user_wav, slug_id, speak
        from autortc.cases import CaseFileError

        if text is None and wav is None:
            raise typer.BadParameter("give --text, --wav, or both (--wav with --text: the text is the transcript)",
                                     param_hint="--text/--wav")
        if priority not in ("P0", "P1", "P2"):
            raise typer.BadParameter(f"{priority!r}: expected P0, P1 or P2", param_hint="--priority")
        if engine not in ("auto", "piper", "espeak"):
            raise typer.BadParameter(f"{engine!r}: expected auto, piper or espeak", param_hint="--engine")
        try:
            if wav is not None:
                pcm, used = load_user_wav(wav), "user-wav"
            else:
                pcm, used = speak(text, engine=engine)  # type: ignore[arg-type]
            cid = case_id or slug_id(text if text else wav.stem)
            made = add_case(cases, pcm=pcm, engine=used, case_id=cid, transcript=text, p_level=priority,
                            description=description, keywords=keyword, suite=suite, force=force)
        except (AuthoringError, CaseFileError) as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
        typer.echo(f"{'created' if made.created_file else 'updated'} {made.cases_path}: case {made.case_id!r} "
                   f"(suite {made.suite!r}, {priority})")
        typer.echo(f"  wav {made.wav_path}: {made.duration_ms} ms, speech {made.speech_start_ms}-{made.speech_end_ms} ms, "
                   f"voice: {made.engine}")
        typer.echo(f"run it (stack up first: autortc stack up):\n  {made.run_command()}")

"""``autortc stages RUN_DIR``: per-stage latency of the agent's turns, P50/P95, from trace.json files."""

from __future__ import annotations

import json
from pathlib import Path

import typer

# (label, from, to): stage names of the protocol's trace, plus the bots' own timestamps
SPANS = (
    ("user EoT -> agent's user_speech_end", "user_eot", "user_speech_end"),
    ("user EoT -> VAD end of speech", "user_eot", "vad_end_of_speech"),
    ("VAD end of speech -> STT final", "vad_end_of_speech", "stt_final"),
    ("STT final -> end of turn", "stt_final", "end_of_turn"),
    ("end of turn -> LLM first token", "end_of_turn", "llm_first_token"),
    ("LLM request -> first token (TTFT)", "llm_request", "llm_first_token"),
    ("TTS request -> first chunk (TTFA)", "tts_request", "tts_first_chunk"),
    ("TTS first chunk -> first frame published", "tts_first_chunk", "first_frame_published"),
    ("user EoT -> first frame published", "user_eot", "first_frame_published"),
    ("first frame published -> first audio at probe", "first_frame_published", "probe_first_audio"),
    ("user EoT -> first audio at probe", "user_eot", "probe_first_audio"),
)


def collect(run_dir: Path) -> list[dict[str, float]]:
    """Per single-segment turn, the stage times (s) merged from the agent's stages and the bots' timestamps.

    Traces are read through :mod:`autortc.artifacts`; a bad one raises ``TraceFileError`` naming it.
    """
    from autortc.artifacts import read_trace

    rows = []
    for tf in sorted(run_dir.glob("*/*/trace.json")):
        t = read_trace(tf)
        if len(t.user.segments) != 1:
            continue  # barge-in/backchannel turns: the agent's stages mix two user utterances
        stages: dict = dict(t.agent.stages) if t.agent is not None else {}
        if t.user.t_user_eot is not None:
            stages["user_eot"] = t.user.t_user_eot  # the user side's EoT (the agent's own estimate: user_speech_end)
        res = tf.parent / "result.json"
        if res.exists():
            lat = json.loads(res.read_text()).get("latency", {})
            if lat.get("first_audio_t") is not None:
                stages["probe_first_audio"] = lat["first_audio_t"]
        stages["_case"] = t.case_id
        rows.append(stages)
    return rows


def register(app: typer.Typer) -> None:
    @app.command("stages")
    def stages(run_dir: Path = typer.Argument(..., exists=True, file_okay=False), as_json: bool = typer.Option(False, "--json")) -> None:
        """Print P50/P95 (ms) of each stage of the agent's turns in a run."""
        import numpy as np

        from autortc.artifacts import TraceFileError

        try:
            rows = collect(run_dir)
        except TraceFileError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
        if not rows:
            typer.echo(f"{run_dir}: no */*/trace.json found", err=True)
            raise typer.Exit(2)
        out = {}
        for label, a, b in SPANS:
            vals = [1000 * (r[b] - r[a]) for r in rows if a in r and b in r]
            if vals:
                out[label] = {"n": len(vals), "p50_ms": float(np.percentile(vals, 50)), "p95_ms": float(np.percentile(vals, 95)),
                              "max_ms": float(np.max(vals))}
        if as_json:
            typer.echo(json.dumps(out, indent=2))
            return
        typer.echo(f"{run_dir.name}: {len(rows)} turns")
        typer.echo(f"{'stage':48s} {'n':>3s} {'P50 ms':>8s} {'P95 ms':>8s} {'max ms':>8s}")
        for label, v in out.items():
            typer.echo(f"{label:48s} {v['n']:3d} {v['p50_ms']:8.1f} {v['p95_ms']:8.1f} {v['max_ms']:8.1f}")

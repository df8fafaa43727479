"""``autortc analyze`` and ``autortc compare``: the audio detectors on any WAV files.

    autortc analyze AUDIO.wav [--expected-silence 1.2-1.8,3.0-3.25] [--json]
    autortc compare REF.wav DEGRADED.wav [--expected-silence ...] [--json] [--mos]

Any sample rate, mono or stereo (channels are averaged).  A file that is missing,
empty, not audio or unreadable exits with status 2 and a message naming it.
``--expected-silence`` spans are seconds from the start of the file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

__all__ = ["register", "analyze_file", "compare_files", "parse_spans"]


def parse_spans(text: str | None) -> list[tuple[float, float]]:
    """``"1.2-1.8,3.0-3.25"`` (seconds) -> ``[(1200.0, 1800.0), (3000.0, 3250.0)]`` ms.

    Raises ``ValueError`` naming the bad item.
    """
    out: list[tuple[float, float]] = []
    if not text:
        return out
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            a, b = (float(v) for v in item.split("-", 1))
        except ValueError as exc:
            raise ValueError(f"--expected-silence: bad span {item!r}, expected START-END in seconds like 1.2-1.8") from exc
        if b <= a or a < 0:
            raise ValueError(f"--expected-silence: bad span {item!r}, END must be greater than START >= 0")
        out.append((a * 1000.0, b * 1000.0))
    return out


def _r(v: float | None, nd: int = 2) -> float | None:
    return None if v is None else round(float(v), nd)


def _intervals(items: list[Any]) -> list[dict[str, float | None]]:
    return [{"start_ms": _r(i.start_ms), "end_ms": _r(i.end_ms)} for i in items]


def _gaps(C: Any) -> dict[str, Any]:
    """The continuity keys analyze and compare share (rounded for reading)."""
    return {"max_gap_ms": _r(C.max_gap_ms), "gaps": _intervals(C.gaps), "excused_gaps": _intervals(C.excused_gaps),
            "audible_dropouts": C.audible_dropouts, "dropouts": _intervals(C.dropouts)}


def analyze_file(path: Path, *, expected_silence_ms: list[tuple[float, float]] = ()) -> dict[str, Any]:
    """Single-file metrics (the ``analyze --json`` object), from the same :func:`autortc.metrics.turn.compute`
    a run uses, with the file as the reply segment.  Raises ``AudioFileError``."""
    from autortc.artifacts import TurnAudio
    from autortc.audio import load_audio
    from autortc.metrics.turn import compute

    a = load_audio(path)
    res = compute(None, TurnAudio(reply=a), reply_expected_silence_ms=expected_silence_ms)
    C, F = res.continuity, res.fingerprints
    return {
        "file": str(path),
        "sample_rate": a.sr,
        "duration_ms": _r(a.duration_s * 1000.0),
        "rms": _r(res.level.reply_rms, 6),
        "clipping_ratio": _r(res.level.clipping_ratio, 6),
        "silence_threshold": _r(C.silence_threshold, 6),
        **_gaps(C),
        "peak_spike_count": F.peak_spike_count,
        "spikes": _intervals(F.spikes),
        "peak_derivative_max": _r(F.peak_derivative_max, 6),
        "hf_energy_ratio": _r(F.hf_energy_ratio_post, 6),
        "repeats": _intervals(F.repeats),
        "expected_silence_coverage": _r(C.expected_silence_coverage, 4),
    }


# result.json fields that depend only on (pre_rtc.wav, post_rtc_reply.wav): compare emits exactly these
TURN_FIELDS = {
    "level": ("reply_rms", "pre_rms", "clipping_ratio", "pre_clipping_ratio"),
    "fidelity": ("lag_ms", "mel_distance", "align_corr"),
    "continuity": ("max_gap_ms", "gaps", "excused_gaps", "audible_dropouts", "dropouts", "dropout_method",
                   "silence_threshold", "expected_silence_coverage"),
    "fingerprints": ("peak_spike_count", "spikes", "peak_derivative_max", "drift_ratio", "hf_energy_ratio_pre",
                     "hf_energy_ratio_post", "hf_ratio_drop", "repeat_count", "repeats"),
}


def compare_files(ref_path: Path, deg_path: Path, *, mos: bool = False,
                  expected_silence_ms: list[tuple[float, float]] = ()) -> dict[str, Any]:
    """Reference vs degraded metrics (the ``compare --json`` object).  Raises ``AudioFileError``.

    The same :func:`autortc.metrics.turn.compute` as a run, with REF as the agent's pre-RTC copy
    and DEGRADED as the reply: ``compare pre_rtc.wav post_rtc_reply.wav`` gives the turn's
    ``result.json`` values (``turn`` holds them under result.json's names, unrounded; the flat
    keys are the same values rounded for reading).
    """
    from autortc.artifacts import TurnAudio
    from autortc.audio import load_audio
    from autortc.metrics.turn import compute
    from autortc.results import to_dict

    ref = load_audio(ref_path)
    deg = load_audio(deg_path)
    res = compute(None, TurnAudio(pre=ref, reply=deg), perceptual=mos, reply_expected_silence_ms=expected_silence_ms)
    d = to_dict(res)
    turn = {sect: {k: d[sect][k] for k in keys} for sect, keys in TURN_FIELDS.items()}
    turn["capture_status"] = d["capture_status"]
    Fi, C, F = res.fidelity, res.continuity, res.fingerprints
    out = {
        "reference": str(ref_path),
        "degraded": str(deg_path),
        "sample_rate": deg.sr,
        "capture_status": res.capture_status,
        "lag_ms": _r(Fi.lag_ms),
        "align_corr": _r(Fi.align_corr, 4),
        "mel_distance": _r(Fi.mel_distance, 4),
        "drift_ratio": _r(F.drift_ratio, 5),
        "hf_energy_ratio_ref": _r(F.hf_energy_ratio_pre, 6),
        "hf_energy_ratio_degraded": _r(F.hf_energy_ratio_post, 6),
        "hf_ratio_drop": _r(F.hf_ratio_drop, 4),
        **_gaps(C),
        "peak_spike_count": F.peak_spike_count,
        "repeats": _intervals(F.repeats),
        "turn": turn,
    }
    if mos:
        out["mos_lqo"] = _r(res.perceptual.mos_lqo, 3)
        if not res.perceptual.scored:
            out["mos_error"] = res.perceptual.reason
    return out


def _emit(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(show_header=True, header_style="bold")
    t.add_column("metric")
    t.add_column("value")
    for k, v in data.items():
        if isinstance(v, dict):
            continue  # the nested result.json view (--json only)
        if isinstance(v, list):
            v = ", ".join(f"{x.get('start_ms')}-{x.get('end_ms')}" for x in v) or "-"
        t.add_row(k, str(v))
    Console().print(t)


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code=2)


def register(app: typer.Typer) -> None:
    """Add ``analyze`` and ``compare`` to the ``autortc`` app."""

    @app.command("analyze")
    def analyze(
        audio: Path = typer.Argument(..., help="WAV (any rate, mono/stereo) to analyse."),
        expected_silence: Optional[str] = typer.Option(
            None, "--expected-silence", help="Intended pauses, seconds: 1.2-1.8,3.0-3.25 (not counted as gaps)."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        """Gaps, dropouts, clipping, spikes, 4-8 kHz share and repeats of one recording."""
        from autortc.audio import AudioFileError

        try:
            spans = parse_spans(expected_silence)
        except ValueError as exc:
            _fail(str(exc))
        try:
            data = analyze_file(audio, expected_silence_ms=spans)
        except AudioFileError as exc:
            _fail(str(exc))
        _emit(data, as_json)

    @app.command("compare")
    def compare(
        ref: Path = typer.Argument(..., help="Reference WAV (what was sent, e.g. pre_rtc.wav)."),
        degraded: Path = typer.Argument(..., help="Degraded WAV (what was received, e.g. post_rtc_reply.wav)."),
        expected_silence: Optional[str] = typer.Option(
            None, "--expected-silence", help="Intended pauses in DEGRADED, seconds: 1.2-1.8,... (not counted as gaps)."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
        mos: bool = typer.Option(False, "--mos", help="Also compute ViSQOL MOS-LQO (slow: ~1 s CPU per s of audio)."),
    ) -> None:
        """Alignment lag, mel distance, drift, 4-8 kHz drop, gaps and dropouts of DEGRADED against REF."""
        from autortc.audio import AudioFileError

        try:
            spans = parse_spans(expected_silence)
        except ValueError as exc:
            _fail(str(exc))
        try:
            data = compare_files(ref, degraded, mos=mos, expected_silence_ms=spans)
        except AudioFileError as exc:
            _fail(str(exc))
        _emit(data, as_json)

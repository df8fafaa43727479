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


def analyze_file(path: Path, *, expected_silence_ms: list[tuple[float, float]] = ()) -> dict[str, Any]:
    """Single-file metrics (the ``analyze --json`` object).  Raises ``AudioFileError``."""
    from autortc.audio import load_audio
    from autortc.metrics import continuity, fingerprints, level

    a = load_audio(path)
    rep = continuity.detect_gaps(a.samples, a.sr, expected_silence_ms=expected_silence_ms)
    drops = continuity.audible_dropouts(a.samples, a.sr, gaps=rep)
    spikes = fingerprints.detect_spikes(a.samples, a.sr)
    reps = fingerprints.detect_repeats(a.samples, a.sr)
    return {
        "file": str(path),
        "sample_rate": a.sr,
        "duration_ms": _r(a.duration_s * 1000.0),
        "rms": _r(level.rms(a.samples), 6),
        "clipping_ratio": _r(level.clipping_ratio(a.samples), 6),
        "silence_threshold": _r(rep.threshold, 6),
        "max_gap_ms": _r(rep.max_gap_ms),
        "gaps": [{"start_ms": _r(g.start_ms), "end_ms": _r(g.end_ms)} for g in rep.gaps],
        "excused_gaps": [{"start_ms": _r(g.start_ms), "end_ms": _r(g.end_ms)} for g in rep.excused],
        "audible_dropouts": len(drops),
        "dropouts": [{"start_ms": _r(g.start_ms), "end_ms": _r(g.end_ms)} for g in drops],
        "peak_spike_count": len(spikes),
        "spikes": [{"start_ms": _r(s.start_ms), "end_ms": _r(s.end_ms), "peak": _r(s.peak, 4)} for s in spikes],
        "peak_derivative_max": _r(fingerprints.peak_derivative_max(a.samples), 6),
        "hf_energy_ratio": _r(fingerprints.hf_energy_ratio(a.samples, a.sr), 6),
        "repeats": [{"start_ms": _r(r.start_ms), "end_ms": _r(r.end_ms), "period_ms": _r(r.period_ms)} for r in reps],
        "expected_silence_coverage": _r(continuity.expected_silence_coverage(rep, a.sr, expected_silence_ms), 4),
    }


def compare_files(ref_path: Path, deg_path: Path, *, mos: bool = False,
                  expected_silence_ms: list[tuple[float, float]] = ()) -> dict[str, Any]:
    """Reference vs degraded metrics (the ``compare --json`` object).  Raises ``AudioFileError``."""
    from autortc.audio import load_audio, resample
    from autortc.metrics import continuity, fidelity, fingerprints

    ref = load_audio(ref_path)
    deg = load_audio(deg_path)
    sr = deg.sr
    r = resample(ref.samples, ref.sr, sr)
    al = fidelity.align(r, deg.samples, sr)
    rep = continuity.detect_gaps(deg.samples, sr, expected_silence_ms=expected_silence_ms)
    drops = continuity.audible_dropouts(deg.samples, sr, gaps=rep, reference=r, reference_lag=al.lag_samples)
    out = {
        "reference": str(ref_path),
        "degraded": str(deg_path),
        "sample_rate": sr,
        "lag_ms": _r(al.lag_ms),
        "align_corr": _r(al.peak_corr, 4),
        "mel_distance": _r(fidelity.mel_distance(r, deg.samples, sr, lag_samples=al.lag_samples), 4),
        "drift_ratio": _r(fingerprints.drift_ratio(r, deg.samples, sr), 5),
        "hf_energy_ratio_ref": _r(fingerprints.hf_energy_ratio(ref.samples, ref.sr), 6),
        "hf_energy_ratio_degraded": _r(fingerprints.hf_energy_ratio(deg.samples, sr), 6),
        "hf_ratio_drop": _r(fingerprints.hf_ratio_drop(ref.samples, deg.samples, ref.sr, sr), 4),
        "max_gap_ms": _r(rep.max_gap_ms),
        "gaps": [{"start_ms": _r(g.start_ms), "end_ms": _r(g.end_ms)} for g in rep.gaps],
        "audible_dropouts": len(drops),
        "dropouts": [{"start_ms": _r(g.start_ms), "end_ms": _r(g.end_ms)} for g in drops],
        "peak_spike_count": len(fingerprints.detect_spikes(deg.samples, sr)),
        "repeats": [{"start_ms": _r(x.start_ms), "end_ms": _r(x.end_ms), "period_ms": _r(x.period_ms)}
                    for x in fingerprints.detect_repeats(deg.samples, sr)],
    }
    if mos:
        from autortc.metrics.perceptual import visqol_mos

        a, b = fidelity._overlap(r, deg.samples, al.lag_samples)
        out["mos_lqo"] = _r(visqol_mos(a, b, sr), 3)
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

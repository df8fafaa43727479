"""Markdown section of the TTS bench for ``report.md`` (and the bench's own ``tts_bench.md``)."""

from __future__ import annotations

import math
from typing import Any

from autortc.tts_bench.bench import BenchResult
from autortc.tts_bench.metrics import percentile

__all__ = ["render_markdown"]


def _f(value: Any, fmt: str = ".1f", none: str = "–") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return none
    if isinstance(value, (list, tuple)):
        return " – ".join(_f(v, fmt) for v in value)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return format(value, fmt) if isinstance(value, float) else str(value)
    return str(value)


def _verdict(status: str) -> str:
    return {"SKIP": "skipped", "FAIL": "**FAIL**"}.get(status, status)


def render_markdown(result: BenchResult | dict[str, Any], *, heading_level: int = 2) -> str:
    """The bench as a markdown section: verdict, gates, headline figures, per-sentence table,
    and the gold diff when ``--update-gold`` ran.  Pure: returns text, writes nothing.

    ``result`` may be the :class:`BenchResult` or its JSON (``tts_bench.json`` loaded).
    """
    if isinstance(result, dict):
        result = BenchResult.from_dict(result)
    h = "#" * heading_level
    s = result.summary
    eng = result.engine
    opts = eng.get("options", {})
    lines = [
        f"{h} TTS regression (tts-bench): {'PASS' if result.passed else 'FAIL'}",
        "",
        f"Engine `{eng.get('engine')}` ({eng.get('voice_model', opts.get('voice'))}, {result.sample_rate} Hz, "
        f"length_scale {opts.get('length_scale')}, seed {opts.get('seed', '–')}, chunk {opts.get('chunk_ms')} ms); "
        f"{len(result.sentences)} sentences × {result.repeats} repeats = {s['calls']} calls, "
        f"{s['audio_s_total']:.1f} s of audio; model load {result.load_s:.2f} s, warm-up {result.warmup_ms:.0f} ms; "
        f"host {result.host.get('cpus')} CPUs, load average {_f(result.host.get('loadavg_start', [None])[0], '.2f')} → "
        f"{_f(result.host.get('loadavg_end', [None])[0], '.2f')} (timing figures depend on it).",
        "",
        f"- TTFA P50 **{_f(s['ttfa_p50_ms'], '.0f')} ms**, P95 **{_f(s['ttfa_p95_ms'], '.0f')} ms**, "
        f"max {_f(s['ttfa_max_ms'], '.0f')} ms",
        f"- RTF P50 {_f(s['rtf_p50'], '.3f')}, P95 {_f(s['rtf_p95'], '.3f')}, mean {_f(s['rtf_mean'], '.3f')}",
        f"- Determinism: hash_unique max {s['hash_unique_max']} over {result.repeats} repeats",
        f"- Fidelity vs gold: SNR min {_f(s['snr_min_db'])} dB, duration diff P95 {_f(s['duration_diff_p95_ms'])} ms",
        "",
        f"{h}# Gates",
        "",
        "| gate | value | threshold | verdict | detail |",
        "|---|---|---|---|---|",
    ]
    for g in result.gates:
        lines.append(f"| {g.gate} | {_f(g.measured)} | {g.op} {_f(g.threshold, 'g')} | {_verdict(g.status)} | {g.message} |")
    lines += [
        "",
        f"{h}# Sentences",
        "",
        "| id | category | segs | dur s | TTFA P50 ms | RTF | hash_unique | SNR dB | Δdur ms | ms/char | repeat (sim) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result.sentences:
        snr = _f(r.snr_db) if r.gold_status == "ok" else r.gold_status
        lines.append(
            f"| {r.id} | {r.category} | {r.segments} | {r.duration_s:.2f} | {_f(percentile(r.ttfa_ms, 50), '.0f')} | "
            f"{_f(percentile(r.rtf, 50), '.3f')} | {r.hash_unique} | {snr} | {_f(r.duration_diff_ms)} | "
            f"{_f(r.ms_per_char, '.0f')} | {r.repeat} ({r.repeat_max_similarity:.2f}) |")
    if result.gold_update is not None:
        lines += [
            "",
            f"{h}# Gold regenerated (diff vs previous gold)",
            "",
            "| id | status | SNR vs old dB | duration change ms |",
            "|---|---|---|---|",
        ]
        for c in result.gold_update:
            lines.append(f"| {c.id} | {c.status} | {_f(c.snr_db)} | {_f(c.duration_change_ms, '+.1f')} |")
    return "\n".join(lines) + "\n"

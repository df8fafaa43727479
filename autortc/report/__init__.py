"""Run report: ``report.md`` and self-contained ``report.html`` (both from jinja2 templates
over one view) and ``junit.xml``.

The report renders; it judges nothing.  Verdicts and the gates that applied come from the
gates stage through :class:`autortc.results.RunSummary` (``gates``, ``gate_specs``,
``case_gates``), so a ``--gates`` file's thresholds are the ones shown::

    paths = render(summary, cases, run_dir)   # the runner, with what it holds in memory
    paths = write_report(run_dir)             # from summary.json and <case>/result.json on disk

Per turn (HTML only, :mod:`autortc.report.listen`): players for user / pre-RTC / post-RTC audio
(Ogg/Opus, 16 kHz mono, embedded), a timeline (SVG) of user speech, EoT, reply events, first
audio, barge-in onsets, gaps and spikes, the turn's gate values and agent-vs-path attribution.

Figures: the latency CDF and, for each failed turn, waveform + spectrogram of pre-RTC vs
post-RTC audio read from the turn folder; "Suggested fixes" shows the ``fix`` text of
each failed gate.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path

from autortc.report.figures import cdf_png, pre_post_png
from autortc.report.junit import write_junit
from autortc.report.view import build_view
from autortc.results import CaseResult, ResultFileError, RunSummary, read_json

log = logging.getLogger("autortc.report")

__all__ = ["render", "write_report", "load_run"]

ASSETS = "report_assets"
TEMPLATES = Path(__file__).with_name("templates")


def load_run(run_dir: Path) -> tuple[RunSummary, list[CaseResult], list[str]]:
    """``summary.json`` and every case's ``result.json``; a bad case file becomes a FAIL case and a note.

    Raises:
        autortc.results.ResultFileError: ``summary.json`` is missing or invalid.
    """
    run_dir = Path(run_dir)
    summary = read_json(run_dir / "summary.json", RunSummary)
    notes: list[str] = []
    cases: list[CaseResult] = []
    for e in summary.cases:
        p = run_dir / (e.result or f"{e.case_id}/result.json")
        try:
            cases.append(read_json(p, CaseResult))
        except ResultFileError as exc:
            notes.append(f"case {e.case_id}: {exc}")
            cases.append(CaseResult(case_id=e.case_id, p_level=e.p_level, verdict="FAIL", error=str(exc)))
    return summary, cases, notes


def render(summary: RunSummary, cases: list[CaseResult], run_dir: Path, *, notes: list[str] | None = None) -> dict:
    """Write ``report.md``, ``report.html``, ``junit.xml`` and ``report_assets/`` into ``run_dir``.

    Args:
        summary: the run as the gates stage judged it (:func:`autortc.gates.judge_run`).
        cases: the case results, in summary order.
        run_dir: ``output/runs/<run_id>/``; failed turns' WAVs are read from its turn folders.
        notes: extra lines for the Notes section.

    Returns:
        ``{"report_md": Path, "report_html": Path, "junit": Path, "verdict": str,
        "failed_cases": [case_id, ...]}``.
    """
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    run_dir = Path(run_dir)
    view = build_view(summary, cases, notes)
    assets = run_dir / ASSETS
    assets.mkdir(parents=True, exist_ok=True)
    cdf = cdf_png(view.eot_values, view.eot_threshold)
    if cdf:
        (assets / "latency_cdf.png").write_bytes(cdf)
    failed = []
    for c, t in view.failed_turns:
        td = run_dir / c.case_id / t.trace_id
        png, note = pre_post_png(td, t) if td.is_dir() else (None, f"turn folder {td} not found")
        fname = f"{c.case_id}__{t.trace_id}.png"
        if png:
            (assets / fname).write_bytes(png)
        failed.append(dict(case_id=c.case_id, trace_id=t.trace_id, png=base64.b64encode(png).decode() if png else None,
                           file=fname if png else None, note=note,
                           gates=", ".join(v.gate for v in t.verdicts if v.status == "FAIL") or "error"))

    from autortc.report.listen import listen_views

    try:
        turns = listen_views(run_dir, cases)
    except Exception as exc:  # the listen section must not cost the report
        log.exception("listen section failed")
        turns, view.notes = [], view.notes + [f"listen section: {type(exc).__name__}: {exc}"]
    ctx = dict(v=view, failed=failed, assets=ASSETS, turns=turns)
    md_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=False, undefined=StrictUndefined,
                         keep_trailing_newline=True)
    md_path = run_dir / "report.md"
    md_path.write_text(md_env.get_template("report.md.j2").render(**ctx, cdf=bool(cdf)), encoding="utf-8")
    html_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]),
                           undefined=StrictUndefined)
    html_path = run_dir / "report.html"
    html_path.write_text(html_env.get_template("report.html.j2").render(
        **ctx, cdf=base64.b64encode(cdf).decode() if cdf else None), encoding="utf-8")
    junit_path = write_junit(run_dir / "junit.xml", summary, cases)
    log.info("report run=%s verdict=%s cases=%d failed_turns=%d", summary.run_id, summary.verdict, len(cases),
             len(failed))
    return {"report_md": md_path, "report_html": html_path, "junit": junit_path, "verdict": summary.verdict,
            "failed_cases": [e.case_id for e in summary.cases if e.verdict == "FAIL"]}


def write_report(run_dir: Path) -> dict:
    """:func:`render` from the files of a finished run (``autortc report``, re-rendering).

    Raises:
        autortc.results.ResultFileError: ``summary.json`` is missing or invalid (a bad
        case ``result.json`` is reported inside the report instead).
    """
    summary, cases, notes = load_run(run_dir)
    return render(summary, cases, run_dir, notes=notes)

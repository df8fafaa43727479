"""Run report: ``report.md``, self-contained ``report.html`` and ``junit.xml``.

Entry point for the runner::

    paths = write_report(run_dir)   # after summary.json and <case>/result.json exist

It reads ``summary.json`` (:class:`autortc.results.RunSummary`) and each case's
``result.json`` (:class:`autortc.results.CaseResult`), draws the latency CDF and, for
each failed turn, waveform + spectrogram of pre-RTC vs post-RTC audio (matplotlib),
and maps every failed gate to likely causes ("Suggested fixes", from the ``fix``
text of the gate in ``autortc/gates/defaults.toml``).
"""

from __future__ import annotations

import base64
import io
import logging
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

from autortc.results import CaseResult, ResultFileError, RunSummary, TurnResult, read_json

log = logging.getLogger("autortc.report")

__all__ = ["write_report"]

ASSETS = "report_assets"


def _fmt(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v == int(v) and abs(v) < 1e9:
            return str(int(v))
        if abs(v) < 0.01:
            return f"{v:.2e}"
        return f"{v:.{nd}f}"
    return str(v)


def _load_cases(run_dir: Path, summary: RunSummary, notes: list[str]) -> list[CaseResult]:
    cases: list[CaseResult] = []
    for e in summary.cases:
        p = run_dir / (e.result or f"{e.case_id}/result.json")
        try:
            cases.append(read_json(p, CaseResult))
        except ResultFileError as exc:
            notes.append(f"case {e.case_id}: {exc}")
            cases.append(CaseResult(case_id=e.case_id, p_level=e.p_level, verdict="FAIL", error=str(exc)))
    return cases


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _cdf_png(values: list[float], gate_ms: float | None) -> bytes | None:
    if not values:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    v = np.sort(np.asarray(values, dtype=float))
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    ax.step(v, np.arange(1, v.size + 1) / v.size, where="post")
    if gate_ms is not None:
        ax.axvline(gate_ms, color="r", ls="--", label=f"gate {gate_ms:.0f} ms")
        ax.legend(loc="lower right")
    ax.set_xlabel("EoT -> first audio (ms)")
    ax.set_ylabel("fraction of turns")
    ax.grid(alpha=0.3)
    return _png(fig)


def _pre_post_png(turn_dir: Path, turn: TurnResult) -> tuple[bytes | None, str]:
    from autortc.audio import AudioFileError, load_audio

    pics = []
    for name, label in (("pre_rtc.wav", "pre-RTC (agent)"), ("post_rtc_reply.wav", "post-RTC (probe)")):
        p = turn_dir / name
        if not p.exists() and name == "post_rtc_reply.wav":
            p = turn_dir / "post_rtc_full.wav"
        if not p.exists():
            pics.append((label, None))
            continue
        try:
            a = load_audio(p, sr=16000)
            pics.append((label, a.samples[: 16000 * 20]))
        except AudioFileError as exc:
            pics.append((f"{label}: {exc}", None))
    if all(x is None for _, x in pics):
        return None, f"no audio in {turn_dir}"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(2, 2, figsize=(11, 4.5), squeeze=False)
    for col, (label, x) in enumerate(pics):
        ax_w, ax_s = axes[0][col], axes[1][col]
        ax_w.set_title(label, fontsize=9)
        if x is None:
            ax_w.text(0.5, 0.5, "missing", ha="center")
            ax_s.axis("off")
            continue
        t = np.arange(x.shape[0]) / 16000
        ax_w.plot(t, x, lw=0.4)
        ax_w.set_ylim(-1, 1)
        ax_w.set_xlim(0, max(t[-1], 0.01) if t.size else 1)
        for iv in (turn.continuity.gaps if col == 1 else []):
            ax_w.axvspan(iv.start_ms / 1000, iv.end_ms / 1000, color="r", alpha=0.25)
        if x.size >= 512:
            with np.errstate(divide="ignore"):
                ax_s.specgram(x + 1e-7, NFFT=512, Fs=16000, noverlap=384, cmap="magma", vmin=-130, vmax=-30)
        ax_s.set_xlabel("s")
        ax_s.set_ylabel("Hz")
    fig.tight_layout()
    return _png(fig), ""


def write_report(run_dir: Path) -> dict:
    """Write ``report.md``, ``report.html`` and ``junit.xml`` into ``run_dir``.

    Args:
        run_dir: ``output/runs/<run_id>/`` holding ``summary.json`` and the case
            folders listed in it.

    Returns:
        ``{"report_md": Path, "report_html": Path, "junit": Path, "verdict": str,
        "failed_cases": [case_id, ...]}``.

    Raises:
        autortc.results.ResultFileError: ``summary.json`` is missing or invalid (a
        bad case ``result.json`` is reported inside the report instead).
    """
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from autortc.gates import GateSet, evaluate_run, load_gates

    run_dir = Path(run_dir)
    summary = read_json(run_dir / "summary.json", RunSummary)
    notes: list[str] = list(summary.notes)
    cases = _load_cases(run_dir, summary, notes)
    gateset: GateSet = load_gates()
    run_gates = summary.gates or evaluate_run(cases, gateset)
    specs = {g.name: g for g in gateset}
    verdict = summary.verdict
    counts = Counter(e.verdict for e in summary.cases)

    gates_rows = []
    for g in run_gates:
        sp = specs.get(g.gate)
        where = f"{g.case_id} / {g.trace_id}" if g.case_id else "-"
        gates_rows.append(dict(title=(sp.title if sp and sp.title else g.gate), status=g.status,
                               measured=_fmt(g.measured, 4 if (g.measured or 0) < 1 else 1),
                               op=g.op, threshold=_fmt(g.threshold, 4 if (g.threshold or 0) < 1 else 1),
                               warn=_fmt(g.warn_threshold) if g.warn_threshold is not None else "",
                               n=g.n, where=where, message=g.message))

    header = ["Case", "P", "Verdict", "Turn", "Capture", "EoT→audio ms", "max gap ms", "dropouts",
              "clipping", "mel dB", "MOS", "drift", "HF drop", "failed gates"]
    rows: list[list[str]] = []
    eot_vals: list[float] = []
    failed_turns: list[tuple[CaseResult, TurnResult]] = []
    fixes: dict[str, dict] = {}
    for c in cases:
        if not c.turns:
            rows.append([c.case_id, c.p_level, c.verdict if not c.error else "FAIL", "-", "-", "-", "-", "-", "-",
                         "-", "-", "-", "-", c.error or "no turns"])
        for t in c.turns:
            bad = [v for v in t.verdicts if v.status == "FAIL"]
            if t.latency.eot_to_first_audio_ms is not None:
                eot_vals.append(t.latency.eot_to_first_audio_ms)
            rows.append([c.case_id, c.p_level, t.verdict, str(t.turn_index), t.capture_status,
                         _fmt(t.latency.eot_to_first_audio_ms), _fmt(t.continuity.max_gap_ms),
                         _fmt(t.continuity.audible_dropouts), _fmt(t.level.clipping_ratio, 4),
                         _fmt(t.fidelity.mel_distance, 2), _fmt(t.perceptual.mos_lqo, 2),
                         _fmt(t.fingerprints.drift_ratio, 3), _fmt(t.fingerprints.hf_ratio_drop, 3),
                         ", ".join(f"{v.gate}={_fmt(v.measured, 3)}" for v in bad) or "-"])
            if t.verdict == "FAIL":
                failed_turns.append((c, t))
            for v in bad:
                sp = specs.get(v.gate)
                f = fixes.setdefault(v.gate, dict(title=sp.title if sp else v.gate, fix=sp.fix if sp else "", where=[]))
                f["where"].append(f"{c.case_id}/{t.trace_id}")
    for g in run_gates:
        if g.status == "FAIL":
            sp = specs.get(g.gate)
            f = fixes.setdefault(g.gate, dict(title=sp.title if sp else g.gate, fix=sp.fix if sp else "", where=[]))
            f["where"].insert(0, f"run {g.message}")
    fix_list = [dict(title=f["title"], fix=f["fix"] or "see gate source",
                     where=", ".join(f["where"][:6]) + (" ..." if len(f["where"]) > 6 else "")) for f in fixes.values()]

    assets = run_dir / ASSETS
    assets.mkdir(exist_ok=True)
    eot_gate = specs["eot_to_first_audio"].fail if "eot_to_first_audio" in specs else None
    cdf = _cdf_png(eot_vals, eot_gate)
    if cdf:
        (assets / "latency_cdf.png").write_bytes(cdf)
    failed = []
    for c, t in failed_turns:
        td = run_dir / c.case_id / t.trace_id
        png, note = _pre_post_png(td, t) if td.is_dir() else (None, f"turn folder {td} not found")
        fname = f"{c.case_id}__{t.trace_id}.png"
        if png:
            (assets / fname).write_bytes(png)
        failed.append(dict(case_id=c.case_id, trace_id=t.trace_id, png=base64.b64encode(png).decode() if png else None,
                           file=fname if png else None, note=note,
                           gates=", ".join(v.gate for v in t.verdicts if v.status == "FAIL") or "error"))

    # markdown
    md = [f"# AutoRTC report: `{summary.run_id}` — **{verdict}**", "",
          f"Suite: {summary.suite or '-'} · cases: {len(summary.cases)} "
          f"({', '.join(f'{k} {v}' for k, v in counts.items())})", "", "## Gates", "",
          "| Gate | Verdict | Measured | Threshold | n | Worst case / turn |", "|---|---|---|---|---|---|"]
    for g in gates_rows:
        warn = f" (warn {g['warn']})" if g["warn"] else ""
        md.append(f"| {g['title']} | {g['status']} | {g['measured']} | {g['op']} {g['threshold']}{warn} | {g['n']} | {g['where']} |")
    warn_rows = [g for g in gates_rows if g["status"] == "WARN"]
    if warn_rows:
        md += ["", "### WARN gates", ""] + [f"- {g['title']}: {g['measured']} (limit {g['op']} {g['warn'] or g['threshold']})"
                                              for g in warn_rows]
    md += ["", "## Cases", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    if cdf:
        md += ["", "## EoT → first audio, CDF across turns", "", f"![latency CDF]({ASSETS}/latency_cdf.png)"]
    if fix_list:
        md += ["", "## Suggested fixes", ""] + [f"- **{f['title']}** ({f['where']}): {f['fix']}" for f in fix_list]
    if failed:
        md += ["", "## Failed turns: pre-RTC vs post-RTC", ""]
        for f in failed:
            md.append(f"### {f['case_id']} / {f['trace_id']}: {f['gates']}")
            md.append(f"![pre vs post]({ASSETS}/{f['file']})" if f["file"] else f["note"])
            md.append("")
    details = _details_md(summary, cases)
    md += details
    if notes:
        md += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    md_path = run_dir / "report.md"
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")

    env = Environment(loader=FileSystemLoader(str(Path(__file__).with_name("templates"))),
                      autoescape=select_autoescape(["html", "j2"]))
    html = env.get_template("report.html.j2").render(
        s=summary, counts=dict(counts), gates=gates_rows, case_header=header, case_rows=rows,
        cdf=base64.b64encode(cdf).decode() if cdf else None, fixes=fix_list, failed=failed, notes=notes,
        details_md="\n".join(details))
    html_path = run_dir / "report.html"
    html_path.write_text(html, encoding="utf-8")

    junit_path = _write_junit(run_dir / "junit.xml", summary, cases, run_gates)
    log.info("report run=%s verdict=%s cases=%d failed_turns=%d", summary.run_id, verdict, len(cases), len(failed))
    return {"report_md": md_path, "report_html": html_path, "junit": junit_path, "verdict": verdict,
            "failed_cases": [e.case_id for e in summary.cases if e.verdict == "FAIL"]}


def _details_md(summary: RunSummary, cases: list[CaseResult]) -> list[str]:
    """Turn-taking, USER_KPI, reported-vs-heard, retries and network sections (markdown lines)."""
    out: list[str] = []
    tt = [(c, t) for c in cases for t in c.turns
          if t.turntaking.stop_time_ms is not None or t.turntaking.false_yields is not None]
    if tt:
        out += ["", "## Turn-taking", "", "| Case / turn | stop time ms (barge-in) | false yields (backchannel) | talk-over ms |",
                "|---|---|---|---|"]
        out += [f"| {c.case_id} / {t.trace_id} | {_fmt(t.turntaking.stop_time_ms)} | {_fmt(t.turntaking.false_yields)} | "
                f"{_fmt(t.turntaking.talk_over_ms)} |" for c, t in tt]
    rv = [(c, t) for c in cases for t in c.turns if t.latency.reported_vs_heard_ms is not None]
    if rv:
        out += ["", "## What the agent reports vs what the user hears", "",
                "Agent-reported = LiveKit Agents' end-of-utterance delay + TTFT + TTFB (else its stages); heard = "
                "user EoT → first audible sample at the probe.", "",
                "| Case / turn | agent-reported ms | heard ms | difference ms | USER_KPI ms (browser) |", "|---|---|---|---|---|"]
        out += [f"| {c.case_id} / {t.trace_id} | {_fmt(t.latency.agent_reported_ms)} | {_fmt(t.latency.eot_to_first_audio_ms)} | "
                f"{_fmt(t.latency.reported_vs_heard_ms)} | {_fmt(t.latency.user_kpi_ms)} |" for c, t in rv]
    ex = summary.extra or {}
    if ex.get("retry_reasons") or ex.get("harness_errors") or ex.get("cut"):
        out += ["", "## Retries and harness problems", "", f"Retries: {ex.get('retries', 0)} (rate {ex.get('retry_rate', 0)})", ""]
        for cid, reasons in (ex.get("retry_reasons") or {}).items():
            out += [f"- {cid}: {r}" for r in reasons]
        out += [f"- HARNESS {e}" for e in ex.get("harness_errors") or []]
        if ex.get("cut"):
            out += [f"- cut by Ctrl-C: {', '.join(ex['cut'])}"]
    net = ex.get("network")
    if net:
        out += ["", f"## Network profile `{net.get('profile')}` — {'applied' if net.get('applied') else 'NOT verified as applied'}", ""]
        conf = net.get("configured") or {}
        out += ["| direction | configured delay / jitter / loss | measured before (delay ms, std ms, loss %) | measured after |", "|---|---|---|---|"]
        for d in ("uplink", "downlink"):
            c = conf.get(d) or {}
            b = (((net.get("measured_before") or {}).get(d) or {}).get("measured") or {})
            a = (((net.get("measured_after") or {}).get(d) or {}).get("measured") or {})
            out.append(f"| {d} | {c.get('delay_ms')} ms / {c.get('jitter_ms')} ms / {c.get('loss_pct')} % | "
                       f"{_fmt(b.get('delay_mean_ms'), 2)}, {_fmt(b.get('delay_std_ms'), 2)}, {_fmt(b.get('loss_pct'), 2)} | "
                       f"{_fmt(a.get('delay_mean_ms'), 2)}, {_fmt(a.get('delay_std_ms'), 2)}, {_fmt(a.get('loss_pct'), 2)} |")
        mb, ma = net.get("measured_before") or {}, net.get("measured_after") or {}
        out += ["", f"Probe RTT: before {_fmt(mb.get('rtt_mean_ms'), 1)} ms ({mb.get('verdict')}), "
                f"after {_fmt(ma.get('rtt_mean_ms'), 1)} ms ({ma.get('verdict')})"]
        out += ["", f"Path: {((net.get('path') or {}).get('mode'))} / {((net.get('path') or {}).get('backend'))} "
                f"(agent exempt: {((net.get('path') or {}).get('agent_exempt'))})"]
    return out


def _write_junit(path: Path, summary: RunSummary, cases: list[CaseResult], run_gates) -> Path:
    """JUnit XML: suite ``cases`` (one test per case) and suite ``gates`` (one test per run gate)."""
    root = ET.Element("testsuites", name=f"autortc {summary.run_id}")
    ts = ET.SubElement(root, "testsuite", name=f"autortc.{summary.suite or 'suite'}.cases")
    nf = ns = 0
    for c in cases:
        dur = c.duration_s or 0.0
        tc = ET.SubElement(ts, "testcase", classname=f"autortc.{summary.suite or 'suite'}", name=c.case_id,
                           time=f"{dur:.3f}")
        bad = [f"{t.trace_id}: {v.gate} measured {_fmt(v.measured, 4)} (gate {v.op} {_fmt(v.threshold, 4)})"
               for t in c.turns for v in t.verdicts if v.status == "FAIL"]
        verdict = "FAIL" if c.error else (c.verdict if c.turns else "FAIL")
        if c.turns:
            from autortc.results import worst

            verdict = "FAIL" if c.error else worst([t.verdict for t in c.turns])
        if verdict == "FAIL":
            nf += 1
            el = ET.SubElement(tc, "failure", message=(c.error or "; ".join(bad[:3]) or "turn failed")[:500],
                               type="GateFailure")
            el.text = "\n".join(([c.error] if c.error else []) + bad + [e for t in c.turns for e in t.errors])
        elif verdict == "SKIP":
            ns += 1
            ET.SubElement(tc, "skipped", message="no gate had data")
        warns = [f"{t.trace_id}: {v.gate} {_fmt(v.measured, 4)}" for t in c.turns for v in t.verdicts if v.status == "WARN"]
        if warns:
            ET.SubElement(tc, "system-out").text = "WARN " + "; ".join(warns)
    ts.set("tests", str(len(cases)))
    ts.set("failures", str(nf))
    ts.set("skipped", str(ns))
    gs = ET.SubElement(root, "testsuite", name=f"autortc.{summary.suite or 'suite'}.gates")
    gf = gsk = 0
    for g in run_gates:
        tc = ET.SubElement(gs, "testcase", classname="autortc.gates", name=g.gate, time="0")
        if g.status == "FAIL":
            gf += 1
            ET.SubElement(tc, "failure", type="GateFailure",
                          message=f"measured {_fmt(g.measured, 4)} violates {g.op} {_fmt(g.threshold, 4)} "
                                  f"(worst: {g.case_id}/{g.trace_id})")
        elif g.status == "SKIP":
            gsk += 1
            ET.SubElement(tc, "skipped", message=g.message)
        elif g.status == "WARN":
            ET.SubElement(tc, "system-out").text = f"WARN measured {_fmt(g.measured, 4)} (warn {_fmt(g.warn_threshold)})"
    gs.set("tests", str(len(run_gates)))
    gs.set("failures", str(gf))
    gs.set("skipped", str(gsk))
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path

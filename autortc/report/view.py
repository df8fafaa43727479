"""What the report shows, as plain data for its templates (Markdown and HTML alike).

Built from the run's :class:`~autortc.results.RunSummary` (verdicts, the gates that
applied) and its :class:`~autortc.results.CaseResult` list; it formats, it never judges:
every status comes from the gates stage, every threshold from ``summary.gate_specs``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from autortc.results import CaseResult, GateInfo, RunSummary, TurnResult

__all__ = ["Table", "ReportView", "build_view", "fmt"]


def fmt(v: Any, nd: int = 1) -> str:
    """A figure as the report prints it (``-`` for not measured)."""
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


def _nd(v: float | None) -> int:
    return 4 if (v or 0) < 1 else 1


@dataclass
class Table:
    """A titled table with an optional lead paragraph; ``status_col`` is the index of a verdict column."""

    title: str
    header: list[str]
    rows: list[list[str]]
    lead: str = ""
    status_col: int | None = None
    bullets: list[str] = field(default_factory=list)


@dataclass
class ReportView:
    run_id: str
    verdict: str
    suite: str
    n_cases: int
    counts: dict[str, int]
    started_at: str | None
    ended_at: str | None
    gate_sources: list[str]
    gates: list[dict[str, Any]]
    warn_gates: list[dict[str, Any]]
    overrides: Table | None
    cases: Table
    eot_values: list[float]
    eot_threshold: float | None
    fixes: list[dict[str, str]]
    failed_turns: list[tuple[CaseResult, TurnResult]]
    details: list[Table]
    notes: list[str]


def _title(specs: dict[str, GateInfo], name: str) -> str:
    sp = specs.get(name)
    return sp.title if sp and sp.title else name


def _threshold_text(g: GateInfo) -> str:
    parts = [f"{g.op} {fmt(g.fail, _nd(g.fail))}"] if g.fail is not None else []
    if g.warn is not None:
        parts.append(f"warn {g.op} {fmt(g.warn, _nd(g.warn))}")
    return ", ".join(parts)


def build_view(summary: RunSummary, cases: list[CaseResult], notes: list[str] | None = None) -> ReportView:
    """The report's content.  ``cases`` in summary order; ``notes`` adds lines to the Notes section."""
    specs = {g.name: g for g in summary.gate_specs}
    entry_verdict = {e.case_id: e.verdict + (" FLAKY" if e.flaky else "") + (f" ({e.cause})" if e.cause else "")
                     for e in summary.cases}

    gates = []
    for g in summary.gates:
        where = f"{g.case_id} / {g.trace_id}" if g.case_id else "-"
        gates.append(dict(title=_title(specs, g.gate), name=g.gate, status=g.status,
                          measured=fmt(g.measured, _nd(g.measured)), op=g.op,
                          threshold=fmt(g.threshold, _nd(g.threshold)),
                          warn=fmt(g.warn_threshold) if g.warn_threshold is not None else "",
                          n=(f"{g.n} of {g.expected_n}" if g.expected_n else f"{g.n}"), where=where, message=g.message,
                          source=specs[g.gate].source if g.gate in specs else ""))
    warn_gates = [g for g in gates if g["status"] == "WARN"]

    overrides = None
    if summary.case_gates:
        overrides = Table("Per-case gate overrides", ["Case", "Gate", "Threshold", "Run's threshold"],
                          [[cid, _title(specs, g.name), _threshold_text(g),
                            _threshold_text(specs[g.name]) if g.name in specs else "-"]
                           for cid, gs in summary.case_gates.items() for g in gs],
                          lead="These cases were judged by their own thresholds, in their turns and at run level.")

    header = ["Case", "P", "Verdict", "Turn", "Capture", "EoT→audio ms", "max gap ms", "dropouts",
              "clipping", "mel dB", "MOS", "drift", "HF drop", "failed gates"]
    rows: list[list[str]] = []
    eot_values: list[float] = []
    failed_turns: list[tuple[CaseResult, TurnResult]] = []
    fixes: dict[str, dict] = {}

    def fix_for(gate: str) -> dict:
        sp = specs.get(gate)
        return fixes.setdefault(gate, dict(title=_title(specs, gate), fix=sp.fix if sp else "", where=[]))

    for c in cases:
        if not c.turns:
            rows.append([c.case_id, c.p_level, entry_verdict.get(c.case_id, c.verdict), "-", "-", "-", "-", "-", "-",
                         "-", "-", "-", "-", c.error or "no turns"])
        for t in c.turns:
            bad = [v for v in t.verdicts if v.status == "FAIL"]
            if t.latency.eot_to_first_audio_ms is not None:
                eot_values.append(t.latency.eot_to_first_audio_ms)
            tv = t.verdict + (" FLAKY" if c.flaky else "") + (f" ({c.cause})" if c.cause else "")
            rows.append([c.case_id, c.p_level, tv, str(t.turn_index), t.capture_status,
                         "talk-over" if t.latency.premature else fmt(t.latency.eot_to_first_audio_ms),
                         fmt(t.continuity.max_gap_ms),
                         fmt(t.continuity.audible_dropouts), fmt(t.level.clipping_ratio, 4),
                         fmt(t.fidelity.mel_distance, 2), fmt(t.perceptual.mos_lqo, 2),
                         fmt(t.fingerprints.drift_ratio, 3), fmt(t.fingerprints.hf_ratio_drop, 3),
                         ", ".join(f"{v.gate}={fmt(v.measured, 3)}" for v in bad) or "-"])
            if t.verdict == "FAIL":
                failed_turns.append((c, t))
            for v in bad:
                fix_for(v.gate)["where"].append(f"{c.case_id}/{t.trace_id}")
    for g in summary.gates:
        if g.status == "FAIL":
            fix_for(g.gate)["where"].insert(0, f"run {g.message}")
    fix_list = [dict(title=f["title"], fix=f["fix"] or "see gate source",
                     where=", ".join(f["where"][:6]) + (" ..." if len(f["where"]) > 6 else "")) for f in fixes.values()]

    eot_gate = next((g for g in summary.gates if g.gate == "eot_to_first_audio"), None)
    eot_threshold = eot_gate.threshold if eot_gate else (specs["eot_to_first_audio"].fail
                                                         if "eot_to_first_audio" in specs else None)
    return ReportView(
        run_id=summary.run_id, verdict=summary.verdict, suite=summary.suite or "-", n_cases=len(summary.cases),
        counts=dict(Counter(e.verdict for e in summary.cases)), started_at=summary.started_at,
        ended_at=summary.ended_at, gate_sources=list(summary.gate_sources), gates=gates, warn_gates=warn_gates,
        overrides=overrides, cases=Table("Cases", header, rows, status_col=2), eot_values=eot_values,
        eot_threshold=eot_threshold, fixes=fix_list, failed_turns=failed_turns,
        details=_details(summary, cases), notes=list(summary.notes) + list(notes or []))


def _details(summary: RunSummary, cases: list[CaseResult]) -> list[Table]:
    """Turn-taking, reported-vs-heard, retries and network sections."""
    out: list[Table] = []
    tt = [(c, t) for c in cases for t in c.turns
          if t.turntaking.stop_time_ms is not None or t.turntaking.false_yields is not None]
    if tt:
        out.append(Table("Turn-taking", ["Case / turn", "stop time ms (barge-in)", "false yields (backchannel)",
                                         "talk-over ms"],
                         [[f"{c.case_id} / {t.trace_id}", fmt(t.turntaking.stop_time_ms),
                           fmt(t.turntaking.false_yields), fmt(t.turntaking.talk_over_ms)] for c, t in tt]))
    heard = [(c, t) for c in cases for t in c.turns
             if t.latency.premature or t.origin or t.fingerprints.speed_ratio is not None
             or t.continuity.missing_audio_ms or t.content.missing_keywords or t.no_reply]
    if heard:
        prem = sum(1 for _, t in heard if t.latency.premature)
        out.append(Table(
            "What the user heard",
            ["Case / turn", "talk-over ms", "speed ratio", "HF drop", "missing audio ms", "missing keywords",
             "WER", "where it arose"],
            [[f"{c.case_id} / {t.trace_id}" + (" (no reply)" if t.no_reply else ""),
              fmt(t.turntaking.premature_ms), fmt(t.fingerprints.speed_ratio, 4), fmt(t.fingerprints.hf_ratio_drop, 3),
              fmt(t.continuity.missing_audio_ms), ", ".join(t.content.missing_keywords) or "-", fmt(t.content.wer, 2),
              ", ".join(f"{k}: {v}" for k, v in sorted(t.origin.items())) or "-"] for c, t in heard],
            lead=(f"{prem} premature (talk-over) turn(s), left out of the EoT → first audio distribution. " if prem
                  else "") + "Where it arose: 'agent' = also in the agent's own pre-RTC copy, 'path' = added on the "
                  "way, 'sender' = not in the copy but with no packet missing or late at the probe's receiver (the "
                  "agent's output ran dry or its encoder dropped the audio); all are judged."))
    rx = [(c, t) for c in cases for t in c.turns if t.receiver.concealment_events is not None]
    if rx:
        out.append(Table(
            "The probe's WebRTC receiver over the heard reply",
            ["Case / turn", "packets lost", "concealment events", "concealed ms", "jitter buffer ms",
             "time stretch ms (+slower / -faster)", "dropouts heard", "of them at a concealment"],
            [[f"{c.case_id} / {t.trace_id}", fmt(t.receiver.packets_lost), fmt(t.receiver.concealment_events),
              fmt(t.receiver.concealed_ms), fmt(t.receiver.jitter_buffer_ms),
              fmt((t.receiver.decelerate_ms or 0) - (t.receiver.accelerate_ms or 0)),
              fmt(t.continuity.audible_dropouts), fmt(t.receiver.dropouts_concealed)] for c, t in rx],
            lead="libwebrtc's own counters of the agent's audio at the probe (inbound-rtp, read every ~0.1 s): "
                 "a dropout heard with no concealment there did not come from packets missing or late at the "
                 "receiver."))
    up = [(c, t) for c in cases for t in c.turns if t.uplink.segments is not None]
    if up:
        out.append(Table(
            "The user's speech at the agent (uplink)",
            ["Case / turn", "uplink delay at EoT ms", "compressed by ms", "max delay ms (all segments)",
             "speech lost ms", "correlation", "user side late at EoT ms"],
            [[f"{c.case_id} / {t.trace_id}", fmt(t.uplink.delay_ms), fmt(t.uplink.warp_ms), fmt(t.uplink.delay_max_ms),
              fmt(t.uplink.lost_ms), fmt(t.uplink.corr, 3), fmt(t.uplink.handover_late_ms)] for c, t in up],
            lead="user.wav found in the agent's own copy of its input (agent_input.wav), window by window: the delay "
                 "is the agent's receipt minus the user side's hand-over of the user's last speech; compressed = how "
                 "much earlier the end came than the start's delay says (the agent's jitter buffer catching up); lost "
                 "= speech that reached the agent as silence for ~30 ms or more; user side late = how far behind its "
                 "schedule the user bot handed its end of speech over (the instrument's own, not in the delay). "
                 "Informational, not gated."))
    ex = summary.extra or {}
    tim = ex.get("timing") or {}
    if tim.get("turns") and not ex.get("faultbench"):  # the bench shows its own (planted delays left out)
        out.append(_timing_table(tim, tim.get("instrument") or {}))
    rv = [(c, t) for c in cases for t in c.turns if t.latency.reported_vs_heard_ms is not None]
    if rv:
        out.append(Table(
            "What the agent reports vs what the user hears",
            ["Case / turn", "agent-reported ms", "heard ms", "difference ms", "USER_KPI ms (browser)"],
            [[f"{c.case_id} / {t.trace_id}", fmt(t.latency.agent_reported_ms), fmt(t.latency.eot_to_first_audio_ms),
              fmt(t.latency.reported_vs_heard_ms), fmt(t.latency.user_kpi_ms)] for c, t in rv],
            lead="Agent-reported = LiveKit Agents' end-of-utterance delay + TTFT + TTFB (else its stages); heard = "
                 "user EoT → first audible sample at the probe."))
    ex = summary.extra or {}
    if ex.get("retry_reasons") or ex.get("harness_errors") or ex.get("cut") or ex.get("agent_failures"):
        bullets = [f"{cid}: {r}" for cid, reasons in (ex.get("retry_reasons") or {}).items() for r in reasons]
        bullets += [f"FLAKY {cid}: passed only on a later attempt" for cid in ex.get("flaky") or []]
        bullets += [f"AGENT {cid}: {cause} (case FAIL, not retried)" for cid, cause in (ex.get("agent_failures") or {}).items()]
        bullets += [f"HARNESS {e}" for e in ex.get("harness_errors") or []]
        if ex.get("cut"):
            bullets.append(f"cut by Ctrl-C: {', '.join(ex['cut'])}")
        out.append(Table("Retries and harness problems", [], [],
                         lead=f"Retries: {ex.get('retries', 0)} (rate {ex.get('retry_rate', 0)})", bullets=bullets))
    fb = ex.get("faultbench")
    if fb:
        out += _faultbench_tables(fb)
    if ex.get("receivers") and not (fb and fb.get("receivers")):
        out.append(receivers_table(ex["receivers"]))
    rep = ex.get("repeat")
    if rep and rep.get("flake"):
        rows = []
        for f in rep["flake"]:
            fr, lo, hi = f.get("fail_rate"), f.get("ci_low"), f.get("ci_high")
            rows.append(["FLAKY" if f.get("flaky") else "ok" if fr is not None else "n/a", f["case_id"], " ".join(f.get("verdicts") or []),
                         "-" if f.get("flake_rate") is None else f"{100 * f['flake_rate']:.0f} %",
                         "-" if fr is None or lo is None or hi is None else
                         f"{100 * fr:.0f} % [{100 * lo:.0f}, {100 * hi:.0f}] %"])
        out.append(Table(f"Flake over {rep.get('n')} repeats", ["", "Case", "Verdicts", "Flake rate",
                                                               "Fail rate [95 % Wilson CI]"], rows,
                         lead=f"Runs: {', '.join(rep.get('runs') or [])}. Flake rate = share of repeats that disagree "
                              "with the case's majority (PASS/WARN vs FAIL; harness errors not counted)."))
    base = ex.get("baseline")
    if base and base.get("rows"):
        from autortc.baseline import MetricDelta, _interval, _signed
        from autortc.console import format_value

        rows = []
        for r in (MetricDelta(**d) for d in base["rows"]):
            rows.append([r.verdict, r.key, f"{r.n_baseline}/{r.n_run}", format_value(r.metric, r.baseline),
                         format_value(r.metric, r.run), _signed(r.metric, r.delta),
                         _interval(r.metric, r.ci_low, r.ci_high),
                         _signed(r.metric, r.min_effect if r.worse == "higher" else -r.min_effect), r.reason])
        out.append(Table(
            f"Baseline {base.get('name')}: " + ("significant REGRESSION" if base.get("regression") else "no significant regression"),
            ["Verdict", "Effect", "n (baseline/run)", "Baseline", "Run", "Delta", "95 % CI", "Min effect", "Why"], rows,
            status_col=0,
            lead=f"Median shift run − baseline with a 95 % percentile-bootstrap interval over every turn of "
                 f"{', '.join(base.get('runs') or [])} vs {', '.join(base.get('baseline_runs') or [])}; a REGRESSION needs "
                 "the interval to exclude 0 on the bad side and the shift to reach the minimum effect."))
    net = ex.get("network")
    if net:
        conf = net.get("configured") or {}
        mb, ma = net.get("measured_before") or {}, net.get("measured_after") or {}
        rows = []
        for d in ("uplink", "downlink"):
            c = conf.get(d) or {}
            b = ((mb.get(d) or {}).get("measured") or {})
            a = ((ma.get(d) or {}).get("measured") or {})
            rows.append([d, f"{c.get('delay_ms')} ms / {c.get('jitter_ms')} ms / {c.get('loss_pct')} %",
                         f"{fmt(b.get('delay_mean_ms'), 2)}, {fmt(b.get('delay_std_ms'), 2)}, {fmt(b.get('loss_pct'), 2)}",
                         f"{fmt(a.get('delay_mean_ms'), 2)}, {fmt(a.get('delay_std_ms'), 2)}, {fmt(a.get('loss_pct'), 2)}"])
        path = net.get("path") or {}
        out.append(Table(
            f"Network profile `{net.get('profile')}` — {'applied' if net.get('applied') else 'NOT verified as applied'}",
            ["direction", "configured delay / jitter / loss", "measured before (delay ms, std ms, loss %)",
             "measured after"], rows,
            bullets=[f"Probe RTT: before {fmt(mb.get('rtt_mean_ms'), 1)} ms ({mb.get('verdict')}), "
                     f"after {fmt(ma.get('rtt_mean_ms'), 1)} ms ({ma.get('verdict')})",
                     f"Path: {path.get('mode')} / {path.get('backend')} (agent exempt: {path.get('agent_exempt')})"]))
    return out


def _timing_table(tim: dict[str, Any], ins: dict[str, Any]) -> Table:
    """The latency's error bar (``autortc.metrics.instrument.timing_summary``): its parts on one clock
    with their spread, and the instrument's own error from its unit tests."""
    nd = dict(tim.get("not_decomposed") or {})
    if not nd and tim.get("decided_before_eot"):  # summaries written before not_decomposed
        nd = {"the agent decided the end of turn before the user's EoT": tim["decided_before_eot"]}
    trows = [[name, fmt(v.get("median")), f"{fmt(v.get('p05'))} … {fmt(v.get('p95'))}", fmt(v.get("std"))]
             for name, v in ((n, tim.get(k) or {}) for n, k in (("EoT → first audio", "latency_ms"),
                                                                ("uplink (EoT → agent decision)", "uplink_ms"),
                                                                ("agent (decision → first frame)", "agent_ms"),
                                                                ("downlink (→ first audio at probe)", "downlink_ms"),
                                                                ("path = uplink + downlink", "path_ms")))]
    return Table(
        f"Latency error bar: decomposition on one host clock ({tim['turns']} turns)",
        ["part", "median ms", "5th … 95th percentile ms", "std ms"], trows,
        lead="The path's spread is a reported figure, not noise in the verdict; the instrument's own error bar "
             f"(unit tests, {ins.get('source', '')}): first audio ≤ {fmt(ins.get('first_audio_max_error_ms'), 2)} ms, "
             f"user EoT ≤ {fmt(ins.get('user_eot_max_error_ms'), 2)} ms"
             + (f" ({ins['user_eot_source']})" if ins.get("user_eot_source") else "")
             + f"; parts add up to the latency within {fmt(tim.get('sum_error_ms_max'), 3)} ms."
             + (" Not decomposed (counted, not spread): " + "; ".join(f"{n}× {k}" for k, n in sorted(nd.items()))
                + " — the agent answered into a pause (its first decision and first reply are not the reply heard), "
                  "or a stage was not reported." if nd else ""))


def _faultbench_tables(fb: dict[str, Any]) -> list[Table]:
    """``summary.extra.faultbench`` (``autortc faultbench``): recall per fault, false alarms, timing truth."""
    rows = []
    for r in fb.get("rows") or []:
        ci = r.get("wilson95")
        rows.append([r["fault"], r["side"], f"{' or '.join(r['gates'])} ({r['level']})", f"{r['caught']}/{r['planted']}",
                     fmt(r.get("recall"), 2), f"{ci[0]:.2f}–{ci[1]:.2f}" if ci else "–",
                     f"{fmt(r.get('planted_median'))} → {fmt(r.get('measured_median'))}",
                     f"{r.get('not_planted', 0)}"
                     + (" (" + ", ".join(f"{n}× {k}" for k, n in sorted((r.get('not_planted_why') or {}).items())) + ")"
                        if r.get("not_planted_why") else "")
                     + f" / {r.get('harness_errors', 0)}"])
    fa = fb.get("false_alarms") or {}
    bullets = [f"False alarms on {fb.get('clean_turns')} clean turns: {fb.get('false_alarm_total')}"
               + (" (" + ", ".join(f"{g}: {c['WARN']} WARN / {c['FAIL']} FAIL" for g, c in sorted(fa.items())) + ")" if fa else "")]
    for key, what in (("delay", "EoT → first audio"), ("delay_downlink", "downlink part, path spread removed")):
        d = fb.get(key)
        if d and d.get("median_ms") is not None:
            ci = d.get("ci95_ms")
            bullets.append(f"Delay recovery ({what}): planted {fmt(d['planted_diff_ms'], 0)} ms, measured median "
                           f"{fmt(d['median_ms'])} ms (95 % {fmt(ci[0]) if ci else '–'} … {fmt(ci[1]) if ci else '–'} ms, "
                           f"{d['pairs']} pairs), error {fmt(d['error_ms'])} ms"
                           + (f"; left out: {d.get('incomplete_pairs', 0)} pair(s), turns "
                              + ", ".join(f"{n}× {k}" for k, n in sorted(d["left_out"].items())) if d.get("left_out") else ""))
    verdict = "PASS" if fb.get("passed") else "FAIL — " + "; ".join(fb.get("reasons") or [])
    out = [Table(f"Fault bench (seed {fb.get('seed')}, K = {fb.get('k')})",
                 ["fault", "where", "must flag (level)", "caught", "recall", "95 % Wilson", "planted → measured (median)",
                  "not planted / harness"], rows, bullets=bullets + [f"Targets (recall ≥ {fb.get('min_recall')}, false "
                                                                      f"alarms ≤ {fb.get('max_false_alarms')}): {verdict}"])]
    tim = fb.get("timing") or {}
    if tim.get("turns"):
        out.append(_timing_table(tim, fb.get("instrument") or tim.get("instrument") or {}))
    if fb.get("receivers"):
        out.append(receivers_table(fb["receivers"]))
    return out


def receivers_table(r: dict[str, Any]) -> Table:
    """``extra.receivers`` / ``extra.faultbench.receivers`` (``--via browser``): the page's USER_KPI
    against the probe's EoT → first audio on the same turns (``autortc.metrics.receivers``)."""
    ci = r.get("bias_ci95_ms")
    row = [f"{r['paired']}/{r['turns']}", str(r["probe_only"]), str(r["browser_only"]), str(r["neither"]),
           fmt(r.get("bias_ms")), f"{fmt(ci[0])} … {fmt(ci[1])}" if ci else "-",
           f"{fmt(r.get('iqr_ms'))} ({fmt(r.get('p25_ms'))} … {fmt(r.get('p75_ms'))})", fmt(r.get("sd_ms")),
           f"{fmt(r.get('min_ms'))} … {fmt(r.get('max_ms'))}",
           f"{fmt(r.get('sync_rtt_median_ms'), 2)} (≤ {fmt(r.get('sync_error_max_ms'), 2)})"]
    return Table(
        "Two receivers: browser USER_KPI vs probe, same turns",
        ["paired / turns", "probe only", "browser only", "neither", "bias ms (median browser − probe)",
         "bias 95 % bootstrap ms", "IQR ms (25th … 75th)", "SD ms", "range ms", "clock sync RTT median ms (≤ error)"],
        [row],
        lead="Both hear the same reply after the same end of speech (the page's, brought to the host clock by the clock "
             "sync): the difference is the two receive paths (the page's jitter buffer and output vs the probe's "
             "receive loop) plus the clock sync, whose error is ≤ RTT/2; a turn counts only when both measured it.")

"""``junit.xml``: suite ``cases`` (one test per case) and suite ``gates`` (one test per run gate).

Verdicts are the gates stage's (``summary.cases[*].verdict``, ``summary.gates``); this module
only writes them in JUnit's form, with the failing turn gates as the failure text.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from autortc.report.view import fmt
from autortc.results import CaseResult, RunSummary

__all__ = ["write_junit"]


def write_junit(path: Path, summary: RunSummary, cases: list[CaseResult]) -> Path:
    verdicts = {e.case_id: e.verdict for e in summary.cases}
    suite = summary.suite or "suite"
    root = ET.Element("testsuites", name=f"autortc {summary.run_id}")
    ts = ET.SubElement(root, "testsuite", name=f"autortc.{suite}.cases")
    nf = ns = 0
    for c in cases:
        tc = ET.SubElement(ts, "testcase", classname=f"autortc.{suite}", name=c.case_id,
                           time=f"{c.duration_s or 0.0:.3f}")
        bad = [f"{t.trace_id}: {v.gate} measured {fmt(v.measured, 4)} (gate {v.op} {fmt(v.threshold, 4)})"
               for t in c.turns for v in t.verdicts if v.status == "FAIL"]
        verdict = verdicts.get(c.case_id, c.verdict)
        if c.flaky or c.cause:
            props = ET.SubElement(tc, "properties")
            if c.flaky:
                ET.SubElement(props, "property", name="flaky", value="true")
                ET.SubElement(props, "property", name="attempts", value=str(c.attempts))
            if c.cause:
                ET.SubElement(props, "property", name="cause", value=c.cause)
        if verdict == "FAIL":
            nf += 1
            el = ET.SubElement(tc, "failure", message=(c.error or "; ".join(bad[:3]) or "turn failed")[:500],
                               type=f"AgentFailure.{c.cause}" if c.cause else "GateFailure")
            el.text = "\n".join(([c.error] if c.error else []) + bad + [e for t in c.turns for e in t.errors])
        elif verdict == "SKIP":
            ns += 1
            ET.SubElement(tc, "skipped", message="no gate had data")
        warns = [f"{t.trace_id}: {v.gate} {fmt(v.measured, 4)}" for t in c.turns for v in t.verdicts if v.status == "WARN"]
        out = []
        if c.flaky:
            out.append(f"FLAKY: passed only on attempt {c.attempts} (earlier attempts failed)")
        if warns:
            out.append("WARN " + "; ".join(warns))
        if out:
            ET.SubElement(tc, "system-out").text = "\n".join(out)
    ts.set("tests", str(len(cases)))
    ts.set("failures", str(nf))
    ts.set("skipped", str(ns))
    gs = ET.SubElement(root, "testsuite", name=f"autortc.{suite}.gates")
    gf = gsk = 0
    for g in summary.gates:
        tc = ET.SubElement(gs, "testcase", classname="autortc.gates", name=g.gate, time="0")
        if g.status == "FAIL":
            gf += 1
            ET.SubElement(tc, "failure", type="GateFailure",
                          message=f"measured {fmt(g.measured, 4)} violates {g.op} {fmt(g.threshold, 4)} "
                                  f"(worst: {g.case_id}/{g.trace_id})")
        elif g.status == "SKIP":
            gsk += 1
            ET.SubElement(tc, "skipped", message=g.message)
        elif g.status == "WARN":
            ET.SubElement(tc, "system-out").text = f"WARN measured {fmt(g.measured, 4)} (warn {fmt(g.warn_threshold)})"
    gs.set("tests", str(len(summary.gates)))
    gs.set("failures", str(gf))
    gs.set("skipped", str(gsk))
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path

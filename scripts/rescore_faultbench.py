"""Re-judge a recorded fault-bench run with this checkout's metrics and gates (offline: same
scorer, the run's recorded audio; no new turns).  Prints the bench table before (the verdicts
the run wrote) and after, every missed planted fault and every false alarm on a clean turn.

    .venv/bin/python scripts/rescore_faultbench.py RUN_DIR [--seed 1702] [--transcriber ''] [--json OUT.json] [--cache DIR]

The run folder is read only (copy it first if it is someone else's).  ``--transcriber`` defaults
to the bench's (bundled faster-whisper tiny.en, beam 5); '' skips STT (the keywords gate then
FAILs P0 turns as not measured, so do not compare that way).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autortc.commands.run import BUNDLED_TRANSCRIBER  # noqa: E402
from autortc.faultbench import render  # noqa: E402
from autortc.faultbench.catalogue import by_name  # noqa: E402
from autortc.faultbench.rescore import rescore  # noqa: E402
from autortc.runner.analysis import load_transcriber  # noqa: E402


def details(label: str, records) -> dict:
    """Missed planted faults and clean false alarms, one line each."""
    cat = by_name()
    missed, fa = [], []
    for r in records:
        o = r.outcome
        flags = [(v.gate, v.status, v.measured) for v in o.verdicts if v.status in ("WARN", "FAIL")]
        if o.error:
            continue
        if o.fault is None:
            for g, s, m in flags:
                fa.append({"item": o.item, "case": o.case_id, "gate": g, "status": s, "measured": m})
        else:
            e = cat[o.fault]
            if not e.scored:
                continue
            own = [t for t in o.truth if t.get("kind") == e.kind]
            if own and not all(t.get("planted") for t in own):
                continue
            if not any(v.gate in e.gates and v.status in (("FAIL",) if e.level == "FAIL" else ("WARN", "FAIL"))
                       for v in o.verdicts):
                missed.append({"item": o.item, "fault": o.fault, "case": o.case_id,
                               "wanted": f"{'/'.join(e.gates)} {e.level}",
                               "got": {v.gate: (v.status, v.measured) for v in o.verdicts if v.gate in e.gates},
                               "flags": flags})
    print(f"\n### {label}: missed planted faults ({len(missed)})")
    for m in missed:
        print(f"  b{m['item']:03d} {m['fault']:18s} {m['case']:28s} wanted {m['wanted']}: got {m['got']}; other flags {m['flags']}")
    print(f"### {label}: false alarms on clean turns ({len(fa)})")
    for f in fa:
        print(f"  b{f['item']:03d} {f['case']:28s} {f['gate']} {f['status']} {f['measured']}")
    return {"missed": missed, "false_alarms": fa}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--clean", type=int, default=50)
    ap.add_argument("--delay-pairs", type=int, default=20)
    ap.add_argument("--cases", type=Path, default=ROOT / "cases" / "all_cases.json")
    ap.add_argument("--transcriber", default=BUNDLED_TRANSCRIBER)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--cache", type=Path, help="keep/reuse the re-judged entries here (delete after a metrics change)")
    a = ap.parse_args()
    tr = load_transcriber(a.transcriber or None)
    rs = rescore(a.run_dir, a.cases, seed=a.seed, k=a.k, clean=a.clean, delay_pairs=a.delay_pairs, transcriber=tr,
                 log=None if a.quiet else (lambda s: print(s, file=sys.stderr)), cache=a.cache)
    print(f"rescore of {a.run_dir} ({rs.entries} of {len(rs.plan.items)} plan entries recorded; seed {rs.plan.seed})")
    print(render.to_markdown(rs.before, plan=rs.plan, title="Before: the verdicts the run wrote"))
    db = details("before", rs.before_records)
    print()
    print(render.to_markdown(rs.after, plan=rs.plan, title="After: rescored offline by this checkout (same recorded audio)"))
    da = details("after", rs.after_records)
    if a.json:
        a.json.write_text(json.dumps({"before": rs.before.to_dict(), "after": rs.after.to_dict(), "before_detail": db,
                                      "after_detail": da, "entries": rs.entries}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

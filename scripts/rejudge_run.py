"""Re-judge a recorded fast-suite run (its turn folders, read only) with whichever autortc is
first on sys.path: before/after tables of a detector change on the same real recordings.

    .venv/bin/python scripts/rejudge_run.py RUN_DIR OUT.json [module:transcriber_factory]
    # the code before a change:  git archive <commit> | tar -x -C /tmp/before
    #   (cd /tmp/before && PYTHONPATH=/tmp/before .venv/bin/python scripts/rejudge_run.py ...)
"""
import json, sys
from pathlib import Path
import autortc
from autortc.artifacts import load_turn
from autortc.cases import load_case_file
from autortc.gates import RunGates, judge_turn, judge_run, judge_case
from autortc.metrics.turn import compute
from autortc.results import CaseResult
from autortc.runner.analysis import load_transcriber

run = Path(sys.argv[1]); out = Path(sys.argv[2])
print("autortc from", autortc.__file__, file=sys.stderr)
cf = load_case_file(Path(autortc.__file__).parents[1] / "cases" / "all_cases.json")
suite = cf.suites["fast"]
rg = RunGates.load(None, suite_table=suite.gates)
tr = load_transcriber(sys.argv[3]) if len(sys.argv) > 3 else None
cases = []
for cdir in sorted(p for p in run.iterdir() if p.is_dir() and (p / "result.json").exists()):
    case = cf.case(cdir.name)
    gs = rg.for_case(cdir.name, case.gates)
    turns = []
    for td in sorted(p for p in cdir.iterdir() if p.is_dir() and (p / "trace.json").exists()):
        t = load_turn(td)
        r = compute(t.artifacts, t.audio, transcriber=tr, errors=t.errors)
        judge_turn(r, gs, failed=t.artifacts is None)
        turns.append(r)
    c = CaseResult(case_id=cdir.name, p_level=case.p_level, turns=turns)
    c.verdict = judge_case(c)
    cases.append(c)
s = judge_run("reanalysis", cases, rg, suite="fast")
rows = {"gates": [(g.gate, g.status, g.measured, g.n, getattr(g, "expected_n", None), g.message) for g in s.gates],
        "wer": [(c.case_id, t.content.wer, t.content.transcript) for c in cases for t in c.turns],
        "cases": [(c.case_id, c.verdict, [(v.gate, v.status, v.measured, v.message) for t in c.turns for v in t.verdicts if v.status in ("WARN", "FAIL")]) for c in cases]}
out.write_text(json.dumps(rows, indent=1, default=str))
for g in rows["gates"]:
    print(f"{g[0]:22s} {g[1]:5s} {g[2]!s:>22.22s} n={g[3]} exp={g[4]}")
for c in rows["cases"]:
    print(c[0], c[1], "; ".join(f"{a}={b}:{m!s:.8s}" for a, b, m, _ in c[2]))

"""Barge-in and backchannel benchmark of the bundled agent through the normal runner.

Runs ``turn_barge_in_stop`` N times and ``turn_backchannel_ignore`` M times (one room per
run, the fast suite's cases and analysis) against the running bundled stack, then prints the
stop time P50/P95 (user onset -> agent's last audible sample of the interrupted reply, at the
probe) and the false yields of every run. Issue 19's goal: stop time P95 <= 600 ms over 10
barge-in runs and 0 false yields over 20 backchannel runs, with one agent configuration.

    flock /tmp/autortc-heavy.lock bash -c '.venv/bin/autortc stack up && \\
        .venv/bin/python scripts/bench_turntaking.py --barge-in 10 --backchannel 20; \\
        .venv/bin/autortc stack down'

Exit code: 0 both goals met, 1 a goal missed, 2 a run recorded no turn (harness error).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autortc.commands.run import BUNDLED_TRANSCRIBER, bundled_target  # noqa: E402
from autortc.runner.suite import RunOptions, SuiteRunner  # noqa: E402

BARGE_IN = "turn_barge_in_stop"
BACKCHANNEL = "turn_backchannel_ignore"


def _one(case_id: str, run_id: str, out_root: Path) -> dict:
    opts = RunOptions(target=bundled_target(), cases_path=ROOT / "cases" / "all_cases.json", suite="fast",
                      only=(case_id,), out_root=out_root, run_id=run_id, progress=False,
                      transcriber=BUNDLED_TRANSCRIBER)  # as `autortc run`, so the keywords gate is measured
    outcome = asyncio.run(SuiteRunner(opts).run())
    res = json.loads((outcome.run_dir / case_id / "result.json").read_text())
    if not res.get("turns"):
        raise RuntimeError(f"{outcome.run_dir / case_id}: no turn recorded ({res.get('error')})")
    return res["turns"][0]["turntaking"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--barge-in", type=int, default=10, help="runs of turn_barge_in_stop")
    ap.add_argument("--backchannel", type=int, default=20, help="runs of turn_backchannel_ignore")
    ap.add_argument("--out", type=Path, default=ROOT / "output" / "bench", help="runs folder")
    ap.add_argument("--stop-p95-ms", type=float, default=600.0, help="goal for the stop time P95 (issue 19)")
    args = ap.parse_args()
    tag = time.strftime("%Y%m%d-%H%M%S")
    stops: list[float | None] = []
    yields: list[int] = []
    t0 = time.monotonic()
    try:
        for i in range(args.barge_in):
            tt = _one(BARGE_IN, f"bench-{tag}-barge-{i:02d}", args.out)
            stops.append(tt.get("stop_time_ms"))
            print(f"barge-in {i + 1}/{args.barge_in}: stop time {stops[-1]} ms", flush=True)
        for i in range(args.backchannel):
            tt = _one(BACKCHANNEL, f"bench-{tag}-backchannel-{i:02d}", args.out)
            yields.append(int(tt.get("false_yields") or 0))
            print(f"backchannel {i + 1}/{args.backchannel}: false yields {yields[-1]}", flush=True)
    except RuntimeError as exc:
        print(f"harness error: {exc}", file=sys.stderr)
        return 2
    measured = np.array([s for s in stops if s is not None], dtype=float)
    missing = sum(s is None for s in stops)
    print(f"\nruns in {args.out} (bench-{tag}-*), {time.monotonic() - t0:.0f} s")
    ok = True
    if args.barge_in:
        p50, p95 = (np.percentile(measured, 50), np.percentile(measured, 95)) if measured.size else (np.nan, np.nan)
        print(f"barge-in stop time over {len(stops)} runs: P50 {p50:.0f} ms, P95 {p95:.0f} ms, "
              f"max {np.max(measured) if measured.size else np.nan:.0f} ms, no stop {missing} "
              f"(goal P95 <= {args.stop_p95_ms:.0f} ms)")
        print("  stop times ms: " + ", ".join("none" if s is None else f"{s:.0f}" for s in stops))
        ok &= missing == 0 and bool(p95 <= args.stop_p95_ms)
    if args.backchannel:
        print(f"backchannel false yields over {len(yields)} runs: {sum(yields)} (runs with one: "
              f"{sum(1 for y in yields if y)}; goal 0)")
        ok &= sum(yields) == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

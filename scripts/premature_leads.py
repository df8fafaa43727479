"""How early the ``premature`` fault's reply was HEARD, from the recordings of a bench run.

    .venv/bin/python scripts/premature_leads.py output/runs/<run_id> [more run dirs]

Per ``premature_*`` turn: the user's end of speech (``trace.json`` ``user.t_user_eot``: the case
WAV's annotated speech end on the user's mic timeline) minus the first audible sample of the
reply at the probe (``post_rtc_full.wav``: the first sample at >= ``AUDIBLE_RMS`` in a 10 ms block
at that level, timed by the probe's frame arrivals).  Positive = heard before the user finished;
the catalogue promises 500 ms.  Neither side is the agent's own log.  When the agent's truth
has its own times (``t_sound_received``, ``t_say``), the script also prints the anchor's lag
behind the user's mic (uplink) and say -> heard, the two lags the injector subtracts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autortc.audio.energy import AUDIBLE_RMS, first_sound_ms  # noqa: E402
from autortc.metrics.latency import sample_arrival_time  # noqa: E402


def heard_onset(full_wav: Path, frames: list, *, start: int = 0) -> float | None:
    x, sr = sf.read(str(full_wav), dtype="float32", always_2d=True)
    x = x[:, 0]
    hop = sr // 100
    n = (x.size - start) // hop
    blocks = x[start:start + n * hop].reshape(n, hop)
    loud = np.flatnonzero(np.sqrt((blocks * blocks).mean(1)) >= AUDIBLE_RMS)
    if not loud.size:
        return None
    b0 = start + int(loud[0]) * hop
    first = b0 + int(np.flatnonzero(np.abs(x[b0:b0 + hop]) >= AUDIBLE_RMS)[0])
    return sample_arrival_time(frames, first, sr)


def turn_rows(run: Path) -> list[dict]:
    rows = []
    for turn in sorted(run.glob("b*-premature*/*/trace.json")):
        tr = json.loads(turn.read_text())
        user, probe = tr["user"], tr["probe"]
        t_heard = heard_onset(turn.parent / probe["full_wav"], probe["frames"])
        row = {"turn": turn.parent.parent.name, "case": tr["case_id"],
               "lead_ms": None if t_heard is None else 1000.0 * (user["t_user_eot"] - t_heard)}
        truth = next((t for t in (tr.get("agent") or {}).get("extra", {}).get("fault_truth", [])
                      if t.get("kind") == "premature"), {})
        ex = truth.get("extra") or {}
        seg = user["segments"][0]
        x, usr = sf.read(str(turn.parent / user["wav"]), dtype="int16")
        snd = first_sound_ms(x, usr)
        t_anchor = ex.get("t_sound_anchor", ex.get("t_sound_received"))  # re-timed anchor, else the raw one
        if t_anchor is not None and snd is not None:
            t_sound_user = seg["t_onset"] + (snd * usr / 1000.0 - seg["speech_start_sample"]) / usr
            row["uplink_ms"] = 1000.0 * (t_anchor - t_sound_user)
        if ex.get("t_say") is not None and t_heard is not None:
            row["say_to_heard_ms"] = 1000.0 * (t_heard - ex["t_say"])
        row["late_ms"] = ex.get("late_ms")
        rows.append(row)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args()
    leads = []
    print("| run | turn | case | heard before EoT ms | anchor lag (uplink) ms | say -> heard ms |")
    print("|---|---|---|---|---|---|")
    for run in args.runs:
        for r in turn_rows(run):
            fmt = lambda v: "–" if v is None else f"{v:.0f}"  # noqa: E731
            print(f"| {run.name} | {r['turn']} | {r['case']} | {fmt(r['lead_ms'])} | {fmt(r.get('uplink_ms'))} | "
                  f"{fmt(r.get('say_to_heard_ms'))} |" + (f" late {r['late_ms']} ms" if r.get("late_ms") else ""))
            if r["lead_ms"] is not None:
                leads.append(r["lead_ms"])
    if leads:
        print(f"\nheard before EoT: n={len(leads)} median {np.median(leads):.0f} ms, min {min(leads):.0f}, max {max(leads):.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

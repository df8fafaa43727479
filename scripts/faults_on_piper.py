"""Where the positional faults land on the bundled agent's real replies (piper, 24 kHz).

    .venv/bin/python scripts/faults_on_piper.py [--at 300,1200] [--chunk-ms 20]

For every reply of ``system/agent/rules.json``: synthesise it with the bundled piper voice,
resample it to 24 kHz (as LiveKit Agents does before the room output), push it through each
positional fault in 20 ms chunks and print where the fault was planted (ms) or why not.
A figure for docs/faultbench.md, not a test: the unit tests prove exactness on constructed audio.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soxr

from system.agent.faults import FaultSpec, make_applier
from system.tts.piper_engine import PiperOptions, PiperTTS

SR = 24000
KINDS = [("lost_frame", None), ("gap", 60.0), ("gap", 150.0), ("noise_dropout", None), ("repeat", None), ("stall", None)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--at", default="300,1200", help="comma-separated at_ms values")
    ap.add_argument("--chunk-ms", type=int, default=20)
    args = ap.parse_args()
    ats = [float(a) for a in args.at.split(",")]
    rules = json.loads((Path(__file__).resolve().parents[1] / "system/agent/rules.json").read_text())
    tts = PiperTTS(PiperOptions())
    chunk = SR * args.chunk_ms // 1000
    print(f"{'reply':<40} {'s':>5}  " + "  ".join(f"{k}{'' if ms is None else int(ms)}@{int(a)}" for k, ms in KINDS for a in ats))
    for rule in rules["rules"] + [{"id": "default", "reply": rules["default"]}]:
        pcm = np.concatenate(list(tts.synthesize_stream(rule["reply"]))).astype(np.float32)
        x = np.clip(np.round(soxr.resample(pcm, tts.sample_rate, SR)), -32768, 32767).astype(np.int16)
        cells = []
        for kind, ms in KINDS:
            for at in ats:
                a = make_applier(FaultSpec(kind=kind, at_ms=at, ms=ms), SR)
                for i in range(0, x.size, chunk):
                    a.process(x[i : i + chunk])
                a.finish()
                t = a.truth
                cells.append(f"{t.start_ms:.0f}" if t.planted else "-")
        print(f"{rule['reply'][:40]:<40} {x.size / SR:5.2f}  " + "  ".join(f"{c:>{len(k) + 4 + (0 if ms is None else len(str(int(ms))))}}" for c, (k, ms) in zip(cells, [(k, ms) for k, ms in KINDS for _ in ats])))


if __name__ == "__main__":
    main()

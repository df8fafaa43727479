"""Decode time and text of the bundled STT per window length, on the case WAVs after an Opus round trip.

Each case WAV's speech span (``cases/all_cases.json``, 300 ms before its start to 250 ms after
its end, as the agent's VAD hands it over) is decoded by
:class:`system.agent.stt_ct2.ShortWindowTranscriber` with each ``--windows`` floor (seconds).
Printed: the median and total decode time per window, then each clip's text per window, marked
where the words differ (punctuation and case ignored).

    .venv/bin/python scripts/stt_window.py --windows 10 8 6
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s'-]", " ", text.lower()).split())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=float, nargs="+", default=[10.0, 8.0, 6.0])
    args = ap.parse_args()

    from autortc.testing.opus import opus_roundtrip
    from system.agent.stt_ct2 import ShortWindowOptions, ShortWindowTranscriber

    cases = json.loads((ROOT / "cases" / "all_cases.json").read_text())["cases"]
    spans = {Path(s["wav"]).name: s for c in cases for s in c["segments"]}
    clips = []
    for w in sorted((ROOT / "cases" / "wavs").glob("*.wav")):
        x, sr = sf.read(str(w), dtype="float32")
        x = x.mean(axis=1) if x.ndim > 1 else x
        x, sr = opus_roundtrip(x, sr)
        s = spans[w.name]
        a = int(max(0.0, s.get("speech_start_ms", 0) - 300) * sr / 1000)
        b = int((s["speech_end_ms"] + 250) * sr / 1000)
        clips.append((w.stem, x[a:b], sr))

    texts: dict[str, list[str]] = {}
    for win in args.windows:
        t = ShortWindowTranscriber(ShortWindowOptions(min_window_s=win))
        t.transcribe(clips[0][1], clips[0][2])  # warm-up
        times = []
        for name, x, sr in clips:
            t0 = time.perf_counter()
            texts.setdefault(name, []).append(t.transcribe(x, sr))
            times.append(time.perf_counter() - t0)
        print(f"window {win:4.1f} s: median {1000 * float(np.median(times)):4.0f} ms, total {sum(times):.2f} s "
              f"({len(clips)} clips)", flush=True)
    for name, row in texts.items():
        mark = "" if len({_words(r) for r in row}) == 1 else "   <-- words differ"
        print(f"{name[:28]:28s} " + " | ".join(row) + mark)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Decode time, text and cut stability of the bundled STT per window floor and beam count.

Two sources of audio:

* default: each case WAV after an Opus round trip, its speech span (``cases/all_cases.json``,
  300 ms before its start to 250 ms after its end, as the agent's VAD hands it over);
* ``--runs DIR ...``: the audio the agent really received (``agent_input.wav``) in stored suite
  runs (``output/runs/<run_id>``), one clip per utterance of each single-segment turn: the
  case's speech span split at its ``expected_silence_ms`` pauses of 200 ms or more (so "I have a question." ...
  "What time does the museum open?" gives two clips: the first utterance, what the agent's
  end-of-turn hold reads in the pause, and the whole turn, as the agent decodes what follows a
  held utterance with it), placed on the agent's input by the user's mic schedule
  and the turn's measured uplink delay.

Every clip is decoded by :class:`system.agent.stt_ct2.ShortWindowTranscriber` with each
``--windows`` floor (s) and ``--beams`` count, and, with ``--cuts``, at 15 cuts around its span
(start 300-500 ms early, end 50-250 ms late, where the agent's VAD and preflight cut it).
Printed per setting: median decode time, WER against the case transcript, how many clips gave
different words at different cuts (the text the agent acts on depends on where its VAD cut the
speech), and the agent's end-of-turn hold read from each text (:func:`system.agent.turn_text.hold_reason`):
"held wrong" counts decodes whose hold decision is not the utterance's own (an utterance before a
pause must hold, the last one must not: with ``--runs`` pieces are known; case WAVs count last
pieces only), "hold flips" the clips whose decision changes with the cut; then the clips whose
words changed, with their texts per setting.

    .venv/bin/python scripts/stt_window.py --windows 10 8 6
    .venv/bin/python scripts/stt_window.py --runs output/runs/* --beams 1 2 --cuts
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# where the agent cuts an utterance (system/agent/stt_whisper.py): from the VAD's 0.5 s prefix padding
# (less when the onset is dated late) to its preflight (64 ms of level silence, + the decay of the last
# phoneme) or its final (the VAD's 200 ms silence window)
PRE_S = (0.3, 0.4, 0.5)
POST_S = (0.05, 0.1, 0.15, 0.2, 0.25)


Clip = tuple[str, np.ndarray, int, float, float, str, bool]
"""name, (n,) float32 audio at sr Hz, sr, utterance start and end (s in the audio), reference words,
whether the utterance ends its turn"""


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s'-]", " ", text.lower().replace("...", " ")).split())


def _pieces(seg: dict, pauses: list) -> list[tuple[float, float, str]]:
    """(start_ms, end_ms, reference words) of each utterance of a case segment (case WAV time)."""
    a, b = float(seg.get("speech_start_ms", 0)), float(seg["speech_end_ms"])
    # a pause shorter than the agent's VAD silence window (200 ms) does not end an utterance
    cuts = sorted((float(p0), float(p1)) for p0, p1 in pauses if a < p0 < p1 < b and p1 - p0 >= 200)
    bounds = [a, *itertools.chain.from_iterable(cuts), b]
    texts = [t for t in re.split(r"\s*\.\.\.\s*", seg.get("transcript", "")) if t]
    spans = list(zip(bounds[0::2], bounds[1::2], strict=True))
    if len(texts) != len(spans):  # the transcript does not mark its pauses: one reference
        texts = [" ".join(texts)] * len(spans) if len(spans) == 1 else [""] * len(spans)
    return [(s, e, _words(t)) for (s, e), t in zip(spans, texts, strict=True)]


def case_clips(cases: list[dict]) -> list[Clip]:
    from autortc.testing.opus import opus_roundtrip

    out = []
    spans = {Path(s["wav"]).name: s for c in cases for s in c["segments"]}
    for w in sorted((ROOT / "cases" / "wavs").glob("*.wav")):
        x, sr = sf.read(str(w), dtype="float32")
        x = x.mean(axis=1) if x.ndim > 1 else x
        x, sr = opus_roundtrip(x, sr)
        s = spans[w.name]
        out.append((w.stem, x, sr, float(s.get("speech_start_ms", 0)) / 1000, s["speech_end_ms"] / 1000,
                    _words(s.get("transcript", "")), True))
    return out


def run_clips(cases: list[dict], runs: list[Path]) -> list[Clip]:
    by_id = {c["id"]: c for c in cases}
    out = []
    for turn in sorted(p.parent for r in runs for p in r.glob("*/*-t00-*/trace.json")):
        case = by_id.get(turn.parent.name)
        if case is None or len(case["segments"]) != 1 or not case["segments"][0].get("transcript"):
            continue
        trace = json.loads((turn / "trace.json").read_text())
        delay = (json.loads((turn / "result.json").read_text()).get("uplink") or {}).get("delay_ms")
        user, agent_in = trace["user"], (trace.get("agent") or {}).get("agent_input")
        if delay is None or not agent_in or len(user.get("segments", [])) != 1:
            continue
        x, sr = sf.read(str(turn / agent_in["wav"]), dtype="float32")
        # case WAV time 0 on the agent's input: the segment's first sample on the user's mic clock,
        # plus the path (the clocks are one: clock_offset_s 0 on one machine)
        t0 = (user["t_audio_start"] + user["segments"][0]["start_sample"] / user["sr"] + delay / 1000
              - agent_in["t_first_sample"] - trace["agent"].get("clock_offset_s", 0.0))
        # the agent holds a turn that does not sound finished and decodes what follows with it, so
        # utterance k is heard as the turn so far: from the first utterance's start to k's end
        pieces = _pieces(case["segments"][0], case.get("expected_silence_ms", []))
        for k, (_, b, _) in enumerate(pieces):
            ref = " ".join(r for _, _, r in pieces[: k + 1])
            out.append((f"{turn.parents[1].name}/{case['id']}#{k}", x, sr, t0 + pieces[0][0] / 1000, t0 + b / 1000,
                        ref, k == len(pieces) - 1))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=float, nargs="+", default=[8.0])
    ap.add_argument("--beams", type=int, nargs="+", default=[2])
    ap.add_argument("--runs", type=Path, nargs="+", default=None, help="stored runs (output/runs/<run_id>)")
    ap.add_argument("--cuts", action="store_true", help="decode each clip at 15 cuts around its span")
    args = ap.parse_args()

    import jiwer

    from system.agent.stt_ct2 import ShortWindowOptions, ShortWindowTranscriber
    from system.agent.turn_text import hold_reason

    cases = json.loads((ROOT / "cases" / "all_cases.json").read_text())["cases"]
    clips = run_clips(cases, args.runs) if args.runs else case_clips(cases)
    if not clips:
        print("no clips: expected case WAVs, or runs with */<case>-t00-*/trace.json and agent_input.wav", file=sys.stderr)
        return 2
    cuts = list(itertools.product(PRE_S, POST_S)) if args.cuts else [(0.3, 0.25)]
    texts: dict[str, list[str]] = {}
    for win, beam in itertools.product(args.windows, args.beams):
        t = ShortWindowTranscriber(ShortWindowOptions(min_window_s=win, beam_size=beam))
        times, refs, hyps, unstable, flips, wrong = [], [], [], [], [], 0
        for name, x, sr, a, b, ref, last in clips:
            words = []
            for pre, post in cuts:
                t0 = time.perf_counter()
                words.append(_words(t.transcribe(x[max(0, int((a - pre) * sr)) : int((b + post) * sr)], sr)))
                times.append(time.perf_counter() - t0)
            refs += [ref] * len(words)
            hyps += words
            if len(set(words)) > 1:
                unstable.append(name)
            held = [hold_reason(w) is not None for w in words]
            if len(set(held)) > 1:
                flips.append(name)
            wrong += sum(h == last for h in held)
            texts.setdefault(name, []).append(" | ".join(sorted(set(words))))
        scored = [(r, h) for r, h in zip(refs, hyps, strict=True) if r]
        wer = jiwer.wer([r for r, _ in scored], [h or "-" for _, h in scored]) if scored else float("nan")
        print(f"window {win:4.1f} s, beam {beam}: median {1000 * float(np.median(times)):4.0f} ms, "
              f"WER {wer:.3f} over {len(scored)} decodes, words unstable {len(unstable)}/{len(clips)} clips, "
              f"held wrong {wrong}/{len(hyps)} decodes, hold flips {len(flips)} clips: {' '.join(flips)}", flush=True)
    for name, row in texts.items():
        if len(set(row)) > 1 or any(" | " in r for r in row):  # differs by setting, or by cut
            print(f"{name[:48]:48s} " + "  //  ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())

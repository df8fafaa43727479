"""Recall and false alarms of every audio detector over the synthetic fault corpus.

    python -m autortc.testing.detector_bench [--seeds 6] [--sr 16000] [--json]

Corpus per seed (``autortc.testing.faults``): the clean speech-like signal (with its
inter-sentence pauses declared as expected silence), the same signal with the pauses
*undeclared*, and one signal per injected fault: gaps (inserted silence) and dropouts
(zeroed audio) of 40/80/150/300 ms, each placed once inside a syllable body and once
anywhere in speech; clipping at 0.05 % and 1 %; a 20 ms boom; speed drift of +3 % and
-3 %; 4-8 kHz removed and halved; stutters (60 ms x2, 120 ms x1).

A fault is *found* when the detector reports it within +/-10 ms (both edges) or, for
amounts, within +/-10 %.  A *false alarm* is a reported event that matches no injected
fault of the kinds the detector looks for, counted over every signal of the corpus
(amount detectors: clipping >= 0.1 %, |drift - 1| > 1 %, HF drop > 10 % on a signal
without that fault).  Exempt: the gap detector on undeclared pauses and on the real
silence between a leading pop and speech; drift on signals whose length was changed
(gaps, stutter, leading pop).  The signals that raised false alarms are listed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from autortc.metrics.continuity import audible_dropouts, detect_gaps
from autortc.metrics.fingerprints import detect_repeats, detect_spikes, drift_ratio, hf_ratio_drop
from autortc.metrics.level import clipping_ratio
from autortc.testing import faults as F

TOL_MS = 10.0
TOL_REL = 0.10


@dataclass
class Sig:
    name: str
    x: np.ndarray
    truth: list[F.Fault]
    declared: list[tuple[float, float]]


def _corpus(seed: int, sr: int) -> tuple[np.ndarray, list[Sig]]:
    s = F.make_speech(sr, seed=seed)
    x = s.samples
    rng = np.random.default_rng(1000 + seed)
    sigs = [Sig("clean", x, [], s.expected_silence_ms), Sig("clean_undeclared", x, [], [])]

    def anywhere(dur: float) -> float:
        for _ in range(1000):
            t = rng.uniform(s.speech_start / sr * 1000 + 20, s.speech_end / sr * 1000 - dur - 20)
            if not any(t < b + 20 and t + dur > a - 20 for a, b in s.expected_silence_ms):
                return float(t)
        raise RuntimeError("no place for the fault")

    for dur in (40, 80, 150, 300):
        for where, at in (("body", s.fault_points_ms(dur, 1, rng_seed=seed * 7 + dur)[0]), ("anywhere", anywhere(dur))):
            y, f = F.insert_gap(x, sr, at, dur)
            shifted = [(a + dur, b + dur) if a > at else (a, b) for a, b in s.expected_silence_ms]
            sigs.append(Sig(f"gap{dur}_{where}", y, [f], shifted))
            y, f = F.dropout(x, sr, at, dur)
            sigs.append(Sig(f"dropout{dur}_{where}", y, [f], s.expected_silence_ms))
    for frac in (0.0005, 0.01):
        y, f = F.clip(x, frac)
        sigs.append(Sig(f"clip{frac * 100:g}%", y, [f], s.expected_silence_ms))
    y, f = F.boom(x, sr, s.speech_points_ms(1, rng_seed=seed)[0])
    sigs.append(Sig("boom_in_speech", y, [f], s.expected_silence_ms))
    y, f = F.boom(x, sr, 60.0)
    sigs.append(Sig("boom_before_speech", y, [f], s.expected_silence_ms))
    for ratio in (1.03, 0.97):
        y, f = F.speed_drift(x, sr, ratio)
        sigs.append(Sig(f"drift{ratio}", y, [f], [(a * ratio, b * ratio) for a, b in s.expected_silence_ms]))
    for gain in (0.0, 0.5):
        y, f = F.hf_loss(x, sr, gain=gain)
        sigs.append(Sig(f"hf_gain{gain}", y, [f], s.expected_silence_ms))
    for chunk, reps in ((60, 2), (120, 1)):
        at = s.fault_points_ms(chunk, 1, rng_seed=seed + chunk)[0]
        y, f = F.stutter(x, sr, at, chunk, reps)
        extra = chunk * reps
        sigs.append(Sig(f"stutter{chunk}x{reps}", y, [f],
                        [(a + extra, b + extra) if a > at else (a, b) for a, b in s.expected_silence_ms]))
    return x, sigs


def _events_match(events, truth, kinds) -> tuple[int, int, int]:
    """(found, injected, false alarms) for interval events against truth of ``kinds``."""
    tr = [t for t in truth if t.kind in kinds]
    found = sum(1 for t in tr if any(abs(e[0] - t.start_ms) <= TOL_MS and abs(e[1] - t.end_ms) <= TOL_MS for e in events))
    fa = sum(1 for e in events if not any(e[0] < t.end_ms + TOL_MS and e[1] > t.start_ms - TOL_MS for t in tr))
    return found, len(tr), fa


def _bench_seed(args: tuple[int, int]) -> dict[str, list[int]]:
    seed, sr = args
    ref, sigs = _corpus(seed, sr)
    # found, injected, FA, signals, FA sources, missed on
    acc: dict[str, list] = defaultdict(lambda: [0, 0, 0, 0, [], []])

    def add(name: str, found: int, inj: int, fa: int) -> None:
        a = acc[name]
        a[0] += found
        a[1] += inj
        a[2] += fa
        a[3] += 1
        if fa:
            a[4].append(sg.name)
        if found < inj:
            a[5].append(sg.name)

    for sg in sigs:
        rep = detect_gaps(sg.x, sr, expected_silence_ms=sg.declared)
        gaps = [(g.start_ms, g.end_ms) for g in rep.gaps]
        interval_faults = ("gap", "dropout")
        if sg.name not in ("clean_undeclared", "boom_before_speech"):
            # undeclared pauses and the silence between a leading pop and speech are real gaps
            add("gaps (max_gap)", *_events_match(gaps, sg.truth, interval_faults))
        d_sig = [(g.start_ms, g.end_ms) for g in audible_dropouts(sg.x, sr, gaps=rep)]
        add("audible_dropout (signal rule)", *_events_match(d_sig, sg.truth, interval_faults))
        d_ref = [(g.start_ms, g.end_ms) for g in audible_dropouts(sg.x, sr, gaps=rep, reference=ref)]
        add("audible_dropout (reference rule)", *_events_match(d_ref, sg.truth, interval_faults))
        sp = [(s.start_ms, s.end_ms) for s in detect_spikes(sg.x, sr)]
        add("peak spikes (boom)", *_events_match(sp, sg.truth, ("boom",)))
        rp = [(r.start_ms, r.end_ms) for r in detect_repeats(sg.x, sr)]
        add("repeats (stutter)", *_events_match(rp, sg.truth, ("stutter",)))
        kinds = {t.kind for t in sg.truth}
        cr = clipping_ratio(sg.x)
        if "clip" in kinds:
            t = sg.truth[0].value
            add("clipping_ratio", int(abs(cr - t) <= TOL_REL * t), 1, 0)
        else:
            add("clipping_ratio", 0, 0, int(cr >= 0.001))
        dr = drift_ratio(ref, sg.x, sr)
        if "speed_drift" in kinds:
            t = sg.truth[0].value
            add("drift_ratio", int(dr is not None and abs((dr - 1) - (t - 1)) <= TOL_REL * abs(t - 1)), 1, 0)
        elif not kinds & {"gap", "stutter"} and sg.name != "boom_before_speech":  # these change the span
            add("drift_ratio", 0, 0, int(dr is None or abs(dr - 1) > 0.01))
        hd = hf_ratio_drop(ref, sg.x, sr)
        if "hf_loss" in kinds:
            t = sg.truth[0].value
            add("hf_ratio_drop", int(hd is not None and abs(hd - t) <= TOL_REL * t), 1, 0)
        else:
            add("hf_ratio_drop", 0, 0, int(hd is None or hd > 0.1))
    return {k: v for k, v in acc.items()}


def run(seeds: int = 6, sr: int = 16000, workers: int | None = None) -> dict[str, dict]:
    """Bench every detector over ``seeds`` corpora; returns per-detector figures."""
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = list(pool.map(_bench_seed, [(s, sr) for s in range(seeds)]))
    tot: dict[str, list] = defaultdict(lambda: [0, 0, 0, 0, [], []])
    for p in parts:
        for k, v in p.items():
            for i in range(4):
                tot[k][i] += v[i]
            tot[k][4] += v[4]
            tot[k][5] += v[5]
    return {k: {"found": v[0], "injected": v[1], "recall": (v[0] / v[1]) if v[1] else None,
                "false_alarms": v[2], "signals": v[3], "false_alarm_signals": sorted(set(v[4])),
                "missed_on": dict(Counter(v[5]))}
            for k, v in tot.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--sr", type=int, default=16000)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    res = run(a.seeds, a.sr, a.workers)
    if a.json:
        print(json.dumps(res, indent=2))
        return
    print(f"detector bench: {a.seeds} seeds at {a.sr} Hz, tolerance +/-{TOL_MS:g} ms / +/-{TOL_REL:.0%}")
    print(f"{'detector':36s} {'found/injected':>15s} {'recall':>7s} {'false alarms':>13s} {'signals':>8s}")
    for k, v in res.items():
        rec = "-" if v["recall"] is None else f"{v['recall']:.1%}"
        src = ", ".join(v["false_alarm_signals"])
        print(f"{k:36s} {v['found']:>7d}/{v['injected']:<7d} {rec:>7s} {v['false_alarms']:>13d} {v['signals']:>8d}"
              + (f"  (alarms on {src})" if src else ""))
    missed = {k: v["missed_on"] for k, v in res.items() if v["missed_on"]}
    for k, m in missed.items():
        print(f"  {k} missed: " + ", ".join(f"{n} x{c}" for n, c in sorted(m.items())))


if __name__ == "__main__":
    main()

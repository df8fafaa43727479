"""Can a repeated 20 ms frame or a PLC smear be found in the HEARD audio alone, without false alarms?

    .venv/bin/python scripts/concealment_bench.py RUN_DIR [RUN_DIR ...] [--replies 12] [--seed 18]

Recall set: the agent's own copies (``pre_rtc.wav``: piper speech, 24 kHz) of the clean turns of the
given recorded benches, each sent through a real libopus round trip (``autortc.testing.opus``) with
one packet lost inside speech (20 ms of voiced audio on both sides) and concealed by libopus's PLC
(``plc``: the last pitch periods extended and faded) or by playing the previous frame again
(``repeat``); two lost packets per reply, one at a time.  A detection counts when it lies within
30 ms of the lost packet's span.  Controls: the same replies through the round trip with no loss.

False-alarm set: the heard replies (``post_rtc_reply.wav``) of the same clean turns, as the probe
recorded them over the real path (SFU, Opus, the receiver's jitter buffer).  Any detection there is a
false alarm; the table counts the replies with at least one.

Detectors (self-similarity of the heard signal only, 16 kHz, loud windows only: 10 ms RMS at or above
-40 dBFS in both halves):

* ``frame_repeat``: ``autortc.metrics.fingerprints.detect_frame_repeats`` -- a window of ``F`` ms (10
  or 20, the receivers' frame sizes) nearly identical to the ``F`` ms before it: NCC >= a threshold,
  the two windows' energy within 1 dB (a copy, not a vowel growing or fading);
* ``pitch_lock``: a 20 ms window whose waveform repeats at one pitch period ``L`` (2.5-15 ms) with NCC
  >= a threshold over ``L`` and ``2 L`` at once, i.e. the same period copied at least twice, while its
  energy falls (PLC's extension of the last periods with a fade).

The script prints, per detector and threshold, recall on planted PLC and repeats, detections on the
clean round-trip controls, and false alarms on the N recorded clean replies.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autortc.audio import resample  # noqa: E402
from autortc.metrics.fingerprints import detect_frame_repeats  # noqa: E402
from autortc.testing.opus import FRAME_48K, lost_span, opus_roundtrip  # noqa: E402

SR = 16000
LOUD_DBFS = -40.0
NEAR_MS = 30.0


def _mono(path: Path) -> tuple[np.ndarray, int]:
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return x[:, 0], sr


def to16k(x: np.ndarray, sr: int) -> np.ndarray:
    return resample(np.asarray(x, np.float32), sr, SR).astype(np.float64) if sr != SR else x.astype(np.float64)


def _win_energy(x: np.ndarray, w: int) -> np.ndarray:
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    return c[w:] - c[:-w]  # e[t] = energy of x[t:t+w]


def _ncc_lag(x: np.ndarray, lag: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every t: NCC of x[t:t+w] with x[t+lag:t+lag+w], and both windows' energies."""
    n = x.shape[0] - lag - w + 1
    if n <= 0:
        z = np.zeros(0)
        return z, z, z
    prod = np.concatenate([[0.0], np.cumsum(x[:-lag] * x[lag:])])
    num = prod[w:w + n] - prod[:n]
    e = _win_energy(x, w)
    e1, e2 = e[:n], e[lag:lag + n]
    return num / np.sqrt(np.maximum(e1 * e2, 1e-20)), e1, e2


def frame_repeat(x: np.ndarray, *, frame_ms: float, lowest: float) -> list[tuple[float, float]]:
    """(time ms, NCC) of the frame repeats ``autortc.metrics.fingerprints.detect_frame_repeats`` finds."""
    return [(r.start_ms, r.ncc) for r in detect_frame_repeats(x, SR, frame_ms=frame_ms, min_ncc=lowest)]


def pitch_lock(x: np.ndarray, *, lowest: float, win_ms: float = 20.0, fade_db: float = 1.0) -> list[tuple[float, float]]:
    """(time ms, score) of 20 ms windows that repeat one pitch period twice (NCC at L and 2L) while fading."""
    w = int(SR * win_ms / 1000)
    loud = 10.0 ** (LOUD_DBFS / 10.0) * w
    best = np.zeros(0)
    for L in range(int(SR * 0.0025), int(SR * 0.015) + 1):
        n1, e1, _ = _ncc_lag(x, L, w)
        n2, _, e3 = _ncc_lag(x, 2 * L, w)
        m = n2.shape[0]
        if m <= 0:
            break
        both = np.minimum(n1[:m], n2)
        fading = 10 * np.log10(np.maximum(e1[:m], 1e-20) / np.maximum(e3, 1e-20)) >= fade_db
        sc = np.where((e1[:m] >= loud) & (e3 >= loud) & fading, both, 0.0)
        best = sc if best.size == 0 else np.maximum(best[:m], sc)
    return [(1000.0 * a / SR, float(best[a:b].max())) for a, b in _runs(best >= lowest)]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def inside_speech_packets(x48: np.ndarray, rng: np.random.Generator, n: int) -> list[int]:
    """Packets whose span and 20 ms on both sides are voiced (every 10 ms block >= -40 dBFS)."""
    blk = 480
    nb = x48.shape[0] // blk
    db = 10 * np.log10(np.maximum((x48[:nb * blk].reshape(nb, blk) ** 2).mean(1), 1e-20))
    ok = []
    for k in range(2, x48.shape[0] // FRAME_48K - 2):
        a, b = lost_span(k)
        lo, hi = (a - 960) // blk, (b + 960 + blk - 1) // blk
        if lo >= 0 and hi <= nb and (db[lo:hi] >= LOUD_DBFS).all():
            ok.append(k)
    if not ok:
        return []
    return sorted(rng.choice(ok, size=min(n, len(ok)), replace=False).tolist())


# family -> (events with a score, computed once at the lowest threshold; the thresholds tabled)
DETECTORS = {
    "frame_repeat 20 ms": (lambda x: frame_repeat(x, frame_ms=20.0, lowest=0.99), (0.99, 0.995, 0.999)),
    "frame_repeat 10 ms": (lambda x: frame_repeat(x, frame_ms=10.0, lowest=0.99), (0.99, 0.999)),
    "pitch_lock": (lambda x: pitch_lock(x, lowest=0.98), (0.98, 0.99, 0.995)),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--replies", type=int, default=12, help="agent copies used for the recall set")
    ap.add_argument("--per-reply", type=int, default=2, help="lost packets per reply (one at a time)")
    ap.add_argument("--seed", type=int, default=18)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    turns = sorted(d for run in args.runs for d in run.glob("b*-clean-*/*/") if (d / "post_rtc_reply.wav").is_file())
    heard = [to16k(*_mono(d / "post_rtc_reply.wav")) for d in turns]
    copies = [d for d in turns if (d / "pre_rtc.wav").is_file()]
    pick = sorted(rng.choice(len(copies), size=min(args.replies, len(copies)), replace=False).tolist())
    planted: dict[str, list[tuple[np.ndarray, tuple[float, float]]]] = {"plc": [], "repeat": []}
    controls: list[np.ndarray] = []
    for i in pick:
        x, sr = _mono(copies[i] / "pre_rtc.wav")
        x48 = resample(x, sr, 48000) if sr != 48000 else x
        y, _ = opus_roundtrip(x48, 48000)
        controls.append(to16k(y, 48000))
        for k in inside_speech_packets(x48, rng, args.per_reply):
            a, b = lost_span(k)
            for how in planted:
                z, _ = opus_roundtrip(x48, 48000, lost=(k,), conceal=how)
                planted[how].append((to16k(z, 48000), (1000.0 * a / 48000, 1000.0 * b / 48000)))
    print(f"recall set: {len(planted['plc'])} PLC-concealed and {len(planted['repeat'])} repeated packets in "
          f"{len(pick)} agent copies (libopus round trip); controls: the same {len(controls)} copies, no loss; "
          f"false-alarm set: {len(heard)} heard clean replies of {', '.join(r.name for r in args.runs)}\n")
    print("| detector | threshold | recall PLC | recall repeat | hits on clean round trips | false alarms on recorded clean replies |")
    print("|---|---|---|---|---|---|")
    for name, (det, thresholds) in DETECTORS.items():
        ev_planted = {how: [(det(z), span) for z, span in items] for how, items in planted.items()}
        ev_ctl = [det(z) for z in controls]
        ev_heard = [det(z) for z in heard]
        for thr in thresholds:
            rec = {how: sum(any(a - NEAR_MS <= t <= b + NEAR_MS for t, sc in ev if sc >= thr) for ev, (a, b) in evs)
                   for how, evs in ev_planted.items()}
            ctl = sum(any(sc >= thr for _, sc in ev) for ev in ev_ctl)
            fa = sum(any(sc >= thr for _, sc in ev) for ev in ev_heard)
            print(f"| {name} | {thr} | {rec['plc']}/{len(planted['plc'])} | {rec['repeat']}/{len(planted['repeat'])} | "
                  f"{ctl}/{len(controls)} | {fa}/{len(heard)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

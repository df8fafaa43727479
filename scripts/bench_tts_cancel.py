"""How long a reply's first TTS chunk waits for a dropped synthesis still inside piper.

LiveKit Agents drops a stale preflight (the user went on speaking) while the real reply is being
asked for. The dropped synthesis sees its cancel only when its current engine call returns (one
ONNX run per piper sentence: tens to hundreds of ms for the long later segments of a reply). This
bench plays that with the bundled agent's own adapter and voice (``LocalTTS`` over ``PiperTTS`` as
``system/agent/worker.py`` builds them): the story reply of ``rules.json`` is synthesized, dropped
``--after`` seconds after its first chunk (the close runs concurrently, as in the session), and the
same reply is asked for at once; the figure is that reply's request -> first chunk (ms, wall clock,
this machine). Baseline: the same request with nothing dropped before it.

Usage: ``.venv/bin/python scripts/bench_tts_cancel.py [--engines 1 2] [--after 0.1 0.3 0.6] [--n 5]``.
Session 15 (2-core EPYC, idle), median of 5 (ms), nothing dropped / dropped 0.1 / 0.3 / 0.6 s after
its first chunk: one engine, the dropped call running on: 79 / 398 / 126 / 154; one engine, the
dropped call aborted (``StreamingTTS.abort``): 83 / 80 / 107 / 104; two engines with the abort:
85 / 78 / 81 / 108.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from system.agent.tts_adapter import LocalTTS  # noqa: E402
from system.agent.worker import CONFIG, Models  # noqa: E402


async def _first_chunk_s(tts: LocalTTS, text: str) -> tuple[object, float]:
    t0 = time.monotonic()
    stream = tts.synthesize(text)
    async for _ in stream:
        return stream, time.monotonic() - t0
    raise RuntimeError(f"no audio for {text!r}")


async def _bench(engines: list, after: list[float | None], n: int, text: str) -> None:
    tts = LocalTTS(engine=engines, ahead_nice=CONFIG.tts_ahead_nice)
    warm, _ = await _first_chunk_s(tts, "Hello there.")
    await warm.aclose()  # type: ignore[attr-defined]
    for wait in after:
        ms = []
        for _ in range(n):
            closing = None
            if wait is not None:
                stale, _ = await _first_chunk_s(tts, text)
                await asyncio.sleep(wait)
                closing = asyncio.ensure_future(stale.aclose())  # type: ignore[attr-defined]
            stream, dt = await _first_chunk_s(tts, text)
            ms.append(dt * 1000)
            await stream.aclose()  # type: ignore[attr-defined]
            if closing is not None:
                await closing
            await asyncio.sleep(1.0)  # the previous look-ahead is over before the next try
        label = "nothing dropped" if wait is None else f"dropped {wait:.1f} s after its first chunk"
        print(f"engines={len(engines)}  {label:38s} first chunk ms: median {statistics.median(ms):6.1f}  "
              f"max {max(ms):6.1f}  {[round(x) for x in ms]}", flush=True)
    await tts.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--engines", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--after", type=float, nargs="+", default=[0.1, 0.3, 0.6])
    ap.add_argument("--n", type=int, default=5)
    args = ap.parse_args()
    models = Models.load()
    text = next(r.reply for r in models.rules.rules if "dragon" in r.match_any)
    pool = models.tts
    while len(pool) < max(args.engines):
        pool += Models.load().tts
    for n_engines in args.engines:
        asyncio.run(_bench(pool[:n_engines], [None, *args.after], args.n, text))


if __name__ == "__main__":
    main()

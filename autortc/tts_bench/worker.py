"""The bench's engine process: ``python -m autortc.tts_bench.worker JOB.json``.

Started by :mod:`autortc.tts_bench.bench` in its own process group.  Loads the
engine once, warms it up, then synthesizes every sentence ``repeats`` times
(repeat-major order) and writes one JSON line per event to stdout:

* ``{"event": "ready", "engine": {...describe()}, "sample_rate": 22050, "chunk_samples": 441,
  "load_s": 1.2, "warmup_ms": 80.0}``
* ``{"event": "result", "id": "short_01", "repeat": 0, "sha256": "...", "n_samples": 28224,
  "segments": 1, "chunk_samples": [441, ...], "chunk_t": [0.051, ...], "segment_t": [[0.0, 0.05]],
  "t_end": 0.052, "wav": "audio/short_01.wav" | null}`` — times in seconds after the call
  (``time.monotonic`` in this process); the WAV is written for repeat 0 and for any
  repeat whose PCM differs from repeat 0 (``<id>.r<k>.wav``).
* ``{"event": "done"}``, or ``{"event": "error", "message": "..."}`` then exit status 1.

The worker exits by itself when its stdin reaches EOF (its parent died).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("autortc.tts_bench.worker")

# Long enough (and with numbers) that onnxruntime sizes its buffers for the set's longest
# segments before anything is timed; otherwise each sentence's first call pays for it.
_WARMUP_TEXT = ("Warming up the voice before the timed runs start. On March 3rd, 2027, at 10:45, "
                "order 58031 weighed 2.75 kilograms and cost $1,284.50, which is fine; thanks for waiting, "
                "and have a good day.")


_events: Any = sys.stdout


def _claim_stdout_for_events() -> None:
    """Keep the real stdout for events only; anything else printing to fd 1 (an engine,
    a native library) lands on stderr, i.e. in the worker log, instead of the protocol."""
    global _events
    sys.stdout.flush()
    _events = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)


def _emit(event: dict[str, Any]) -> None:
    _events.write(json.dumps(event, separators=(",", ":")) + "\n")
    _events.flush()


def _exit_when_orphaned() -> None:
    def watch() -> None:
        sys.stdin.read()  # returns at EOF: the parent closed the pipe or died
        os._exit(3)

    threading.Thread(target=watch, name="tts-worker-parent-watch", daemon=True).start()


def run_job(job: dict[str, Any]) -> None:
    """Synthesize the job and emit events (see module docstring)."""
    import soundfile as sf

    from autortc.tts_bench.metrics import pcm_sha256
    from system.tts import load_engine

    audio_dir = Path(job["audio_dir"])
    audio_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    tts = load_engine(job["engine"], **job.get("options", {}))
    load_s = time.monotonic() - t0
    segment_log: list[list[float]] = []
    impl = tts._synthesize_segment
    call_t0 = [0.0]

    def timed_segment(text: str, options: Any) -> Iterator[np.ndarray]:
        entry = [time.monotonic() - call_t0[0], float("nan")]
        segment_log.append(entry)
        yield from impl(text, options)
        entry[1] = time.monotonic() - call_t0[0]

    # instance attribute shadows the method: StreamingTTS calls self._synthesize_segment
    tts._synthesize_segment = timed_segment  # type: ignore[method-assign]

    t = time.monotonic()
    tts.synthesize(job.get("warmup_text") or _WARMUP_TEXT)
    warmup_ms = (time.monotonic() - t) * 1000.0
    _emit({"event": "ready", "engine": tts.describe(), "sample_rate": tts.sample_rate,
           "chunk_samples": tts.chunk_samples(), "load_s": load_s, "warmup_ms": warmup_ms})

    first_hash: dict[str, str] = {}
    sr = tts.sample_rate
    for repeat in range(int(job["repeats"])):
        for sentence in job["sentences"]:
            sid, text = sentence["id"], sentence["text"]
            segment_log.clear()
            sizes: list[int] = []
            times: list[float] = []
            chunks: list[np.ndarray] = []
            call_t0[0] = time.monotonic()
            for chunk in tts.synthesize_stream(text):
                times.append(time.monotonic() - call_t0[0])
                sizes.append(int(chunk.shape[0]))
                chunks.append(chunk)
            t_end = time.monotonic() - call_t0[0]
            pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
            digest = pcm_sha256(pcm)
            wav: str | None = None
            if repeat == 0 or digest != first_hash.get(sid):
                name = f"{sid}.wav" if repeat == 0 else f"{sid}.r{repeat}.wav"
                sf.write(audio_dir / name, pcm, sr, subtype="PCM_16")
                wav = name
            first_hash.setdefault(sid, digest)
            _emit({"event": "result", "id": sid, "repeat": repeat, "sha256": digest,
                   "n_samples": int(pcm.shape[0]), "segments": len(segment_log),
                   "chunk_samples": sizes, "chunk_t": [round(x, 6) for x in times],
                   "segment_t": [[round(a, 6), round(b, 6)] for a, b in segment_log],
                   "t_end": t_end, "wav": wav})
    tts.close()
    _emit({"event": "done"})


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=os.environ.get("AUTORTC_LOG_LEVEL", "INFO"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if len(args) != 1:
        print("usage: python -m autortc.tts_bench.worker JOB.json", file=sys.stderr)
        return 2
    _exit_when_orphaned()
    _claim_stdout_for_events()
    try:
        job = json.loads(Path(args[0]).read_text(encoding="utf-8"))
        run_job(job)
    except Exception as exc:  # reported to the parent as an event, details in the log
        logger.exception("tts worker failed")
        _emit({"event": "error", "message": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

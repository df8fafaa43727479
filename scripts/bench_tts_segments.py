"""How the agent's first TTS segment limit trades first-chunk time against what piper says.

For each segmenter setting (first segment limit x growth of the next limits), every reply of
``system/agent/rules.json`` is synthesized as the bundled agent does (one ``synthesize_stream`` call
per reply, piper with 1 thread and a 50 ms lead cap), then:

* first chunk: wall time of piper's first segment (ms, this machine, no other load);
* heard: the whole reply's own audio transcribed by the instrument's STT (faster-whisper, not the
  segmenter or piper: the reply text is the truth) -> WER over all replies, and each reply whose
  WER is over 5 % with its segments.

Usage: ``.venv/bin/python scripts/bench_tts_segments.py [24x2 16x2 16x3 ...]`` (default: those three).
Session 10's figures are in system/agent/config.py (``tts_first_segment_chars``).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from pathlib import Path

import jiwer
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from system.agent.stt_whisper import WhisperOptions, WhisperTranscriber  # noqa: E402
from system.tts.piper_engine import PiperOptions, PiperTTS  # noqa: E402
from system.tts.segmenter import SegmenterOptions, segment_text  # noqa: E402


def _norm(text: str) -> str:
    # whisper writes numbers as digits; the replies spell them
    text = text.lower()
    for digit, word in (("20", "twenty"), ("9", "nine"), ("5", "five")):
        text = re.sub(rf"\b{digit}\b", word, text)
    return " ".join(re.sub(r"[^a-z' ]", " ", text).split())


def main(settings: list[str]) -> None:
    logging.disable(logging.INFO)
    rules = json.loads((ROOT / "system/agent/rules.json").read_text())
    replies = [(r["id"], r["reply"]) for r in rules["rules"]]
    stt = WhisperTranscriber(WhisperOptions())
    for setting in settings:
        try:
            first, growth = setting.split("x")
            opts = SegmenterOptions(first_segment_max_chars=int(first), segment_growth=float(growth))
        except ValueError as exc:
            raise SystemExit(f"setting {setting!r}: expected <first chars>x<growth>, e.g. 16x3 ({exc})") from exc
        tts = PiperTTS(PiperOptions(intra_op_threads=1, max_lead_ms=50.0, segmenter=opts))
        refs, hyps, firsts = [], [], []
        for rid, text in replies:
            segments = segment_text(text, opts)
            t0 = time.perf_counter()
            for _ in tts.synthesize_stream(segments[0]):
                pass
            firsts.append(time.perf_counter() - t0)
            audio = np.concatenate(list(tts.synthesize_stream(text))).astype(np.float32) / 32768
            heard = stt.transcribe(audio, tts.sample_rate)
            refs.append(_norm(text))
            hyps.append(_norm(heard) or "-")
            wer = jiwer.wer(refs[-1], hyps[-1])
            if wer > 0.05:
                print(f"  {setting} {rid}: WER {wer:.2f} {segments[:3]} -> {heard!r}", flush=True)
        print(f"{setting}: WER {jiwer.wer(refs, hyps):.3f}, first chunk median {1000 * np.median(firsts):.0f} ms, "
              f"max {1000 * max(firsts):.0f} ms ({len(replies)} replies)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["24x2", "16x2", "16x3"])

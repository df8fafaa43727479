"""Replay case WAVs through the bundled agent's VAD, STT and turn hold, offline (no stack).

Each WAV goes through an Opus round trip (as the agent receives it), gets 2.5 s of silence
after it (the runner keeps the track open), and is pushed as 10 ms frames at 48 kHz into the
agent's own ``VoicedDurationVAD(inference.VAD)`` and ``WhisperStreamingSTT`` (CTranslate2
tiny.en, preflight decode, :func:`system.agent.turn_text.hold_reason`). Printed per WAV: the
VAD's utterances (end time minus the case's ``speech_end_ms``), LiveKit's local audio
end-of-turn model P(turn ended) on the last 1.2 s at 0/64/128/224 ms of silence, the held
finals and the finals the session would get.

    .venv/bin/python scripts/replay_turns.py cases/wavs/endpoint_pause_in_turn.wav ...
    .venv/bin/python scripts/replay_turns.py --min-silence 0.16 cases/wavs/rate_slow_speaker.wav

The VAD, preflight and turn hold take the agent's settings (``AgentConfig.from_env()``, as the worker).
Frames are pushed faster than real time, so a hold on the text is set long (a held final nobody
continues is released at the end of the input, which is printed); a pausing speaker's hold counts
its silence in the audio (:class:`system.agent.stt_whisper.QuietCount`), so it decides as live.
A WAV the agent received (a run's ``agent_input.wav``) is already past Opus: ``--no-opus``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SR = 48000
_LINES: list[str] = []  # the current WAV's report, in event order (the STT's hold log lines too)


class _ToLines(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if "ct2 whisper" not in record.getMessage():
            _LINES.append(f"           {record.getMessage()}")


def _speech_ends() -> dict[str, float]:
    cases = json.loads((ROOT / "cases" / "all_cases.json").read_text())["cases"]
    return {Path(s["wav"]).name: s["speech_end_ms"] / 1000 for c in cases for s in c["segments"]}


async def replay(path: Path, *, transcriber, eot, min_silence: float, opus: bool, hold: bool) -> list[str]:
    from livekit import rtc
    from livekit.agents import stt, vad as lvad

    from autortc.audio import resample
    from autortc.testing.opus import opus_roundtrip
    from system.agent.config import AgentConfig
    from system.agent.stt_whisper import WhisperStreamingSTT, pausing_hold_for
    from system.agent.turn_text import hold_reason
    from system.agent.vad_voiced import agent_vad

    x, sr = sf.read(str(path), dtype="float32")
    if x.ndim > 1:
        x = x.mean(axis=1)
    x = np.concatenate([x, np.zeros(int(2.5 * sr), np.float32)])
    if opus:
        x, sr = opus_roundtrip(x, sr)
    if sr != SR:
        x = resample(x, sr, SR)
    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
    pcm16 = np.clip(np.round(resample(x, SR, 16000) * 32767), -32768, 32767).astype(np.int16)
    config = AgentConfig.from_env()  # the worker's settings (AUTORTC_AGENT_* overrides)
    v = agent_vad(config, min_silence_s=min_silence)
    engine = WhisperStreamingSTT(
        transcriber=transcriber, vad=v, shared_vad=True, preflight_silence_s=config.stt_preflight_silence_s,
        preflight_by_level=config.stt_preflight_by_level, hold_reason=hold_reason if hold else None, hold_s=3600.0,
        pausing_hold=pausing_hold_for(config) if hold else None)
    session_vad, st = v.stream(), engine.stream()
    lines = _LINES
    lines.clear()
    end_of_case = _speech_ends().get(path.name)

    async def vad_events() -> None:
        async for e in session_vad:
            if e.type == lvad.VADEventType.START_OF_SPEECH:
                lines.append(f"  {e.timestamp:6.3f} s  start of speech")
            elif e.type == lvad.VADEventType.END_OF_SPEECH:
                end = int(e.timestamp * 16000)
                ps = [eot.predict(pcm16[max(0, k - 19200):k]) for k in
                      (end - int(b * 16000) for b in (0.224, 0.160, 0.096, 0.0))]
                rel = f", {1000 * (e.timestamp - end_of_case):+.0f} ms after the case's speech end" if end_of_case else ""
                lines.append(f"  {e.timestamp:6.3f} s  end of speech{rel}; audio EOT P at 0/64/128/224 ms silence "
                             + " ".join(f"{p:.2f}" for p in ps))

    async def stt_events() -> None:
        async for e in st:
            if e.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
                lines.append(f"           FINAL {e.alternatives[0].text!r}")

    tasks = [asyncio.create_task(vad_events()), asyncio.create_task(stt_events())]
    n = SR // 100
    for i in range(0, pcm.size - n + 1, n):
        f = rtc.AudioFrame(pcm[i:i + n].tobytes(), SR, 1, n)
        session_vad.push_frame(f)
        st.push_frame(f)
        if i % (50 * n) == 0:
            await asyncio.sleep(0)  # let the VAD and STT tasks run
    session_vad.end_input()
    await tasks[0]
    st.end_input()
    await tasks[1]
    await engine.aclose()
    return list(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wavs", nargs="+", type=Path)
    ap.add_argument("--min-silence", type=float, default=0.2, help="VAD min_silence_duration (s), the agent's default 0.2")
    ap.add_argument("--no-opus", action="store_true")
    ap.add_argument("--no-hold", action="store_true", help="answer every utterance (the agent before the turn hold)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # LiveKit's "VAD inference is slower than realtime": frames come fast
    stt_log = logging.getLogger("autortc.agent.stt")
    stt_log.setLevel(logging.INFO)
    stt_log.addHandler(_ToLines())
    stt_log.propagate = False

    from livekit.local_inference import EOT

    from system.agent.stt_ct2 import ShortWindowTranscriber

    transcriber, eot = ShortWindowTranscriber(), EOT()
    for w in args.wavs:
        print(f"== {w}", flush=True)
        for line in asyncio.run(replay(w, transcriber=transcriber, eot=eot, min_silence=args.min_silence,
                                       opus=not args.no_opus, hold=not args.no_hold)):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

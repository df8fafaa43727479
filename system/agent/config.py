"""Settings of the bundled agent, from environment variables so the stack CLI can set them."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

AGENT_NAME = "autortc-agent"


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """Turn-taking and model settings. Env var ``AUTORTC_AGENT_<FIELD>`` overrides each field.

    Sources: the seed tuned the VAD silence window 550 → 200 ms. Barge-in (issue 19): the
    session's VAD counts voiced frames only (:mod:`system.agent.vad_voiced`) and the agent
    pauses once the user has spoken ``interruption_min_duration_s`` over it. The bundled
    "Uh-huh" reaches 0.32 s voiced offline and, through WebRTC, more than 0.34 s in 1 of 3
    runs (a false yield at 0.34); "Wait, please stop talking." has only 0.29 s voiced before
    its comma pause and passes 0.40 s ~0.62 s after its onset. 0.40 s leaves the backchannel
    two 32 ms windows of margin; shorter overlapping utterances get no final transcript (it
    would interrupt).
    No words are needed (``interruption_min_words`` 0): the old 3-word check waited ~1.8 s
    for interim transcripts. A pause with no final transcript resumes after
    ``false_interruption_timeout_s`` (LiveKit Agents' ``resume_false_interruption``).
    STT: ``ct2`` (short-window CTranslate2, see :mod:`system.agent.stt_ct2`) or
    ``faster-whisper`` (the 30 s-window path the agent used before).
    """

    agent_name: str = AGENT_NAME
    vad_min_silence_s: float = 0.2
    vad_activation_threshold: float = 0.5
    # speech ends when the probability falls below this; LiveKit's default, activation - 0.15.
    # 0.5 dated the end of speech 0-32 ms earlier on 6 of the 18 case WAVs offline (after Opus),
    # but live the slow speaker's "a cup | of tea" was split in 3 of the 4 suite runs with it (e2
    # and e4, both also with 10 ms input frames, and e6) and in 0 of 2 without (base1, e1), giving
    # a talk-over or a misheard turn; docs/agent-latency.md
    vad_deactivation_threshold: float = 0.35
    vad_min_speech_s: float = 0.05
    # frames of the user's audio handed to the VAD and STT (LiveKit Agents' default 50 ms). 10 ms
    # dated the end of speech ~16 ms earlier (P50) but cost +22 % agent CPU (runs e4 vs e5 in
    # docs/agent-latency.md), and the EoT -> first audio of that run was no better. Session 11, with
    # the preflight keyed to the level (checked once per frame): 20 ms, two pairs of suite runs one
    # after another, EoT -> first audio P50 / P95 (14 turns) 509 / 583 and 490 / 586 ms at 50 ms
    # (x1base, x3base), 483 / 539 and 487 / 559 ms at 20 ms (x2f20, x4f20); the TTS starts ~65-75 ms
    # before the end of turn at the median either way, the preflight a frame sooner. Agent CPU over
    # the turns (cpu_s_process) +9 %
    input_frame_ms: int = 20
    endpointing_min_delay_s: float = 0.0
    endpointing_max_delay_s: float = 3.0
    interruption_min_duration_s: float = 0.40
    interruption_min_words: int = 0
    false_interruption_timeout_s: float = 1.0
    resume_false_interruption: bool = True
    preemptive_generation: bool = True
    # True starts TTS on a preflight transcript, before the turn commits. Session 4 (run h2) measured it
    # worse (synthesis of replies to dropped preflights, TTFA P95 851 ms); session 9, with the preflight
    # keyed to the audio's level (stt_preflight_by_level), the same-hour suite runs gave EoT -> first
    # audio P50 / P95 645 / 780 ms (neither), 629 / 736 (this alone), 561 / 733 (both); docs/agent-latency.md
    preemptive_tts: bool = True
    turn_detector: str = "vad"  # "vad" or "v1-mini" (LiveKit's local audio end-of-turn model)
    # an utterance whose transcript does not sound like the end of a turn ("I have a question.",
    # "I w- want to...", "a cup of") gets its final held this long after its end of speech; speech
    # within it is decoded with it (system/agent/turn_text.py). 0 = answer every utterance.
    # 2.0 s: the stutter case pauses 1.2 s inside its turn.
    turn_hold_s: float = 2.0
    # the hold when the text ends on a comma (a pause inside a clause); a last word such as "to"
    # or "of" gets turn_hold_s (run h3: 0.6 s answered the stutter case's "I want to" in its pause)
    turn_short_hold_s: float = 0.6
    # a turn whose final was sent stays open until the agent is heard, at most this long after its
    # end of speech: speech in that time is decoded with it (system/agent/stt_whisper.py reopen_s).
    # Run b0: the slow speaker's "How do I make a cup?" | "of tea?" answered "Sorry, I did not catch
    # that" to "of t."; 2.0 s as turn_hold_s. 0 = off
    turn_reopen_s: float = 2.0
    # a speaker who pauses inside a turn: when at least two pauses inside the utterance (10 ms windows
    # 25 dB under its speech level) last >= turn_pausing_min_pause_s, its final is held until the
    # silence after it is turn_pausing_factor x its longest pause (capped at turn_pausing_max_hold_s).
    # Source (case WAVs, system/agent/stt_whisper.py LevelTrack): fluent turns pause <= 180 ms inside
    # (commas: long_question 180, numbers 160) and at most once over 150 ms; the slow speaker
    # 310 / 300 / 230 / 230 ms (live, after Opus: longest 380 ms). Session 22 (run d1, a faster hour:
    # reply heard 42 ms after the end of turn): "How do I make a cup?" was answered in the ~310 ms
    # pause before "of tea", too soon for reopen_s to catch it. Run d6 (8 x rate_slow_speaker, factor
    # 1.5): held "How do I make a cup?" 3 times, all then decoded with "of tea" (no talk-over); the
    # cost, the whole turn held once: EoT -> first audio 710 ms. 1.25 x 380 ms = 475 ms still
    # outlasts the 310 ms pause. Session 26 (run h1j1, talk-over 342 ms): the held "How do I make a
    # cup" resumed with "of" alone, which has no pause inside, and the decode of both read "How do I
    # make a cup?" again, so it went in the 350 ms pause before "tea"; now speech that resumes a held
    # turn without adding a word keeps the held pauses, and the silence is counted in the audio by the
    # level (system/agent/stt_whisper.py QuietCount), not on a clock the VAD's late start on the next
    # word can lose to. 0 = off
    turn_pausing_min_pause_s: float = 0.2
    turn_pausing_factor: float = 1.25
    turn_pausing_max_hold_s: float = 0.6
    # barge-in word check: speech over the agent's reply is decoded at this much voiced speech and
    # a stop word in it interrupts at once (0 = off; the duration rule above still applies)
    stop_check_voiced_s: float = 0.2
    # the words of rules.json's "stop" rule, and "way": whisper's reading of "Wait" cut at 0.22 s voiced
    # ("Wai-"). Session 14, slower machine: without it the recheck's "wait" came ~0.1 s after a first check's
    # "way" and the stop fell after the story's comma pause (5 of 12 clean barge-ins at 509-687 ms,
    # fb-s14-verify); with it, barge-in bench stop time P50 258 / max 495 ms, 0 false yields in 20
    # (bench-20261205-223223-*: the backchannels' checks read "uh", "uh-huh", "Hahaha", "Tada!", "her")
    stop_words: str = "wait stop enough way"
    # a check without a stop word is repeated after this much more voiced speech, while the
    # utterance is under interruption_min_duration_s (session 3: at 0.20 s "wait" was found in 5
    # of 10 barge-ins; the others yielded only by duration, 639-783 ms stop time). Session 11: 0.05
    # (the recheck at 0.29 s voiced instead of 0.35 s) read the "way" of a first check cut inside
    # "Wait" as "Wait." ~65 ms sooner: barge-in bench stop time P50 / P95 / max 401 / 594 / 594 ms
    # with 0.1 (bench-20261204-214909-*), 259 / 427 / 557 ms with 0.05 (bench-20261204-220150-*),
    # 0 false yields in 20 both; the backchannel's rechecks read "uh-uh", "Tada!", "other"
    stop_recheck_s: float = 0.05
    # model sets (VAD, STT, TTS) loaded before the worker registers: the thread executor keeps 2
    # warm idle jobs beside the live ones, so `run_suite.sh --jobs 2` needs 4, and 5-6 while a
    # finished job hands its set back. A set loaded later is ~1-2 s of GIL-heavy work while other
    # rooms speak (run base1: a 276 ms underrun heard as two dropouts in the room speaking then)
    preload_models: int = 6
    rules_path: str = str(Path(__file__).with_name("rules.json"))
    llm: str = "scripted"  # "scripted" (rules.json) or "transformers" (needs the `llm` extra and llm_model)
    # chunks of the scripted LLM's reply: "word" or "sentence" (system/agent/scripted_llm.py reply_chunks).
    # Word by word, the reply passed LiveKit Agents' text transforms and the TTS adapter's sentence
    # tokenizer one chunk per loop turn: end of turn -> first TTS request P50 33-39 ms (runs b1, v5);
    # by sentence 16 ms (v6), the same sentences reaching the TTS
    llm_chunk: str = "sentence"
    llm_model: str = ""  # a local folder with a causal LM and its tokenizer (nothing is downloaded)
    tts_length_scale: float = 1.0
    tts_threads: int = 1  # onnxruntime intra-op threads of piper (0 = all cores)
    # first TTS segment (spoken chars). Piper's time is ~90 ms per second of audio it makes
    # (RTF ~0.09, 1 thread, this machine): 24 chars ~110-140 ms, 40 chars ~140-280 ms. Same-session
    # suite runs at jobs 1 (docs/agent-latency.md, session 4): TTS request -> first chunk P50 149
    # (x24) vs 245 ms (x40). The "dropouts" once seen with 24 were piper's own ~420 ms of silence
    # before a segment starting with "f" (now capped, tts_max_lead_ms), and a cut after
    # "the" misheard (cuts now back off over weak last words, system/tts/segmenter.py)
    # Session 10: 16 chars with the next limits x3 (48, 144): piper's first chunk of the rules.json
    # replies median 68 / max 148 ms offline (idle, 1 thread) vs 92 / 161 ms at 24 chars x2, and the
    # replies' own audio transcribed back (the instrument's faster-whisper) at WER 1.4 % vs 2.8 % (24 x2
    # cuts "Your alarm is set | for tomorrow", heard "You're a alarm asset"). 16 with x2 (limit 32 next)
    # cut the sibilant reply before "seashells", which piper then says "T-shills" (4 of 4 live runs):
    # scripts/bench_tts_segments.py prints all three
    tts_first_segment_chars: int = 16
    tts_segment_growth: float = 3.0
    # each piper sentence starts with at most this much silence (PiperOptions.max_lead_ms): the
    # bundled voice puts ~420 ms before a sentence beginning with "f" (session 4, run t24: a 585 ms
    # hole in the agent's own audio); piper's usual lead is 30-50 ms. 0 = piper's own lead.
    tts_max_lead_ms: float = 50.0
    # a reply reaches the room output only once this much of it is ready (system/agent/start_cushion.py):
    # its first frames came 6-71 ms apart at the reply's start and the source ran dry between them
    # (runs rx4/rx8/rx9: 15-25 ms holes 25-110 ms into replies). 150 ms = four 38.7 ms frames; 70 ms
    # (two) left one hole in rx10, 150 ms none in rx11/rx12. 0 = off
    tts_start_cushion_ms: float = 150.0
    # nice value of the thread that synthesizes a reply after its first chunk (system/agent/compute_priority.py):
    # that look-ahead has the playback's slack, so it yields to the decodes (a barge-in's word check),
    # the first chunks and the media threads. 0 = not niced
    tts_ahead_nice: int = 10
    # piper engines per model set (system/agent/tts_adapter.py): a dropped preflight's synthesis kept
    # its engine until the current ONNX call returned, and the next reply's first chunk waited for it
    # (median 126-398 ms vs 79, scripts/bench_tts_cancel.py; turn_barge_in_stop's 467/554 ms in suite
    # runs rs14b/rs14c). The drop now aborts the ONNX run (80-107 ms with one engine); a second
    # engine also spares the next reply the dropped segment's phonemizing (78-108 ms). One voice
    # in memory each
    tts_engines: int = 2
    stt: str = "ct2"  # "ct2" or "faster-whisper"
    whisper_threads: int = 1
    # decode once the user has been silent this long (VAD ends the turn at vad_min_silence_s);
    # 0 = decode only at the end of speech
    stt_preflight_silence_s: float = 0.064
    # also start the preflight once the audio's last stt_preflight_silence_s are 25 dB under the speech
    # (system/agent/stt_whisper.py LevelTrack), not only once the VAD's probability has fallen
    stt_preflight_by_level: bool = True

    @classmethod
    def from_env(cls) -> AgentConfig:
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = os.environ.get(f"AUTORTC_AGENT_{f.name.upper()}")
            if raw is None:
                continue
            try:
                if f.type in ("bool", bool):
                    values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
                elif f.type in ("float", float):
                    values[f.name] = float(raw)
                elif f.type in ("int", int):
                    values[f.name] = int(raw)
                else:
                    values[f.name] = raw
            except ValueError as exc:
                raise ValueError(f"AUTORTC_AGENT_{f.name.upper()}={raw!r}: expected {f.type}") from exc
        return cls(**values)  # type: ignore[arg-type]

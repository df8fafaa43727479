"""The bundled agent's STT and barge-in pieces, against planted truth.

* ShortWindowTranscriber: piper speaks known sentences (the text is the truth, the agent's STT
  never sees it); the short-window decode must give them back.
* VoicedDurationVAD: a scripted inner VAD with known per-window probabilities; speech_duration
  must count the windows at/above the activation threshold only.
* WhisperStreamingSTT: an utterance over the agent's speech shorter than the interruption
  threshold gets no final (a final interrupts the agent); the same utterance with the agent
  silent, or a long one over it, does; a speculative decode during the end-of-speech silence
  becomes the final without a second decode.
"""

from __future__ import annotations

import asyncio
import re

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import stt, vad

pytestmark = pytest.mark.unit

WIN = 0.032


@pytest.fixture(scope="module")
def piper():
    from system.tts.piper_engine import PiperTTS

    return PiperTTS()


@pytest.fixture(scope="module")
def short_window():
    from system.agent.stt_ct2 import ShortWindowTranscriber

    return ShortWindowTranscriber()


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


@pytest.mark.parametrize("sentence", [
    "What is the weather like today?",
    "Please tell me a long story about a dragon and a sailor who got lost at sea.",
])
def test_short_window_transcribes_piper_speech(piper, short_window, sentence):
    import jiwer

    pcm = piper.synthesize(sentence).astype(np.float32) / 32768.0
    text = short_window.transcribe(pcm, piper.sample_rate)
    wer = jiwer.wer(" ".join(_words(sentence)), " ".join(_words(text)) or "x")
    print(f"{sentence!r} -> {text!r} WER {wer:.2f}, window {short_window.window_s(pcm.size / piper.sample_rate):.1f} s")
    assert wer <= 0.2, text
    assert short_window.cpu_seconds > 0


def test_short_window_silence_and_window_rule(short_window):
    assert short_window.transcribe(np.zeros(0, np.float32), 16000) == ""
    assert short_window.window_s(1.5) == 8.0  # the floor (below ~6 s the decoder loops)
    assert short_window.window_s(12.0) == 14.0  # utterance + 2 s


def test_short_window_options_reject_windows_that_loop():
    from system.agent.stt_ct2 import ShortWindowOptions

    with pytest.raises(ValueError, match="min_window_s"):
        ShortWindowOptions(min_window_s=4.0)


def _frame(n: int = 512, sr: int = 16000) -> rtc.AudioFrame:
    return rtc.AudioFrame(b"\0\0" * n, sr, 1, n)


class _ScriptedVAD(vad.VAD):
    """Emits INFERENCE_DONE per window, speaking or not (speech_duration grows while speaking, silence
    included), then START after the first window >= 0.5 and END after ``end_after`` quiet windows, in
    that order, as LiveKit's silero stream does (``livekit/agents/inference/vad.py``)."""

    def __init__(self, probs: list[float], end_after: int = 6) -> None:
        super().__init__(capabilities=vad.VADCapabilities(update_interval=WIN))
        self.probs, self.end_after = probs, end_after

    def stream(self) -> vad.VADStream:
        return _ScriptedStream(self)


class _ScriptedStream(vad.VADStream):
    async def _main_task(self) -> None:
        owner: _ScriptedVAD = self._vad  # type: ignore[assignment]
        speaking, sd, quiet = False, 0.0, 0.0
        frames: list[rtc.AudioFrame] = []
        i = 0
        async for item in self._input_ch:
            if not isinstance(item, rtc.AudioFrame) or i >= len(owner.probs):
                continue
            p = owner.probs[i]
            i += 1
            frames.append(item)

            def ev(t: vad.VADEventType, **kw) -> vad.VADEvent:
                base = dict(type=t, samples_index=i * 512, timestamp=i * WIN, speech_duration=sd,
                            silence_duration=quiet, frames=[item], probability=p, speaking=speaking,
                            raw_accumulated_silence=quiet)
                base.update(kw)
                return vad.VADEvent(**base)

            if speaking:
                sd += WIN
                self._event_ch.send_nowait(ev(vad.VADEventType.INFERENCE_DONE))
                quiet = 0.0 if p >= 0.5 else quiet + WIN
                if quiet >= owner.end_after * WIN:
                    speaking = False
                    self._event_ch.send_nowait(ev(vad.VADEventType.END_OF_SPEECH, frames=list(frames)))
                    sd = 0.0  # silero resets it at END: the events after carry 0
            else:
                self._event_ch.send_nowait(ev(vad.VADEventType.INFERENCE_DONE))
            if not speaking and p >= 0.5:
                speaking, sd, quiet = True, WIN, 0.0
                frames = [item]
                self._event_ch.send_nowait(ev(vad.VADEventType.START_OF_SPEECH, speech_duration=WIN))


async def _vad_events(v: vad.VAD, n: int) -> list[vad.VADEvent]:
    s = v.stream()
    for _ in range(n):
        s.push_frame(_frame())
    s.end_input()
    return [e async for e in s]


def test_voiced_vad_counts_voiced_windows_only():
    from system.agent.vad_voiced import VoicedDurationVAD

    # 8 voiced windows, then 6 quiet ones until END: the inner speech_duration reaches 14 windows
    probs = [0.9] * 8 + [0.1] * 6 + [0.0] * 4
    inner_events = asyncio.run(_vad_events(_ScriptedVAD(probs), len(probs)))
    seen: list[vad.VADEvent] = []
    wrapped = VoicedDurationVAD(_ScriptedVAD(probs), activation_threshold=0.5)
    unsubscribe = wrapped.subscribe(seen.append)
    events = asyncio.run(_vad_events(wrapped, len(probs)))
    unsubscribe()
    inner_max = max(e.speech_duration for e in inner_events if e.type == vad.VADEventType.INFERENCE_DONE)
    voiced_max = max(e.speech_duration for e in events if e.type == vad.VADEventType.INFERENCE_DONE)
    assert inner_max == pytest.approx(14 * WIN)
    assert voiced_max == pytest.approx(8 * WIN)
    assert [e.type for e in events] == [e.type for e in inner_events] == [e.type for e in seen]


def test_a_pooled_vad_drops_the_subscriptions_a_closed_session_left():
    from system.agent.vad_voiced import VoicedDurationVAD

    probs = [0.9] * 4 + [0.0] * 8
    v = VoicedDurationVAD(_ScriptedVAD(probs), activation_threshold=0.5)
    stale: list[vad.VADEvent] = []
    v.subscribe(stale.append)  # a stream that never unsubscribed (never closed)
    v.subscribe(stale.append)
    assert v.drop_subscribers() == 2
    asyncio.run(_vad_events(v, len(probs)))  # the next session on the same pooled VAD
    assert stale == [] and v.drop_subscribers() == 0


class _FakeTranscriber:
    def __init__(self, text: str = "wait please stop") -> None:
        self.text, self.calls = text, 0

    def transcribe(self, audio: np.ndarray, sr: int) -> str:
        self.calls += 1
        return self.text


async def _stt_events(probs: list[float], *, agent_speaking: bool, preflight: float | None = None):
    from system.agent.stt_whisper import WhisperStreamingSTT
    from system.agent.vad_voiced import VoicedDurationVAD

    v = VoicedDurationVAD(_ScriptedVAD(probs), activation_threshold=0.5)
    tr = _FakeTranscriber()
    engine = WhisperStreamingSTT(transcriber=tr, vad=v, agent_speaking=lambda: agent_speaking,
                                 drop_overlap_shorter_s=0.40, shared_vad=True, preflight_silence_s=preflight)
    out = await _drive(engine, v, len(probs))  # the session's VAD stream; the STT listens to its events
    return [e.type for e in out], tr.calls


def test_short_speech_over_the_agent_gets_no_final():
    backchannel = [0.9] * 9 + [0.1] * 8  # 0.29 s voiced, the bundled "Uh-huh" measured 0.32 s
    types, calls = asyncio.run(_stt_events(backchannel, agent_speaking=True))
    assert stt.SpeechEventType.FINAL_TRANSCRIPT not in types and calls == 0
    types, calls = asyncio.run(_stt_events(backchannel, agent_speaking=False))
    assert types.count(stt.SpeechEventType.FINAL_TRANSCRIPT) == 1


def test_long_speech_over_the_agent_gets_its_final():
    barge_in = [0.9] * 20 + [0.1] * 8  # 0.64 s voiced
    types, _ = asyncio.run(_stt_events(barge_in, agent_speaking=True))
    assert types.count(stt.SpeechEventType.FINAL_TRANSCRIPT) == 1


def test_speculative_decode_becomes_the_final():
    turn = [0.9] * 20 + [0.1] * 8
    types, calls = asyncio.run(_stt_events(turn, agent_speaking=False, preflight=2 * WIN))
    assert stt.SpeechEventType.PREFLIGHT_TRANSCRIPT in types
    assert types.index(stt.SpeechEventType.PREFLIGHT_TRANSCRIPT) < types.index(stt.SpeechEventType.FINAL_TRANSCRIPT)
    assert calls == 1


# --- end of turn: an utterance that does not sound finished holds its final (issue 19) ---

@pytest.mark.parametrize("text, held", [
    # the seed cases' first utterances as the agent's STT decoded them (offline, after Opus)
    ("I have a question.", True),  # endpoint_pause_in_turn, 500 ms pause follows
    ("I... W-W-W want to...", True),  # stutter_long_pause, 1.2 s pause follows
    ("How do I make a cup of", True),  # rate_slow_speaker, split before "tea"
    ("How do I make a cup of...", True),
    ("How do I make?", True),  # rate_slow_speaker, split after "make" (fb-bots-s14 b010, b103: answered into the pause)
    ("How do I make", True),
    ("Please set", True),  # level_quiet_speaker, split after "set"
    ("So,", True),
    ("I w-", True),
    ("Hello,", True),
    ("How do you", True),  # rate_slow_speaker, split after "do" and misread (session 23, run s1j1: talk-over 3131 ms)
    ("How do I?", True),
    ("Where can we", True),
    ("Could you", True),
    # complete turns of the seed cases: answered at once
    ("What time does the museum open?", False),
    ("What's the weather like today?", False),
    ("Please tell me a joke.", False),
    ("Hello, Nair", False),
    ("Please sit and alarm for tomorrow morning", False),
    ("Tell me a long story about a dragon.", False),
    ("Wait, please stop talking.", False),
    ("I have a question. What time does the museum open?", False),
    ("What is it made of?", False),  # a question mark ends it whatever the last word
    ("What should I make?", False),  # the wh-word is the verb's object
    ("Which documents should I bring?", False),
    ("How do I do it?", False),  # "do" as the main verb, "it" its object
    ("Thank you.", False),
    ("Why should I?", False),
    ("How are you?", False),
    ("Can you help me?", False),
    ("", False),
])
def test_hold_reason_on_the_seed_transcripts(text, held):
    from system.agent.turn_text import hold_reason

    assert (hold_reason(text) is not None) is held, hold_reason(text)


def test_hold_reason_resumed_turn_ignores_whisper_trailing_dots():
    from system.agent.turn_text import hold_reason

    merged = "I... W-W-Wont do... Check my bank account balance..."  # stutter case, merged decode
    assert hold_reason(merged) == "trails off"
    assert hold_reason(merged, resumed=True) is None
    assert hold_reason("I want to... check my...", resumed=True) is not None  # the word rule stays


def test_join_utterances_cuts_the_prefix_overlap_and_fills_a_gap():
    from system.agent.stt_whisper import join_utterances

    sr = 1000
    held = rtc.AudioFrame(np.arange(1, 101, dtype=np.int16).tobytes(), sr, 1, 100)  # ends at t = 1.0 s
    new = [rtc.AudioFrame(np.full(50, 7, np.int16).tobytes(), sr, 1, 50)]
    # the new audio starts 20 ms before the held one ended (VAD prefix padding): 20 samples cut
    out = np.frombuffer(join_utterances(held, 1.0, new, 0.98)[0].data, dtype=np.int16)
    assert out.size == 130 and out[99] == 100 and (out[100:] == 7).all()
    # it starts 30 ms after: 30 samples of silence between
    out = np.frombuffer(join_utterances(held, 1.0, new, 1.03)[0].data, dtype=np.int16)
    assert out.size == 180 and (out[100:130] == 0).all() and (out[130:] == 7).all()
    # a long gap is filled with max_gap_s of silence only
    out = np.frombuffer(join_utterances(held, 1.0, new, 3.0, max_gap_s=0.1)[0].data, dtype=np.int16)
    assert out.size == 100 + 100 + 50


class _ScriptedTranscriber:
    """Returns ``texts[i]`` on the i-th call and records the length of the audio it got."""

    def __init__(self, texts: list[str]) -> None:
        self.texts, self.sizes = texts, []

    def transcribe(self, audio: np.ndarray, sr: int) -> str:
        self.sizes.append(audio.size)
        return self.texts[min(len(self.sizes), len(self.texts)) - 1]


async def _turn_events(probs: list[float], texts: list[str], *, hold_s: float, reopen_s: float = 0.0,
                       heard_after_final: bool = False, reopened: list[str] | None = None):
    """``heard_after_final``: the agent is speaking (heard) once, right after the first final is sent.
    ``reopened``: collects the texts ``on_reopen`` was called with."""
    from system.agent.stt_whisper import WhisperStreamingSTT
    from system.agent.turn_text import hold_reason
    from system.agent.vad_voiced import VoicedDurationVAD

    v = VoicedDurationVAD(_ScriptedVAD(probs), activation_threshold=0.5)
    tr = _ScriptedTranscriber(texts)
    spoke = {"pending": False}

    def on_event(name: str, *_: object) -> None:
        if name == "stt_decoded" and heard_after_final:
            spoke["pending"] = True

    def agent_speaking() -> bool:
        was, spoke["pending"] = spoke["pending"], False
        return was

    # speech over the agent would get no final (a backchannel): the test sees which side it fell on
    engine = WhisperStreamingSTT(transcriber=tr, vad=v, shared_vad=True, hold_reason=hold_reason, hold_s=hold_s,
                                 reopen_s=reopen_s, on_event=on_event, agent_speaking=agent_speaking,
                                 drop_overlap_shorter_s=10.0 if heard_after_final else 0.0,
                                 on_reopen=reopened.append if reopened is not None else None)
    out = await _drive(engine, v, len(probs))
    finals = [e.alternatives[0].text for e in out if e.type == stt.SpeechEventType.FINAL_TRANSCRIPT]
    return [e.type for e in out], finals, tr.sizes


async def _drive(engine, vad, n_windows: int, frames: list[rtc.AudioFrame] | None = None) -> list:
    """Push ``n_windows`` frames (``frames``, else digital silence) through the session's VAD stream
    and the STT stream (shared VAD, as the worker does), end both, and return the STT's events."""
    session_vad = vad.stream()
    st = engine.stream()
    for i in range(n_windows):
        f = frames[i] if frames is not None else _frame()
        session_vad.push_frame(f)
        st.push_frame(f)
    session_vad.end_input()
    async for _ in session_vad:
        pass
    st.end_input()
    out = [e async for e in st]
    await engine.aclose()
    return out


# utterance 1 (10 windows), a pause of 12 windows (END after 6), utterance 2 (15 windows), END
_TWO_UTTERANCES = [0.9] * 10 + [0.1] * 12 + [0.9] * 15 + [0.1] * 8


def test_a_held_utterance_is_decoded_with_the_speech_after_its_pause():
    types, finals, sizes = asyncio.run(_turn_events(
        _TWO_UTTERANCES, ["I have a question.", "I have a question. What time does the museum open?"], hold_s=10.0))
    assert finals == ["I have a question. What time does the museum open?"]  # one final, the whole turn
    # the second decode got both utterances (16 + 21 windows with their trailing silence), not the second alone
    assert sizes[0] == 16 * 512 and sizes[1] > 21 * 512
    assert types.index(stt.SpeechEventType.FINAL_TRANSCRIPT) > [i for i, t in enumerate(types)
                                                               if t == stt.SpeechEventType.START_OF_SPEECH][1]


def test_a_finished_utterance_is_not_held():
    types, finals, _ = asyncio.run(_turn_events(
        _TWO_UTTERANCES, ["What time does the museum open?", "Thanks."], hold_s=10.0))
    assert finals == ["What time does the museum open?", "Thanks."]
    starts = [i for i, t in enumerate(types) if t == stt.SpeechEventType.START_OF_SPEECH]
    assert starts[0] < types.index(stt.SpeechEventType.FINAL_TRANSCRIPT) < starts[1]


def test_speech_before_the_reply_is_heard_is_decoded_with_the_answered_utterance():
    # "How do I make a cup?" looks complete (not held), its final is sent; the user goes on
    # before the agent is heard: the rest is decoded with it and the whole turn is sent again
    texts = ["How do I make a cup?", "How do I make a cup of tea?"]
    reopened: list[str] = []
    _, finals, sizes = asyncio.run(_turn_events(_TWO_UTTERANCES, texts, hold_s=10.0, reopen_s=10.0,
                                                reopened=reopened))
    assert finals == texts
    # the pending reply to the first final is stopped as the user goes on, not at the second final
    assert reopened == ["How do I make a cup?"]
    assert sizes[0] == 16 * 512 and sizes[1] > 21 * 512  # the second decode got both utterances
    # off: the second part alone
    _, finals, sizes = asyncio.run(_turn_events(_TWO_UTTERANCES, ["How do I make a cup?", "Of tea."], hold_s=10.0))
    assert finals == ["How do I make a cup?", "Of tea."] and sizes[1] <= 21 * 512


def test_speech_after_the_reply_was_heard_is_a_turn_of_its_own():
    # the agent speaks (heard) after the first final and is done before the user goes on
    reopened: list[str] = []
    _, finals, sizes = asyncio.run(_turn_events(_TWO_UTTERANCES, ["What time does the museum open?", "Thanks."],
                                                hold_s=10.0, reopen_s=10.0, heard_after_final=True, reopened=reopened))
    assert finals == ["What time does the museum open?", "Thanks."] and sizes[1] <= 21 * 512
    assert reopened == []  # the reply was heard: nothing to stop


def test_a_held_final_is_released_when_the_hold_ends_or_the_input_ends():
    # hold 0 s: released as soon as it is held; the next utterance is a turn of its own
    _, finals, _ = asyncio.run(_turn_events(_TWO_UTTERANCES, ["I have a question.", "Museum hours?"], hold_s=0.0))
    assert finals == ["I have a question.", "Museum hours?"]
    # nobody speaks again: the end of the input releases it (no final is lost)
    one = [0.9] * 10 + [0.1] * 8
    _, finals, _ = asyncio.run(_turn_events(one, ["I have a question."], hold_s=10.0))
    assert finals == ["I have a question."]


# --- barge-in word check: a stop word over the agent's speech interrupts before the duration rule ---

async def _overlap_events(probs: list[float], text: str):
    from system.agent.stt_whisper import WhisperStreamingSTT
    from system.agent.vad_voiced import VoicedDurationVAD

    v = VoicedDurationVAD(_ScriptedVAD(probs), activation_threshold=0.5)
    stops: list[str] = []
    engine = WhisperStreamingSTT(transcriber=_FakeTranscriber(text), vad=v, agent_speaking=lambda: True,
                                 drop_overlap_shorter_s=0.40, shared_vad=True, stop_words=frozenset({"wait", "stop"}),
                                 stop_check_voiced_s=0.2, on_stop_word=stops.append)
    out = await _drive(engine, v, len(probs))
    return stops, [e.alternatives[0].text for e in out if e.type == stt.SpeechEventType.FINAL_TRANSCRIPT]


def test_a_stop_word_over_the_agent_interrupts_and_keeps_its_final():
    wait = [0.9] * 9 + [0.1] * 8  # "Wait." alone: 0.29 s voiced, under the 0.40 s duration rule
    stops, finals = asyncio.run(_overlap_events(wait, "Wait..."))
    assert stops == ["Wait..."]
    assert finals == ["Wait..."]  # it interrupted: the turn goes on to the reply ("Okay, I stopped.")


def test_a_backchannel_over_the_agent_does_not_trigger_the_word_check():
    uh_huh = [0.9] * 9 + [0.1] * 8
    stops, finals = asyncio.run(_overlap_events(uh_huh, "Uh-uh."))
    assert stops == [] and finals == []  # no stop word, under the duration rule: dropped
    short = [0.9] * 5 + [0.1] * 8  # 0.16 s voiced: not decoded at all before 0.2 s
    stops, _ = asyncio.run(_overlap_events(short, "Wait..."))
    assert stops == []


class _ScriptedTexts(_FakeTranscriber):
    """Returns ``texts`` in order (the last one from then on): a decoder that hears more as more is voiced."""

    def __init__(self, texts: list[str]) -> None:
        super().__init__(texts[0])
        self.texts = texts

    def transcribe(self, audio: np.ndarray, sr: int) -> str:
        self.calls += 1
        return self.texts[min(self.calls, len(self.texts)) - 1]


async def _overlap_checks(probs: list[float], texts: list[str], recheck_s: float):
    from system.agent.stt_whisper import WhisperStreamingSTT
    from system.agent.vad_voiced import VoicedDurationVAD

    v = VoicedDurationVAD(_ScriptedVAD(probs), activation_threshold=0.5)
    stops: list[str] = []
    tr = _ScriptedTexts(texts)
    engine = WhisperStreamingSTT(transcriber=tr, vad=v, agent_speaking=lambda: True,
                                 drop_overlap_shorter_s=0.40, shared_vad=True, stop_words=frozenset({"wait", "stop"}),
                                 stop_check_voiced_s=0.2, stop_recheck_s=recheck_s, on_stop_word=stops.append)
    await _drive(engine, v, len(probs))
    return stops, tr.calls


def test_a_word_check_that_heard_no_stop_word_is_repeated_before_the_duration_rule():
    # live (session 3) the 0.20 s check heard only part of "Wait" in half the barge-ins
    wait_please = [0.9] * 12 + [0.1] * 8  # 0.38 s voiced: under the 0.40 s duration rule
    stops, calls = asyncio.run(_overlap_checks(wait_please, ["Why?", "Wait..."], recheck_s=0.1))
    assert stops == ["Wait..."]
    stops, calls = asyncio.run(_overlap_checks(wait_please, ["Why?", "Wait..."], recheck_s=0.0))
    assert stops == [] and calls >= 1  # one check only: the miss stands
    # a backchannel is checked again and still yields nothing
    stops, calls = asyncio.run(_overlap_checks(wait_please, ["Uh-", "Uh-huh."], recheck_s=0.1))
    assert stops == [] and calls == 2


def test_only_a_comma_gets_the_short_hold():
    from system.agent.turn_text import hold_is_short, hold_reason

    assert hold_is_short(hold_reason("Hello,"))
    assert not hold_is_short(hold_reason("I want to"))  # the stutter case's first part (run h3), a 1.2 s pause follows
    assert not hold_is_short(hold_reason("How do I make a cup of"))
    assert not hold_is_short(hold_reason("I want to..."))
    assert not hold_is_short(hold_reason("I have a question."))


# --- the preflight keyed to the audio's level (issue 19): silero calls ~34-132 ms after the last
# phoneme speech, so a preflight keyed to its silence starts that much after the user stopped ---

def _case_frames(case_id: str, tail_s: float) -> tuple[list[rtc.AudioFrame], float]:
    """The case WAV after an Opus round trip at 16 kHz in 512-sample frames, with ``tail_s`` of room
    tone (-65 dBFS) after it, and its annotated end of speech (s, cases/all_cases.json: the truth)."""
    import json
    from pathlib import Path

    import soundfile as sf
    import soxr

    from autortc.testing.opus import opus_roundtrip

    cases = Path(__file__).resolve().parents[2] / "cases"
    seg = next(c for c in json.loads((cases / "all_cases.json").read_text())["cases"] if c["id"] == case_id)["segments"][0]
    x, sr = sf.read(cases / seg["wav"], dtype="float32")
    x, sr = opus_roundtrip(x.mean(axis=1) if x.ndim > 1 else x, sr)
    x = soxr.resample(x, sr, 16000).astype(np.float32)
    end = seg["speech_end_ms"] / 1000
    x = x[: int(end * 16000)]
    tone = np.random.default_rng(0).standard_normal(int(tail_s * 16000)) * 10 ** (-65 / 20)
    pcm = (np.clip(np.concatenate([x, tone]), -1, 1) * 32767).astype(np.int16)
    n = pcm.size // 512
    return [rtc.AudioFrame(pcm[i * 512:(i + 1) * 512].tobytes(), 16000, 1, 512) for i in range(n)], end


class _SizeTranscriber:
    def __init__(self) -> None:
        self.sizes: list[int] = []

    def transcribe(self, audio: np.ndarray, sr: int) -> str:
        self.sizes.append(audio.size)
        return "What time does the museum open?"


async def _level_events(frames: list[rtc.AudioFrame], probs: list[float], *, by_level: bool, end_after: int = 6):
    from system.agent.stt_whisper import WhisperStreamingSTT
    from system.agent.vad_voiced import VoicedDurationVAD

    v = VoicedDurationVAD(_ScriptedVAD(probs, end_after=end_after), activation_threshold=0.5)
    tr = _SizeTranscriber()
    engine = WhisperStreamingSTT(transcriber=tr, vad=v, shared_vad=True, preflight_silence_s=2 * WIN,
                                 preflight_by_level=by_level)
    out = await _drive(engine, v, len(probs), frames)
    return [e.type for e in out], tr.sizes


@pytest.mark.parametrize("case_id", ["endpoint_short_hello", "content_weather", "rate_fast_speaker"])
def test_the_level_preflight_decodes_at_the_users_end_not_at_the_vads(case_id):
    frames, end = _case_frames(case_id, tail_s=0.6)
    end_w = int(end / WIN)
    # the VAD hears speech from the first window to 4 windows (128 ms) after the annotated end: silero's tail
    probs = [0.9] * (end_w + 4) + [0.1] * (len(frames) - end_w - 4)
    types, sizes = asyncio.run(_level_events(frames, probs, by_level=True))
    # the final is the last preflight's decode (a pause inside the turn may have had one before): the
    # whole utterance would end 10 windows after the VAD's tail. The decoded audio starts at the first
    # frame (the scripted VAD's START has no padding)
    assert stt.SpeechEventType.FINAL_TRANSCRIPT in types
    cut_s = sizes[-1] / 16000
    assert end + 2 * WIN <= cut_s + WIN and cut_s <= end + 0.13, (cut_s, end)
    types, sizes = asyncio.run(_level_events(frames, probs, by_level=False))
    assert sizes[0] / 16000 >= end + 4 * WIN + 2 * WIN - WIN  # keyed to the VAD: after its tail


def test_speech_after_a_level_preflight_makes_it_stale_and_its_tail_does_not():
    frames, end = _case_frames("endpoint_short_hello", tail_s=0.2)
    again, _ = _case_frames("endpoint_short_hello", tail_s=0.6)
    both = frames + again  # a 0.2 s pause the VAD never calls silence, then the same words again
    probs = [0.9] * (len(frames) + int(end / WIN) + 4)
    probs += [0.1] * (len(both) - len(probs))
    types, sizes = asyncio.run(_level_events(both, probs, by_level=True))
    # a preflight in the pause, stale once the words come again; the one after them is the final
    assert len(sizes) == 2
    assert sizes[0] / 16000 < len(frames) * 512 / 16000 <= len(frames) * 512 / 16000 + end <= sizes[1] / 16000


def test_a_burst_after_the_cut_in_the_vads_silence_restarts_the_preflight_before_the_end():
    frames, end = _case_frames("endpoint_short_hello", tail_s=0.6)
    pcm = np.concatenate([np.frombuffer(f.data, np.int16) for f in frames]).astype(np.float32)
    at = int((end + 0.10) * 16000)  # a 20 ms burst 15 dB under the speech, 100 ms after the end (a final /t/)
    speech_rms = float(np.sqrt(np.mean(pcm[int((end - 0.5) * 16000):int(end * 16000)] ** 2)))
    pcm[at:at + 320] += np.random.default_rng(3).standard_normal(320).astype(np.float32) * speech_rms * 10 ** (-15 / 20)
    pcm = np.clip(pcm, -32768, 32767).astype(np.int16)
    frames = [rtc.AudioFrame(pcm[i * 512:(i + 1) * 512].tobytes(), 16000, 1, 512) for i in range(pcm.size // 512)]
    end_w = int(end / WIN)
    probs = [0.9] * (end_w + 1) + [0.1] * (len(frames) - end_w - 1)  # the VAD calls the burst silence
    types, sizes = asyncio.run(_level_events(frames, probs, by_level=True, end_after=10))
    # a preflight before the burst, stale at the burst, one after it that is the final, all before the
    # VAD's end (end + 11 windows = end + 0.35 s): no decode of the whole utterance at the end
    assert len(sizes) == 2, [n / 16000 - end for n in sizes]
    assert sizes[0] < at <= at + 320 <= sizes[1] <= int((end + 0.30) * 16000)


# --- a speaker who pauses inside the turn (session 22: "How do I make a cup?" | "of tea?") ---

def _tone_frame(on: bool, n: int = 512, sr: int = 16000, i: int = 0) -> rtc.AudioFrame:
    t = (np.arange(n) + i * n) / sr
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * 220 * t)).astype(np.int16) if on else np.zeros(n, np.int16)
    return rtc.AudioFrame(pcm.tobytes(), sr, 1, n)


def test_internal_pauses_are_the_quiet_runs_between_speech_not_the_trailing_silence():
    from system.agent.stt_whisper import LevelTrack

    sr = 16000
    on = lambda ms: (0.3 * 32767 * np.sin(2 * np.pi * 220 * np.arange(int(sr * ms / 1000)) / sr)).astype(np.int16)
    off = lambda ms: np.zeros(int(sr * ms / 1000), np.int16)
    lt = LevelTrack(sr)
    for part in (off(100), on(300), off(250), on(200), off(120), on(400), off(500)):
        lt.push(part)
    assert lt.internal_pauses_s() == pytest.approx([0.25, 0.12], abs=0.011)
    flat = LevelTrack(sr)
    flat.push(on(500))
    flat.push(off(300))
    assert flat.internal_pauses_s() == []


def test_pausing_hold_needs_two_long_pauses_and_waits_a_multiple_of_the_longest():
    from system.agent.stt_whisper import pausing_hold_s

    rule = dict(min_pause_s=0.2, factor=1.5, max_hold_s=0.6)
    # the case WAVs' measured pauses (AgentConfig.turn_pausing_*): the slow speaker, fluent commas
    assert pausing_hold_s([0.31, 0.30, 0.23, 0.23], **rule) == pytest.approx(0.465)  # factor 1.5 here
    assert pausing_hold_s([0.18, 0.12, 0.06], **rule) is None  # long_question's comma
    assert pausing_hold_s([0.5, 0.05], **rule) is None  # one pause: a sentence break, not a habit
    assert pausing_hold_s([0.5, 0.45, 0.3], **rule) == pytest.approx(0.6)  # capped
    assert pausing_hold_s([0.31, 0.30], min_pause_s=0.0, factor=1.5, max_hold_s=0.6) is None  # off


def _finals(windows: list[tuple[bool, float]], texts: list[str], pausing_hold) -> tuple[list[str], list[int]]:
    """Planted audio per 32 ms window: (tone on, the scripted VAD's probability), pushed faster than real
    time through the shared VAD and the STT (scripted ``texts``, the text hold, ``pausing_hold``). The
    finals the STT sends, and the audio length of each decode."""
    from system.agent.stt_whisper import WhisperStreamingSTT
    from system.agent.turn_text import hold_reason
    from system.agent.vad_voiced import VoicedDurationVAD

    frames = [_tone_frame(on, i=i) for i, (on, _) in enumerate(windows)]
    v = VoicedDurationVAD(_ScriptedVAD([p for _, p in windows]), activation_threshold=0.5)
    tr = _ScriptedTranscriber(texts)
    engine = WhisperStreamingSTT(transcriber=tr, vad=v, shared_vad=True, hold_reason=hold_reason, hold_s=10.0,
                                 pausing_hold=pausing_hold)
    out = asyncio.run(_drive(engine, v, len(windows), frames))
    return [e.alternatives[0].text for e in out if e.type == stt.SpeechEventType.FINAL_TRANSCRIPT], tr.sizes


def _finals_after(utterance1: list[bool], texts: list[str], *, pausing: bool) -> tuple[list[str], list[int]]:
    """``utterance1`` (tone / silence per 32 ms window; the scripted VAD calls all of it speech, as silero
    did the slow speaker's pauses), 384 ms of silence (its END), a second utterance of 15 windows. The
    pausing hold, when on, waits 20 x the longest pause: longer than those 384 ms."""
    from system.agent.stt_whisper import pausing_hold_s

    windows = ([(a, 0.9) for a in utterance1] + [(False, 0.1)] * 12 + [(True, 0.9)] * 15 + [(False, 0.1)] * 8)
    return _finals(windows, texts, (lambda p: pausing_hold_s(p, min_pause_s=0.2, factor=20.0, max_hold_s=10.0))
                   if pausing else None)


@pytest.mark.parametrize("pausing", [True, False])
def test_a_pausing_speakers_complete_sounding_utterance_waits_for_the_rest(pausing):
    """Utterance 1 has two 256 ms pauses inside and its text ends like a turn ("How do I make a cup?"):
    with the pausing hold on, it and the next are one final; off, two."""
    pausing_utterance = [True] * 8 + [False] * 8 + [True] * 6 + [False] * 8 + [True] * 6
    finals, sizes = _finals_after(pausing_utterance, ["How do I make a cup?", "How do I make a cup of tea?"],
                                  pausing=pausing)
    if pausing:
        assert finals == ["How do I make a cup of tea?"]
        assert sizes[1] > 50 * 512  # the second decode got both utterances
    else:
        assert finals == ["How do I make a cup?", "How do I make a cup of tea?"]


def test_a_fluent_utterance_is_not_held_by_the_pausing_rule():
    fluent = [True] * 20 + [False] * 2 + [True] * 14  # one 64 ms pause inside
    finals, _ = _finals_after(fluent, ["What time does the museum open?", "Thanks."], pausing=True)
    assert finals == ["What time does the museum open?", "Thanks."]


def test_quiet_count_counts_quiet_windows_after_the_last_sound():
    """Planted: an utterance at 0.3 FS with a 250 ms pause of low noise (50 dB under it) inside, ending in
    100 ms of that noise; then noise / a word 30 dB under the speech (a weak onset: sound) / a sound 40 dB
    under it (quiet) / a sound 5 dB over the noise in a noisier utterance (quiet)."""
    from system.agent.stt_whisper import LevelTrack, QuietCount

    sr = 16000
    rng = np.random.default_rng(7)

    def tone(ms: float, db_under: float) -> np.ndarray:
        amp = 0.3 * 10 ** (-db_under / 20)
        return (amp * 32767 * np.sin(2 * np.pi * 220 * np.arange(int(sr * ms / 1000)) / sr)).astype(np.int16)

    def noise(ms: float, db_under: float = 50.0) -> np.ndarray:
        rms = 0.3 / np.sqrt(2) * 10 ** (-db_under / 20)
        return (rng.normal(0.0, rms * 32767, int(sr * ms / 1000))).astype(np.int16)

    lt = LevelTrack(sr)
    for part in (tone(300, 0), noise(250), tone(300, 0), noise(100)):
        lt.push(part)
    count = QuietCount(lt, 0.3)
    assert count.quiet_s == pytest.approx(0.1)  # the utterance's own quiet tail counts
    assert not count.push(noise(150)) and not count.done
    assert count.push(tone(50, 30))  # 30 dB under the speech, 20 over the noise: the user goes on
    assert count.quiet_s == 0.0
    assert not count.push(noise(200)) and not count.done
    assert not count.push(tone(50, 40))  # 40 dB under the speech: quiet, it counts on
    assert count.quiet_s == pytest.approx(0.25)
    count.push(noise(45))
    assert not count.done  # 0.295 s
    count.push(noise(10))
    assert count.done

    noisy = LevelTrack(sr)  # pauses 30 dB under the speech: a sound must be 10 dB over them
    for part in (tone(300, 0), noise(250, 30), tone(300, 0), noise(100, 30)):
        noisy.push(part)
    c = QuietCount(noisy, 0.3)
    assert not c.push(noise(100, 25))  # 5 dB over the background: quiet
    assert c.quiet_s == pytest.approx(0.2)

    held = QuietCount(lt, 0.3, max_extra_s=0.5)  # a sound that never becomes speech ends it too
    for _ in range(6):
        held.push(tone(100, 20))
    assert held.quiet_s == 0.0 and not held.done  # 0.1 s tail + 0.6 s of sound < 0.3 + 0.5
    held.push(tone(100, 20))
    assert held.quiet_s == 0.0 and held.done  # 0.8 s after the utterance's end


# utterance 1 of a pausing speaker: two 256 ms pauses inside (all speech to the scripted VAD, as silero
# called the slow speaker's pauses), then 6 quiet windows until its END; the pausing hold waits 1.25 x
# 256 = 320 ms of silence, of which the 6 windows before the END are ~190 ms
_PAUSING = [True] * 8 + [False] * 8 + [True] * 6 + [False] * 8 + [True] * 6 + [False] * 6


_CUP, _TEA = "How do I make a cup?", "How do I make a cup of tea?"


def _pausing_turn(after: list[tuple[bool, float]], texts: tuple[str, ...] = (_CUP, _TEA)) -> tuple[list[str], list[int]]:
    """:data:`_PAUSING` ("How do I make a cup?", which no text rule holds), then ``after`` per 32 ms
    window: (tone on, the scripted VAD's probability); the worker's pausing rule (1.25 x the longest
    pause, at most 0.6 s). Pushed faster than real time: a hold released by the clock cannot end during
    the push."""
    from system.agent.stt_whisper import pausing_hold_s

    windows = [(a, 0.9) for a in _PAUSING[:-6]] + [(False, 0.1)] * 6 + list(after)
    return _finals(windows, list(texts), lambda p: pausing_hold_s(p, min_pause_s=0.2, factor=1.25, max_hold_s=0.6))


def test_a_pausing_hold_ends_after_its_silence_in_the_audio_not_on_the_clock():
    """256 ms more of silence after the END (~450 ms in all, over the 320 ms awaited), then speech:
    the held final goes alone, released by the audio however fast it comes."""
    finals, sizes = _pausing_turn([(False, 0.1)] * 8 + [(True, 0.9)] * 15 + [(False, 0.1)] * 8)
    assert finals == ["How do I make a cup?", "How do I make a cup of tea?"]
    assert sizes[1] < 30 * 512  # the second utterance decoded alone


def test_a_weak_word_the_vad_misses_keeps_a_pausing_hold():
    """96 ms of silence after the END (~290 ms, under the 320 awaited), then a word the VAD calls silence
    for 320 ms before it starts speech: the hold counts it as the user going on, one final for the turn.
    Counting the VAD's silence instead would release "How do I make a cup?" inside that word."""
    finals, sizes = _pausing_turn([(False, 0.1)] * 3 + [(True, 0.1)] * 10 + [(True, 0.9)] * 15 + [(False, 0.1)] * 8)
    assert finals == ["How do I make a cup of tea?"]
    assert sizes[1] > len(_PAUSING) * 512  # decoded with the held utterance


_OF = [(True, 0.9)] * 6 + [(False, 0.1)] * 6  # a short word with no pause inside, its END after 6 quiet windows
_THEN = [(False, 0.1)] * 3 + [(True, 0.9)] * 10 + [(False, 0.1)] * 8  # ~290 ms (under the 320 awaited), a word


def test_speech_that_resumes_a_pausing_turn_without_a_word_keeps_it_a_pausing_speakers():
    """The held utterance resumes with a short word ("of", no pause inside) whose decode with it adds no word
    ("How do I make a cup?": whisper drops the weak last word); the speaker pauses again before "tea": one
    final for the whole turn. Judging "of" by its own pauses sent "How do I make a cup?" in that pause (run
    h1j1: talk-over 342 ms)."""
    finals, sizes = _pausing_turn([(False, 0.1)] * 3 + _OF + _THEN, texts=(_CUP, _CUP, _TEA))
    assert finals == [_TEA]
    assert len(sizes) == 3 and sizes[2] > sizes[1] > sizes[0]  # each decode took the turn so far


def test_speech_that_resumes_a_pausing_turn_with_words_is_judged_on_its_own():
    """The same, but the resumed decode adds words ("... a cup of tea?"): a complete turn with no pause of its
    own goes at its end; what follows is another turn (holding it too would cost every such turn its hold)."""
    finals, _ = _pausing_turn([(False, 0.1)] * 3 + _OF + _THEN, texts=(_CUP, _TEA, "Thanks."))
    assert finals == [_TEA, "Thanks."]

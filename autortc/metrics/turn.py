"""All metrics of one turn, from the turn contract and the turn's audio (docs/artifacts.md).

``compute(artifacts, audio)`` is pure: no file I/O, no gating.  The runner reads a turn
folder through :func:`autortc.artifacts.load_turn`, calls :func:`compute` in a worker
process, and hands the result to the gates stage; ``autortc compare`` calls the same
:func:`compute` on two files (so its figures equal the turn's ``result.json``)::

    turn = load_turn(turn_dir)
    res = compute(turn.artifacts, turn.audio, transcriber=whisper, errors=turn.errors)
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autortc.artifacts import (CaseBlock, ReceiverSample, Span, TurnArtifacts, TurnAudio, UserBlock, UserSegment,
                               load_turn)
from autortc.audio import Audio, resample
from autortc.metrics import (content, continuity, defects, fidelity, fingerprints, instrument, latency, level, playout,
                             receiver, turntaking, uplink)
from autortc.results import Interval, TurnResult, worst

log = logging.getLogger("autortc.metrics")

SENTENCE_PAUSE_CAP_MS = 500.0
"""Longest silence of the agent's own copy excused as an intended pause (a sentence pause)
unless declared; a longer one is an agent-side gap (issue 18 item 4).  Source: the bundled
piper voice's sentence pauses in the 12 TTS gold sentences (cases/tts/gold) are 150-419 ms
(measured with continuity.detect_gaps); between-sentence pauses of read speech cluster
around 200-500 ms (Campione & Véronis 2002, "A large-scale multilingual study of silent
pause duration")."""


class Transcriber(abc.ABC):
    """STT for the content checks: ``transcribe(samples_float32_mono, sr) -> text``.

    The agent's STT is never reached from here: the caller passes an implementation
    (the runner's default is the bundled faster-whisper, ``system.agent.stt_whisper``).
    """

    @abc.abstractmethod
    def transcribe(self, samples: np.ndarray, sr: int) -> str: ...


class FunctionTranscriber(Transcriber):
    """Wraps a ``(samples, sr) -> text`` callable (tests, simple STTs)."""

    def __init__(self, fn: Any) -> None:
        self._fn = fn

    def transcribe(self, samples: np.ndarray, sr: int) -> str:
        return self._fn(samples, sr)


def _iv(gs: list[continuity.Gap]) -> list[Interval]:
    return [Interval(round(g.start_ms, 2), round(g.end_ms, 2)) for g in gs]


def compute(artifacts: TurnArtifacts | None, audio: TurnAudio, *, transcriber: Transcriber | None = None,
            perceptual: bool = False, detect_repeats: bool = True,
            reply_expected_silence_ms: Sequence[Span] = (), errors: Sequence[str] = ()) -> TurnResult:
    """Every metric family of one turn, from its contract and its audio; no I/O, no verdicts.

    Args:
        artifacts: the turn's :class:`~autortc.artifacts.TurnArtifacts`; ``None`` when
            trace.json was unusable (only the audio-only metrics are then measured).
        audio: the turn's recordings (``None`` entries = absent; they set ``capture_status``).
        transcriber: STT for the content metrics (keyword hit rate against
            ``case.expect_keywords``, WER against ``case.reference_reply`` else
            ``agent.reply_text``); ``None`` skips them.
        perceptual: score ViSQOL MOS-LQO here (~4.5 s CPU per 4 s of reply).
        reply_expected_silence_ms: extra intended pauses, ms in the reply segment itself
            (``autortc compare --expected-silence``); the agent's are in ``agent.expected_silence_ms``.
        errors: problems met while loading (carried into ``TurnResult.errors``).

    Returns:
        :class:`autortc.results.TurnResult` with ``verdicts`` empty (the gates stage fills them).
    """
    art = artifacts
    user_t = art.user if art is not None else UserBlock(source="bot")
    probe = art.probe if art is not None else None
    agent = art.agent if art is not None else None
    case = art.case if art is not None else CaseBlock()
    res = TurnResult(case_id=art.case_id if art else "", trace_id=art.trace_id if art else "",
                     turn_index=art.turn_index if art else 0, p_level=case.p_level, errors=list(errors))
    reply, full, pre, user = audio.reply, audio.full, audio.pre, audio.user
    agent_d = agent.model_dump() if agent is not None else None
    frames = list(probe.frames) if probe is not None else []
    sl = probe.reply_slice if probe is not None else None

    # level, capture status
    L = res.level
    L.reply_rms = level.rms(reply.samples) if reply else None
    L.full_rms = level.rms(full.samples) if full else None
    L.pre_rms = level.rms(pre.samples) if pre else None
    post_rms = max([v for v in (L.reply_rms, L.full_rms) if v is not None], default=None)
    res.capture_status = level.capture_status(L.pre_rms, post_rms).value  # type: ignore[assignment]
    res.audio_valid = level.audio_valid(L.reply_rms, L.full_rms)
    # the reply segment: post_rtc_reply.wav, else the reply_slice of the full capture; never
    # the whole capture (its silences before/after the reply made false max_gap, seed D9 R5)
    seg = reply
    # where seg begins in post_rtc_full.wav (None: not known); post_rtc_reply.wav is reply_slice
    seg_start: int | None = int(sl[0]) if sl else None
    if seg is None and full is not None and sl and 0 <= sl[0] < sl[1] <= full.samples.shape[0]:
        seg = Audio(full.samples[int(sl[0]):int(sl[1])], full.sr)
    if seg is None and full is not None and probe is not None:
        # recorded before the runner sliced the first *heard* reply: a reply cancelled before its
        # first frame (no start) took the slice's place; the heard one is still in the capture
        hr = _heard_reply_span(probe.replies, full.samples.shape[0], full.sr)
        if hr is not None:
            seg = Audio(full.samples[hr[0]:hr[1]], full.sr)
            seg_start = hr[0]
            res.errors.append(f"reply slice rebuilt from probe.replies (samples {hr[0]}-{hr[1]}): no reply_slice recorded")
    if seg is not None and full is not None and sl and probe is not None:
        # recorded before the runner began the slice at the reply's first *sound*: a click on
        # the reply's first sample (before 20 ms of sound make an onset) was left out of it
        hr = next((r for r in probe.replies if r.start_sample is not None), None)
        if hr is not None and 0 <= hr.start_sample <= sl[0] <= full.samples.shape[0]:
            a = latency.reply_start(full.samples, full.sr, int(hr.start_sample), int(sl[0]) + int(latency.REPLY_PREROLL_MS * full.sr / 1000))
            if a < sl[0]:
                seg = Audio(np.concatenate([full.samples[a:int(sl[0])], seg.samples]), seg.sr)
                seg_start = a
                res.errors.append(f"reply segment extended {(sl[0] - a) / full.sr * 1000:.0f} ms back to its first sound "
                                  "(recorded slice began after it)")
    if seg is None and full is not None:
        res.errors.append("post_rtc_reply.wav missing and no probe.reply_slice: reply metrics not measured")
    if seg is not None:
        L.clipping_ratio = level.clipping_ratio(seg.samples)
    if pre is not None:
        L.pre_clipping_ratio = level.clipping_ratio(pre.samples)
    pre_at = resample(pre.samples, pre.sr, seg.sr) if (pre is not None and seg is not None) else None
    # band and rate are judged (and required) only on a copy long enough to have them: decided once
    spectrum = pre is not None and _spectrum_judgeable(pre.samples, pre.sr)
    ok = res.capture_status == "OK" and seg is not None and pre_at is not None

    # fidelity
    lag = None
    if ok:
        al = fidelity.align(pre_at, seg.samples, seg.sr)
        lag = al.lag_samples
        res.fidelity.lag_ms = al.lag_ms
        res.fidelity.align_corr = al.peak_corr
        res.fidelity.mel_distance = fidelity.mel_distance(pre_at, seg.samples, seg.sr, lag_samples=lag)

    # continuity on the reply segment
    if seg is not None:
        declared = list(agent.expected_silence_ms) if agent is not None else []
        if lag is not None:
            shift_ms = lag / seg.sr * 1000.0  # pre sample 0 = first published sample
        else:
            on = latency.first_onset(seg.samples, seg.sr)
            shift_ms = 0.0 if on is None else on / seg.sr * 1000.0
        agent_long: list[tuple[float, float]] = []
        trailing: list[tuple[float, float]] = []  # the copy's trailing silence, heard time
        if pre_at is not None:
            # The silences of the agent's own copy are the pauses it meant, but only up to a
            # natural sentence pause (SENTENCE_PAUSE_CAP_MS) unless declared: a longer one is
            # an agent-side gap the user hears (attributed, not excused).  20 ms each side
            # absorbs the receiver's jitter-buffer stretch at the edges.
            # past its end the agent published nothing: padded with one 10 ms frame of silence, the
            # copy's last few ms are measured (frame_rms leaves a partial last frame out). A reply cut
            # 6 ms into the word after a comma pause left that pause trailing, no gap of the copy's own,
            # while the heard reply's cut tail made it one: max_gap FAIL 226 ms on a clean barge-in (base16a)
            intended = continuity.detect_gaps(np.concatenate([pre_at, np.zeros(seg.sr // 100, np.float32)]), seg.sr)
            for g in intended.gaps:
                if g.duration_ms <= SENTENCE_PAUSE_CAP_MS or _covered(g, agent.expected_silence_ms if agent else []):
                    declared.append((g.start_ms - 20.0, g.end_ms + 20.0))
                else:
                    agent_long.append((g.start_ms + shift_ms, g.end_ms + shift_ms))
            # the copy's trailing silence is a pause it meant too (up to the same cap) when the heard
            # reply has sound after it: a reply cut 1 ms into the word after a comma pause left that
            # word's first ms under the copy's silence threshold, and the receiver played ~20 ms past
            # the last packet (its concealment of the stream's end, -38 dBFS) after the pause: max_gap
            # FAIL 226 ms on a clean barge-in (fault bench fb-bots-s18 b162). Only excuses heard silence;
            # not an expected silence the heard reply is asked to keep (coverage below leaves it out)
            end_ms = pre_at.shape[0] / seg.sr * 1000.0
            if intended.last_sound_ms is not None and end_ms - intended.last_sound_ms <= SENTENCE_PAUSE_CAP_MS:
                trailing = [(intended.last_sound_ms - 20.0 + shift_ms, end_ms + 20.0 + shift_ms)]
        spans = [(float(a) + shift_ms, float(b) + shift_ms) for a, b in declared]
        spans += [(float(a), float(b)) for a, b in reply_expected_silence_ms]
        rep = continuity.detect_gaps(seg.samples, seg.sr, expected_silence_ms=spans + trailing)
        C = res.continuity
        C.silence_threshold = rep.threshold
        C.gaps = _iv(rep.gaps)
        C.excused_gaps = _iv(rep.excused)
        C.max_gap_ms = rep.max_gap_ms
        C.agent_gaps = [Interval(round(a, 2), round(b, 2)) for a, b in agent_long]
        if agent_long:
            res.origin["max_gap"] = "agent"
        if ok:
            # with the agent's copy: dropouts down to one 20 ms codec frame, also when filled
            # with low noise -- the received level far under the copy where the copy is speech
            # (the gap-based reference rule false-alarmed on clean piper through Opus)
            drops = _heard_dropouts(seg, pre_at, lag or 0)
            if drops:
                res.origin["audible_dropout"] = "path"
        else:
            drops = continuity.audible_dropouts(seg.samples, seg.sr, gaps=rep)
        C.dropouts = _iv(drops)
        C.audible_dropouts = len(drops)
        C.dropout_method = "reference" if ok else "signal"
        C.expected_silence_coverage = continuity.expected_silence_coverage(rep, seg.sr, spans)

        # Everything the user hears is judged; the agent's copy only says where it arose.
        F = res.fingerprints
        shift = (lag or 0) / seg.sr * 1000.0
        sp = defects.detect_spikes(seg.samples, seg.sr)
        F.peak_spike_count = len(sp)
        F.spikes = [Interval(round(q.start_ms, 2), round(q.end_ms, 2)) for q in sp]
        if sp and pre_at is not None:
            own = [(q.start_ms + shift, q.end_ms + shift) for q in defects.detect_spikes(pre_at, seg.sr)]
            res.origin["peak_spike"] = _origin([(q.start_ms, q.end_ms) for q in sp], own)
        F.peak_derivative_max = fingerprints.peak_derivative_max(seg.samples)
        F.hf_energy_ratio_post = fingerprints.hf_energy_ratio(seg.samples, seg.sr)
        if detect_repeats:
            # a steady vowel the codec pushed over the threshold is content (the agent's copy says so)
            reps = fingerprints.all_repeats(seg.samples, seg.sr, ref=pre_at, shift_ms=shift)
            F.repeat_count = len(reps)
            F.repeats = [Interval(r.start_ms, r.end_ms) for r in reps]
            if reps and pre_at is not None:
                own_r = [(q.start_ms + shift, q.end_ms + shift) for q in fingerprints.all_repeats(pre_at, seg.sr)]
                res.origin["repeats"] = _origin([(q.start_ms, q.end_ms) for q in reps], own_r)
        if L.clipping_ratio and L.pre_clipping_ratio is not None:
            res.origin["clipping"] = "agent" if L.pre_clipping_ratio >= 0.5 * L.clipping_ratio else "path"
        if ok:
            F.drift_ratio = fingerprints.drift_ratio(pre_at, seg.samples, seg.sr)
            F.hf_energy_ratio_pre = fingerprints.hf_energy_ratio(pre.samples, pre.sr)
            if spectrum:
                F.hf_ratio_drop = fingerprints.hf_ratio_drop(pre.samples, seg.samples, pre.sr, seg.sr)
                F.speed_ratio = defects.speed_ratio(pre_at, seg.samples, seg.sr)
                F.speed_change = abs(F.speed_ratio - 1.0) if F.speed_ratio is not None else None
            if not _interrupted(user_t, probe):
                a = fingerprints.audible_span(pre_at, seg.sr)
                b = fingerprints.audible_span(seg.samples, seg.sr)
                if a is not None:
                    post_ms = (b[1] - b[0]) / seg.sr * 1000.0 if b is not None else 0.0
                    C.missing_audio_ms = round(defects.missing_audio_ms((a[1] - a[0]) / seg.sr * 1000.0, post_ms,
                                                                        F.speed_ratio), 1)
    if user is not None:
        # the user's first segment as published: pauses outside the case's declared ones
        # (case.expected_silence_ms, ms from the start of the segment's WAV) are gaps of the
        # user side; the declared ones must really be silent (coverage)
        s0 = user_t.segments[0] if user_t.segments else None
        if s0 is not None and s0.start_sample is not None and s0.eot_sample is not None:
            useg = user.samples[s0.start_sample:s0.eot_sample]
            urep = continuity.detect_gaps(useg, user.sr, expected_silence_ms=case.expected_silence_ms)
            res.continuity.user_max_gap_ms = urep.max_gap_ms
            res.continuity.user_gaps = _iv(urep.gaps)
            res.continuity.user_expected_silence_coverage = continuity.expected_silence_coverage(
                urep, user.sr, case.expected_silence_ms)
        usp = fingerprints.detect_spikes(user.samples, user.sr)
        res.fingerprints.input_spike_count = len(usp)
        res.fingerprints.input_peak = float(np.max(np.abs(user.samples))) if user.samples.size else None

    # latency
    Lt = res.latency
    stages = agent.stages if agent is not None else {}
    Lt.tts_first_to_publish_ms = latency.tts_first_to_publish_ms(stages)
    Lt.tts_first_held_ms = latency.tts_first_held_ms(stages)
    if agent is not None and agent.replies and agent.replies[0].t_first_frame_published is None \
            and any(r.t_first_frame_published is not None for r in agent.replies[1:]):
        # the stages keep each name's first time: tts_first_chunk of a reply cancelled before its
        # first frame, first_frame_published of the next -- two replies, no TTS->publish time
        # (fb-bots-1702 b009, clean: 740 ms "tts_first -> publish")
        Lt.tts_first_to_publish_ms = None
        Lt.tts_first_held_ms = None
    Lt.llm_ttft_ms = latency.llm_ttft_ms(agent_d)
    Lt.agent_reported_ms = latency.agent_reported_delay_ms(agent_d)
    browser = art.browser if art is not None else None
    if browser is not None and browser.user_kpi_ms is not None:
        # USER_KPI, measured on the page (AudioWorklets): EoT on the mic -> first playout
        Lt.user_kpi_ms = float(browser.user_kpi_ms)
    if browser is not None:
        Lt.user_kpi_raw_ms = browser.user_kpi_raw_ms
        Lt.clock_sync_rtt_ms = browser.clock_sync_rtt_ms
    if browser is not None and browser.mic_underruns is not None:
        late = [u for u in browser.mic_underruns if u.in_speech]
        res.continuity.user_mic_underruns = len(late)
        res.continuity.user_mic_underrun_ms = float(sum(u.ms for u in late))
        if late:
            # the user side's timing, not the agent's: say it on the turn
            res.errors.append(
                f"user side: {len(late)} fake-capture chunk(s) reached the page late inside the user's speech "
                f"({', '.join(f'at {u.at_ms:.0f} ms' for u in late)} of the case WAV; "
                f"{sum(u.ms for u in late):g} ms zero-filled on the page's mic, not in what was sent; a chunk "
                "10 ms late or more makes Chromium skip a capture tick: the rest of the stimulus went 10 ms later)")
    if frames and full is not None:
        fr = np.asarray(frames, dtype=np.float64)
        if sl:
            sel = fr[(fr[:, 1] >= sl[0]) & (fr[:, 1] < sl[1])]
            fr = sel if sel.shape[0] >= 2 else fr
        ia = latency.inter_arrival_ms(fr)
        if ia.size:
            Lt.inter_arrival_p95_ms = float(np.percentile(ia, 95))
            Lt.inter_arrival_max_ms = float(ia.max())
        t_eot = user_t.t_user_eot
        s0 = user_t.segments[0] if user_t.segments else None
        respond = s0 is None or s0.expect == "respond"
        if t_eot is not None and respond:
            # talk-over: the reply already sounding at the user's EoT (it started after the
            # user began speaking); such a turn has no latency and is counted apart
            t_on_user = s0.t_onset if s0 is not None and s0.t_onset is not None else user_t.t_audio_start
            early = None
            if t_on_user is not None:
                st = latency.time_to_sample(frames, float(t_on_user), full.sr)
                o = latency.first_onset(full.samples, full.sr, start=st)
                if o is not None:
                    t_o = latency.sample_arrival_time(frames, o, full.sr)
                    slice_t = latency.sample_arrival_time(frames, int(sl[0]), full.sr) if sl else None
                    if t_o < float(t_eot) and (slice_t is None or slice_t < float(t_eot)):
                        early = t_o
            pm = defects.premature_ms(early, float(t_eot), float(t_on_user) if t_on_user is not None else None)
            res.turntaking.premature_ms = 0.0 if early is None else pm
            if early is not None:
                Lt.premature = True
                Lt.first_audio_t = early
        if t_eot is not None and not Lt.premature:
            start = latency.time_to_sample(frames, float(t_eot), full.sr)
            on = latency.first_onset(full.samples, full.sr, start=start)
            if on is not None:
                Lt.first_audio_t = latency.sample_arrival_time(frames, on, full.sr)
                Lt.eot_to_first_audio_ms = (Lt.first_audio_t - float(t_eot)) * 1000.0
                if Lt.agent_reported_ms is not None:
                    Lt.reported_vs_heard_ms = Lt.eot_to_first_audio_ms - Lt.agent_reported_ms
                if stages:  # the agent's stages are re-based to this clock (AgentBlock.clock_offset_s)
                    # the parts of the reply heard (its publish time from agent.replies), not the
                    # turn's first decision and first reply the stages keep
                    parts = instrument.latency_parts(float(t_eot), stages, Lt.first_audio_t,
                                                     replies=agent.replies if agent is not None else None)
                    Lt.uplink_ms, Lt.agent_ms, Lt.downlink_ms = parts["uplink_ms"], parts["agent_ms"], parts["downlink_ms"]
                    Lt.split_note = parts["why"]

    # content
    if transcriber is not None and seg is not None and res.audio_valid:
        # everything the agent said in this turn: with several replies (a first one cut by
        # the user, then the answer) the user heard them all, and agent.reply_text holds all
        said = seg
        reps = probe.replies if probe is not None else []
        if full is not None and len(reps) > 1 and reps[0].start_sample is not None:
            ends = [r.end_sample for r in reps if r.end_sample is not None]
            end = min(full.samples.shape[0], (max(ends) if ends else full.samples.shape[0]) + int(0.3 * full.sr))
            if end > reps[0].start_sample:
                said = Audio(full.samples[int(reps[0].start_sample):end], full.sr)
        try:
            text = transcriber.transcribe(said.samples, said.sr)
        except Exception as exc:  # STT is the caller's; its failure is a turn error, not a crash
            res.errors.append(f"transcribe failed: {type(exc).__name__}: {exc}")
            text = None
        if text is not None:
            res.content.transcript = text
            rate, missing = content.keyword_hit_rate(text, list(case.expect_keywords))
            res.content.keyword_hit_rate = rate
            res.content.missing_keywords = missing
            ref_text = case.reference_reply or (agent.reply_text if agent is not None else None)
            if ref_text:
                res.content.wer = content.word_error_rate(ref_text, text)

    # turn-taking
    segs = [s for s in user_t.segments if s.expect in ("stop", "ignore") and s.t_onset is not None]
    if segs and full is not None and frames:
        to_t = lambda i: latency.sample_arrival_time(frames, i, full.sr)  # noqa: E731
        agent_iv = turntaking.activity_intervals(full.samples, full.sr, to_t)
        # the reply that was speaking ends where the agent's next reply (its answer to the
        # barge-in) begins; without this cut the answer would count as "still talking"
        probe_replies = probe.replies if probe is not None else []
        cut = probe_replies[1].start_sample if len(probe_replies) > 1 else None
        first_iv = turntaking.activity_intervals(full.samples[:cut], full.sr, to_t) if cut else agent_iv
        # the reply first_iv holds, if the agent reports it cut: its first sound to its reply_end.
        # Its first sound is where the heard audio is active at or after the reply's start sample,
        # not the next onset after a silence: the start sample can fall a few ms into the sound,
        # and first_onset then skipped the reply's first words (CI of 199dd44: the barge-in onset
        # in a 300 ms comma pause 1.0 s into the reply read as "agent not speaking")
        r0 = probe_replies[0] if probe_replies else None
        cut_reply = None
        if r0 is not None and r0.interrupted and r0.start_sample is not None and r0.t_end_recv is not None:
            t_r0 = to_t(int(r0.start_sample))
            sounding = [max(a, t_r0) for a, b in first_iv if b > t_r0]
            if sounding:
                cut_reply = (sounding[0], float(r0.t_end_recv))
        stops = [turntaking.stop_time_ms(first_iv, float(s.t_onset), cut_reply=cut_reply)
                 for s in segs if s.expect == "stop"]
        stops = [v for v in stops if v is not None]
        res.turntaking.stop_time_ms = max(stops) if stops else None
        # pauses the agent meant: the silences of its own copy, placed on the probe clock
        # at the reply's first audible sample
        intended: list[tuple[float, float]] = []
        if pre is not None and Lt.first_audio_t is not None:
            pre_iv = turntaking.activity_intervals(pre.samples, pre.sr, lambda i: float(i) / pre.sr)
            if pre_iv:
                base = Lt.first_audio_t - pre_iv[0][0]
                intended = [(a + base, b + base) for a, b in turntaking.silences_between(pre_iv)]
        ys = [turntaking.false_yield(agent_iv, float(s.t_onset), intended=intended)
              for s in segs if s.expect == "ignore"]
        res.turntaking.false_yields = sum(1 for y in ys if y)
        if user is not None and user_t.t_audio_start is not None:  # the browser path has no user.wav
            t0 = float(user_t.t_audio_start)
            user_iv = turntaking.activity_intervals(user.samples, user.sr, lambda i: t0 + i / user.sr)
            res.turntaking.talk_over_ms = turntaking.talk_over_ms(user_iv, agent_iv)

    _uplink(res, user_t, agent, user, audio.agent_input)

    if frames and seg is not None and seg_start is not None and full is not None:
        _where_holes_arose(res, probe.receiver if probe is not None else [], agent, frames, full.sr, seg_start,
                           seg.samples.shape[0])
    _expectations(res, art, seg, pre, full, frames, transcriber, detect_repeats, spectrum)

    # perceptual
    if perceptual:
        if ok:
            from autortc.metrics.perceptual import visqol_mos

            a, b = fidelity._overlap(pre_at, seg.samples, lag or 0)
            try:
                res.perceptual.mos_lqo = visqol_mos(a, b, seg.sr)
                res.perceptual.scored = True
            except Exception as exc:
                res.perceptual.reason = f"{type(exc).__name__}: {exc}"
        else:
            res.perceptual.reason = f"capture_status {res.capture_status}"
    else:
        res.perceptual.reason = "not requested"
    return res


def _uplink(res: TurnResult, user_t: UserBlock, agent: Any, user: Audio | None, agent_input: Audio | None) -> None:
    """``res.uplink``: each spoken segment of ``user.wav`` found in the agent's input copy."""
    ai = agent.agent_input if agent is not None else None
    if user is None or agent_input is None or ai is None or user_t.t_audio_start is None:
        return
    segs = user_t.segments or [UserSegment(index=0, expect="respond", speech_start_sample=user_t.speech_start_sample,
                                           eot_sample=user_t.eot_sample, t_end=user_t.t_user_eot)]
    segs = [sg for sg in segs if sg.speech_start_sample is not None and sg.eot_sample is not None
            and sg.eot_sample > sg.speech_start_sample]
    t0 = float(user_t.t_audio_start)
    found = [uplink.segment_uplink(user.samples, user.sr, t0, (int(sg.speech_start_sample), int(sg.eot_sample)),
                                   agent_input.samples, agent_input.sr, float(ai.t_first_sample)) for sg in segs]

    def late_ms(t: float | None, sample: int) -> float:
        """How late the user side handed ``sample`` over against its schedule (its frame's real
        hand-over time is in the contract; the WAV's sample positions are the schedule)."""
        return 0.0 if t is None else (t - (t0 + sample / user.sr)) * 1000.0

    def from_handover(f: uplink.SegmentUplink, sg: UserSegment) -> tuple[float, float]:
        """(end, start) delays from the real hand-over: a late mic frame (the harness's event loop held
        up) is the instrument's own lateness, reported apart, not a slower uplink."""
        return (f.delay_ms - late_ms(sg.t_end, int(sg.eot_sample)),
                f.delay_start_ms - late_ms(sg.t_onset, int(sg.speech_start_sample)))

    measured = [(f, sg) for f, sg in zip(found, segs) if f is not None]
    U = res.uplink
    U.segments = len(measured)
    if not measured:
        res.errors.append(f"uplink: none of {len(segs)} spoken segment(s) found in agent_input.wav")
        return
    if found[0] is not None:
        end, start = from_handover(found[0], segs[0])
        U.delay_ms, U.warp_ms = end, start - end
        U.handover_late_ms = late_ms(segs[0].t_end, int(segs[0].eot_sample))
    U.delay_max_ms = max(from_handover(f, sg)[0] for f, sg in measured)
    U.corr = min(f.corr for f, _ in measured)
    lost = [g for f, _ in measured for g in f.lost]
    U.lost_ms = float(sum(g.duration_ms for g in lost))
    U.lost = [Interval(g.start_ms, g.end_ms) for g in lost]


REPLY_TAIL_MS = 300.0  # as the runner's slice (runner.conversation.TurnTimeouts.reply_tail_ms)


DRY_MATCH_MS = 60.0
"""A heard dropout is at a wait of the agent's output when they are this close in the heard
reply: the jitter buffer's own stretching within a turn (tens of ms here) plus a 20 ms frame."""


def _where_holes_arose(res: TurnResult, samples: Sequence[ReceiverSample], agent: Any, frames: list, sr: int,
                       seg_start: int, seg_len: int) -> None:
    """Receiver counters over the heard reply, the agent output's waits placed in it, and where
    each heard dropout arose.

    A dropout heard and not in the agent's copy (origin ``path``) is the agent's (``agent``)
    when it falls on a wait of the agent's own audio output (its framework's playback runs: a TTS
    segment came late), ``sender`` when it met no concealment of the probe's jitter buffer either
    (the packets as sent carried it: the encoder, or a wait the agent did not report), and stays
    ``path`` otherwise.
    """
    at = lambda ms: latency.sample_arrival_time(frames, seg_start + int(ms * sr / 1000.0), sr)  # noqa: E731
    t_seg = at(0.0)
    C, R = res.continuity, res.receiver
    reply = next((r for r in agent.replies if r.runs), None) if agent is not None else None
    dry = playout.dry_spans(reply.runs, stopped_at_s=reply.playback_position_s if reply.interrupted else None) \
        if reply is not None else []
    lag_ms = res.fidelity.lag_ms
    if dry and lag_ms is not None and reply.t_first_frame_published is not None:
        # the reply's first published sample is heard at lag_ms into the segment: that arrival minus
        # its publish time is this turn's published -> heard delay, which moves each wait onto the
        # heard audio (the global lag sits between the lags before and after a wait: DRY_MATCH_MS)
        delay_s = at(lag_ms) - reply.t_first_frame_published
        C.agent_output_dry = [Interval(round((d.t_start + delay_s - t_seg) * 1000.0, 2),
                                       round((d.t_end + delay_s - t_seg) * 1000.0, 2)) for d in dry]
    d = receiver.delta(samples, t_seg, at(seg_len / sr * 1000.0)) if samples else None
    if d is not None:
        R.packets_received, R.packets_lost = d.packets_received, d.packets_lost
        R.concealment_events = d.concealment_events
        R.concealed_ms, R.silent_concealed_ms = round(d.concealed_ms, 2), round(d.silent_concealed_ms, 2)
        R.accelerate_ms, R.decelerate_ms = round(d.accelerate_ms, 2), round(d.decelerate_ms, 2)
        R.jitter_buffer_ms = None if d.jitter_buffer_ms is None else round(d.jitter_buffer_ms, 2)
    if not C.dropouts:
        return
    tol = DRY_MATCH_MS
    at_dry = [any(w.start_ms - tol <= g.end_ms and g.start_ms <= w.end_ms + tol for w in C.agent_output_dry)
              for g in C.dropouts]
    concealed = None
    if d is not None:
        spans = receiver.concealment_spans(samples)
        concealed = [receiver.concealed_at(spans, at(g.start_ms), at(g.end_ms)) for g in C.dropouts]
        R.dropouts_concealed = sum(concealed)
    if res.origin.get("audible_dropout") != "path":
        return
    if all(at_dry):
        res.origin["audible_dropout"] = "agent"  # its output waited there: the hole is the agent's
    elif concealed is not None and not any(c or a for c, a in zip(concealed, at_dry)):
        res.origin["audible_dropout"] = "sender"  # no concealment: the packets carried the hole
    elif any(at_dry):
        res.origin["audible_dropout"] = "agent+path"


def _heard_reply_span(replies: Sequence[Any], n: int, sr: int) -> tuple[int, int] | None:
    """``[start, end)`` in the full capture of the first reply that started (has ``start_sample``),
    as the runner slices it: from its start to its end + the tail, not into the next reply."""
    heard = [r for r in replies if r.start_sample is not None]
    if not heard:
        return None
    r = heard[0]
    a = int(r.start_sample)
    end = (int(r.end_sample) if r.end_sample is not None else n) + int(REPLY_TAIL_MS * sr / 1000)
    nxt = [int(q.start_sample) for q in heard[1:]]
    if nxt:
        end = min(end, nxt[0])
    end = min(end, n)
    return (a, end) if end > a else None


SPECTRUM_MIN_S = 1.0
"""The band (``hf_loss``) and rate (``speed``) verdicts compare long-term spectra of the reply and
its copy; a copy with less audible audio than this is not judged (those gates are not required for
the turn). Source: run rs8, rate_slow_speaker: the agent's first reply was cut after 0.106 s (its
copy) and compared with 0.41 s of heard audio, which gave speed 0.913 (FAIL) and HF drop 0.90
(WARN) where nothing was resampled or filtered. The planted rate and band faults are on replies
of 2-6 s (docs/faultbench.md)."""


def _spectrum_judgeable(pre: np.ndarray, sr: int) -> bool:
    """The copy ``(n_samples,)`` at ``sr`` Hz has at least :data:`SPECTRUM_MIN_S` of audible audio
    (first to last audible sample)."""
    span = fingerprints.audible_span(pre, sr)
    return span is not None and (span[1] - span[0]) / sr >= SPECTRUM_MIN_S


SPEED_COMPENSATE = 0.01
"""A speed change at least this large (|ratio - 1|; the speed gate WARNs at 0.02) is undone before
dropouts are looked for: a reply 8.8 % fast drifts from its copy by 88 ms a second, which the local
lag cannot follow, and its "dropouts" were the speed fault counted again (issue 18 item 6)."""


def _heard_dropouts(seg: Audio, pre_at: np.ndarray, lag: int) -> list[continuity.Gap]:
    """Dropouts of the heard reply against the agent's copy, in the reply's own time (ms).

    A speed/pitch change (:func:`defects.speed_ratio`) is undone first (the reply resampled onto
    the copy's time base and aligned again), and only the band the reply still carries
    (:func:`defects.common_band_hz`) is compared: a lost band or a wrong rate is a named verdict
    (``hf_loss``, ``speed``), not holes in time.
    """
    from autortc.metrics import fidelity

    post, ref, sr, k = seg.samples, pre_at, seg.sr, 1.0
    spd = defects.speed_ratio(ref, post, sr)
    if spd is not None and abs(spd - 1.0) >= SPEED_COMPENSATE:
        post = resample(post, sr, int(round(sr * spd)))
        lag = fidelity.align(ref, post, sr).lag_samples
        k = spd
    fc = defects.common_band_hz(ref, post, sr)
    if fc is not None:
        post, ref = defects.band_limit(post, sr, 0.85 * fc), defects.band_limit(ref, sr, 0.85 * fc)
    found = defects.frame_dropouts(post, ref, sr, lag=lag, local_lag=continuity._local_lag)
    return [continuity.Gap(d.start_ms / k, d.end_ms / k) for d in found]


def _interrupted(user_t: UserBlock, probe: Any) -> bool:
    """The first reply was cut by the user (a ``stop`` segment, or the probe saw it interrupted):
    its missing end is turn-taking (judged by barge_in_stop / talk_over), not missing audio."""
    if any(s.expect == "stop" for s in user_t.segments):
        return True
    reps = probe.replies if probe is not None else []
    return bool(reps) and bool(reps[0].interrupted)


def _covered(g: continuity.Gap, declared: Sequence[Span]) -> bool:
    """Is the gap inside a pause the agent declared (``agent.expected_silence_ms``, reply ms)?"""
    return any(float(a) - 20.0 <= g.start_ms and g.end_ms <= float(b) + 20.0 for a, b in declared)


def _origin(found: list[tuple[float, float]], own: list[tuple[float, float]], *, tol_ms: float = 20.0) -> str:
    """"agent" when every finding has a counterpart (+-``tol_ms``) in the agent's own copy,
    "path" when none has, "agent+path" otherwise."""
    hit = [any(a - tol_ms <= e and s <= b + tol_ms for a, b in own) for s, e in found]
    return "agent" if all(hit) else "path" if not any(hit) else "agent+path"


def _expectations(res: TurnResult, art: TurnArtifacts | None, seg: Audio | None, pre: Audio | None,
                  full: Audio | None, frames: list, transcriber: Transcriber | None, detect_repeats: bool,
                  spectrum: bool) -> None:
    """Fill ``res.expected``: the metrics this turn should have measured, with why each
    missing one was not (the gates stage FAILs a P0 gate whose metric stayed unmeasured)."""
    user_t = art.user if art is not None else UserBlock(source="bot")
    case = art.case if art is not None else CaseBlock()
    segs = user_t.segments
    respond = not segs or segs[0].expect == "respond"
    exp: dict[str, str] = {}

    def want(path: str, why: str) -> None:
        exp[path] = "" if res.metric(path) is not None else why

    no_seg = "no reply audio (post_rtc_reply.wav missing and no probe.reply_slice)"
    for p in ("continuity.audible_dropouts", "continuity.max_gap_ms", "level.clipping_ratio",
              "fingerprints.peak_spike_count"):
        want(p, no_seg)
    if detect_repeats:
        want("fingerprints.repeat_count", no_seg)
    if respond and art is not None:
        if res.latency.premature:
            pass  # talk-over: judged by talk_over, counted apart from the latency distribution
        else:
            why = ("no probe capture/frames" if not frames or full is None else
                   "user EoT time unknown (user.t_user_eot)" if user_t.t_user_eot is None else
                   "no reply onset found in the capture after the user's EoT")
            want("latency.eot_to_first_audio_ms", why)
            want("turntaking.premature_ms", why)
    if pre is not None:
        why = f"capture_status {res.capture_status}" if res.capture_status != "OK" else "reference comparison failed"
        if spectrum:  # a copy under SPECTRUM_MIN_S has no band or rate to judge
            want("fingerprints.hf_ratio_drop", why)
            want("fingerprints.speed_change", why)
        if not _interrupted(user_t, art.probe if art is not None else None):
            want("continuity.missing_audio_ms", why)
    if respond and case.expect_keywords:
        why = ("no transcriber configured" if transcriber is None else
               "reply audio not valid (silent or missing)" if not res.audio_valid else
               next((e for e in res.errors if e.startswith("transcribe failed")), "no transcript"))
        want("content.keyword_hit_rate", why)
    if any(s.expect == "stop" for s in segs):
        want("turntaking.stop_time_ms", "agent audio at the barge-in onset not found (was it speaking?)")
    if any(s.expect == "ignore" for s in segs):
        want("turntaking.false_yields", "user/probe timelines missing")
    res.expected = exp


def compute_turn_metrics(turn_dir: Path, *, gates: Any = None, transcribe: Any = None,
                         perceptual: bool = False) -> TurnResult:
    """Read a turn folder, :func:`compute` it and let the gates stage judge it (tests and tools;
    a run does the same in :func:`autortc.runner.analysis.analyze_turn`).

    ``transcribe``: a :class:`Transcriber` or a ``(samples, sr) -> text`` callable.
    Never raises for bad artifacts; the reasons are in ``errors`` (an unusable trace FAILs).
    """
    from autortc.gates import judge_turn, load_gates

    turn = load_turn(Path(turn_dir))
    tx = transcribe if (transcribe is None or isinstance(transcribe, Transcriber)) else FunctionTranscriber(transcribe)
    res = compute(turn.artifacts, turn.audio, transcriber=tx, perceptual=perceptual, errors=turn.errors)
    if turn.artifacts is None:
        res.case_id, res.trace_id = Path(turn_dir).parent.name, Path(turn_dir).name
    judge_turn(res, gates if gates is not None else load_gates(), failed=turn.artifacts is None)
    log.info("turn metrics case=%s trace_id=%s capture=%s verdict=%s eot_to_first_audio_ms=%s max_gap_ms=%s",
             res.case_id, res.trace_id, res.capture_status, res.verdict, res.latency.eot_to_first_audio_ms,
             res.continuity.max_gap_ms)
    return res


def add_perceptual_scores(items: list[tuple[Path, TurnResult]], *, max_workers: int | None = None,
                          gates: Any = None) -> list[str]:
    """Fill ``perceptual`` of several turns with ViSQOL MOS-LQO, scored in a process pool.

    ``items`` are ``(turn_dir, result)`` pairs; only turns with ``capture_status == "OK"``
    are scored (pre-RTC vs the aligned reply).  Returns the trace_ids that were scored.
    With ``gates`` (a GateSet) the verdicts of every turn are evaluated again.
    """
    from autortc.metrics.perceptual import score_many

    jobs: list[tuple[np.ndarray, np.ndarray, int]] = []
    owners: list[TurnResult] = []
    for turn_dir, res in items:
        if res.capture_status != "OK":
            res.perceptual.reason = f"capture_status {res.capture_status}"
            continue
        a = load_turn(Path(turn_dir)).audio
        seg = a.reply or a.full
        if a.pre is None or seg is None:
            res.perceptual.reason = "pre or post audio unreadable"
            continue
        pre_at = resample(a.pre.samples, a.pre.sr, seg.sr)
        lag = int(round((res.fidelity.lag_ms or 0.0) * seg.sr / 1000.0))
        x, y = fidelity._overlap(pre_at, seg.samples, lag)
        jobs.append((x, y, seg.sr))
        owners.append(res)
    scored: list[str] = []
    for res, mos in zip(owners, score_many(jobs, max_workers=max_workers)):
        res.perceptual.mos_lqo = mos.mos_lqo
        res.perceptual.scored = mos.mos_lqo is not None
        res.perceptual.reason = mos.error or ""
        if res.perceptual.scored:
            scored.append(res.trace_id)
    if gates is not None:
        from autortc.gates import evaluate_turn

        for _, res in items:
            res.verdicts = evaluate_turn(res, gates)
            res.verdict = worst([v.status for v in res.verdicts] + (["FAIL"] if res.errors and not res.verdicts else []))
    log.info("visqol scored %d/%d turns: %s", len(scored), len(items), ", ".join(scored))
    return scored

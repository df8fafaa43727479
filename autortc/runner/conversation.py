"""One user turn over real WebRTC: place the case's segments on the mic (timed from the
start, the previous segment, or the agent's speech as heard at the probe), wait until the
agent has answered and gone quiet, and write the turn's artifacts under its trace_id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from autortc.artifacts import (
    AGENT_INPUT_WAV,
    AgentBlock,
    AgentInput,
    AgentReply,
    CaseBlock,
    ProbeBlock,
    ProbeReply,
    ReceiverSample,
    TurnArtifacts,
    UserBlock,
    UserSegment,
    write_trace,
)
from autortc.bots.barrier import HarnessSetupError
from autortc.bots.probe_bot import AUDIBLE_RMS, PROBE_SR, ProbeBot, TraceEvents
from autortc.bots.mic import PlacedSegment
from autortc.bots.user_bot import UserBot
from autortc.protocol.messages import OPTIONAL, REQUIRED
from autortc.cases import Case
from autortc.metrics.latency import first_onset, reply_start
from autortc.runner.live_slots import LiveSlots, hold

log = logging.getLogger("autortc.runner")


class TurnError(HarnessSetupError):
    """The turn could not be driven (an anchor never came); the message names what (retried)."""


@dataclass(frozen=True, kw_only=True)
class TurnTimeouts:
    """Seconds. ``quiet_s``: the agent counts as done after this long with no reply playing.
    ``join_s``: for the agent to join the room, publish its track and answer ``probe_ready``.
    ``leave_s``: after the user left, for the agent to unpublish its audio or leave the room before
    the probe leaves and the room is deleted (:meth:`~autortc.bots.probe_bot.ProbeBot.wait_agent_left`);
    an agent still publishing after it is left to the room's deletion, as before.
    ``settle_s``: after the double ACK, how long the room's connection carries the mic's silence before
    its first turn may start (the wait is outside the live slot, so a room waiting for its slot settles
    meanwhile). Source: session 26 (docs/agent-latency.md), 350 turns: turns started within 1 s of the
    double ACK reached the agent time-warped (uplink |warp| P50 18.9 ms, correlation with what the user
    sent 0.64: the agent's jitter buffer still converging), turns started 3 s or more after it did not
    (|warp| P50 0.0-0.1 ms, correlation 0.88), and the agent's STT misread the first more often."""

    join_s: float = 30.0
    settle_s: float = 3.0
    lead_in_s: float = 0.3
    reply_s: float = 20.0
    anchor_s: float = 20.0
    quiet_s: float = 1.5
    max_turn_s: float = 60.0
    trace_s: float = 3.0
    reply_tail_ms: float = 300.0
    leave_s: float = 5.0


def _load_segment_pcm(path: Path, sr: int) -> np.ndarray:
    data, file_sr = sf.read(path, dtype="int16", always_2d=True)
    pcm = data[:, 0]
    if file_sr != sr:
        import soxr

        pcm = soxr.resample(pcm, file_sr, sr)
    return np.ascontiguousarray(pcm, dtype=np.int16)


def _ended(tr: TraceEvents) -> bool:
    return bool(tr.replies) and all(r.end_msg is not None for r in tr.replies.values())


async def _wait_change(tr: TraceEvents, timeout_s: float) -> bool:
    """Wait for a new event on this trace; False when ``timeout_s`` passed without one."""
    tr.changed.clear()
    try:
        await asyncio.wait_for(tr.changed.wait(), timeout_s)
        return True
    except asyncio.TimeoutError:
        return False


async def run_turn(
    *,
    user: UserBot,
    probe: ProbeBot,
    case: Case,
    trace_id: str,
    turn_index: int,
    run_id: str,
    out_dir: Path,
    timeouts: TurnTimeouts = TurnTimeouts(),
    slots: LiveSlots | None = None,
) -> TurnArtifacts:
    """Drive one turn and write ``user.wav``, ``pre_rtc.wav``, ``post_rtc_full.wav``,
    ``post_rtc_reply.wav`` and ``trace.json`` into ``out_dir``. Returns the turn's contract.

    ``slots``: the run's :class:`~autortc.runner.live_slots.LiveSlots`; the turn holds one from
    ``turn_start`` until the agent is done (:func:`settle`), so no more turns than it allows are
    live at once in the run (``None``: no limit). The mic sends silence while the turn waits.

    Raises ``TurnError`` when an anchor (the agent's speech) never came, so the
    anchored segment could not be placed.
    """
    async with hold(slots, trace_id):
        tr, full_start, mic_start, placed = await _live_turn(user, probe, case, trace_id, turn_index, timeouts)
    return _write_artifacts(user, probe, case, tr, placed, trace_id, turn_index, run_id, out_dir,
                            full_start=full_start, mic_start=mic_start, timeouts=timeouts)


async def _live_turn(user: UserBot, probe: ProbeBot, case: Case, trace_id: str, turn_index: int,
                     timeouts: TurnTimeouts) -> tuple[TraceEvents, int, int, list[PlacedSegment]]:
    """The live part of :func:`run_turn`: start the trace, place the segments, wait until the agent is done."""
    sr = user.mic.sr
    tr = probe.begin_trace(trace_id)
    full_start = probe.samples
    mic_start = user.mic.published_samples
    await user.start_turn(trace_id, case_id=case.id, turn_index=turn_index)
    t_turn = time.monotonic()
    placed = []
    for seg in case.segments:
        pcm = _load_segment_pcm(seg.wav_path, sr)
        if seg.after == "start" or (seg.after == "previous_end" and not placed):
            anchor = t_turn + timeouts.lead_in_s
        elif seg.after == "previous_end":
            anchor = user.mic.time_of(placed[-1].end_sample)
        else:
            anchor = await _agent_anchor(seg.after, probe, tr, timeouts=timeouts, case=case)
        p = user.place(
            index=seg.index,
            pcm=pcm,
            at_time=anchor + seg.offset_ms / 1000.0,
            speech_start=int(seg.speech_start_ms * sr / 1000),
            speech_end=min(pcm.size, int(round(seg.speech_end_ms * sr / 1000))),
        )
        placed.append(p)
        log.info("trace_id=%s segment %d (%s, after=%s+%d ms) at mic sample %d",
                 trace_id, seg.index, seg.expect, seg.after, seg.offset_ms, p.start_sample)
    await user.wait_published(user.mic.last_segment_end(), timeout_s=timeouts.max_turn_s)

    await settle(probe, tr, case, timeouts)
    return tr, full_start, mic_start, placed


async def settle(probe: ProbeBot, tr: TraceEvents, case: Case, timeouts: TurnTimeouts) -> None:
    """Wait (on events, with timeouts) until the agent is done with this turn.

    Done = every reply it started has ended and none starts for ``quiet_s``; then the
    ``trace`` message and pre-RTC WAVs (they follow ``reply_end``), then a short tail of
    audio, counted in probe samples.
    """
    deadline = time.monotonic() + timeouts.max_turn_s
    if any(s.expect in ("respond", "stop") for s in case.segments):
        t_limit = time.monotonic() + timeouts.reply_s
        while not tr.replies and time.monotonic() < t_limit:
            await _wait_change(tr, t_limit - time.monotonic())
    while tr.replies and time.monotonic() < deadline:
        if _ended(tr):
            if not await _wait_change(tr, timeouts.quiet_s):
                break
        else:
            await _wait_change(tr, max(0.01, deadline - time.monotonic()))
    if tr.replies and not _ended(tr):
        missing = sorted(i for i, r in tr.replies.items() if r.end_msg is None)
        log.warning("trace_id=%s reply_end of reply %s did not come within %.0f s (max_turn_s); measuring what arrived",
                    tr.trace_id, missing, timeouts.max_turn_s)
    t_limit = time.monotonic() + timeouts.trace_s
    # a reply that never started publishing (cancelled before its first frame: reply_end but no
    # reply_start) has no pre-RTC copy to wait for
    ended = [i for i, r in tr.replies.items() if r.end_msg is not None and r.start_sample is not None]
    while time.monotonic() < t_limit and (tr.trace_msg is None or any(i not in tr.pre_rtc for i in ended)
                                          or _agent_input_due(tr)):
        await _wait_change(tr, t_limit - time.monotonic())
    if tr.replies and tr.trace_msg is None:
        log.warning("trace_id=%s the agent's 'trace' message did not come within %.0f s of the last reply_end "
                    "(agent stages not measured)", tr.trace_id, timeouts.trace_s)
    if any(i not in tr.pre_rtc for i in ended):
        log.warning("trace_id=%s pre-RTC WAV of reply %s did not come within %.0f s (fidelity not measured)",
                    tr.trace_id, sorted(i for i in ended if i not in tr.pre_rtc), timeouts.trace_s)
    if _agent_input_due(tr):
        log.warning("trace_id=%s the agent-input WAV its trace announced did not come within %.0f s (uplink not "
                    "measured)", tr.trace_id, timeouts.trace_s)
    tail = int(timeouts.reply_tail_ms * PROBE_SR / 1000)
    want = max([r.end_sample or 0 for r in tr.replies.values()] + [probe.samples]) + tail
    deadline = time.monotonic() + 5.0
    while probe.samples < want and time.monotonic() < deadline:
        await asyncio.sleep(0.01)  # the probe's own audio clock advancing, polled per 10 ms frame
    if probe.samples < want:
        log.warning("trace_id=%s the probe's audio stopped: %d of %d samples of the reply tail within 5 s",
                    tr.trace_id, probe.samples, want)


def _agent_input_due(tr: TraceEvents) -> bool:
    """The agent's latest ``trace`` announces an agent-input copy longer than the one received."""
    want = ((tr.trace_msg or {}).get("agent_input") or {}).get("samples")
    return isinstance(want, int) and (tr.agent_input is None or tr.agent_input[0].size < want)


async def _agent_anchor(anchor: str, probe: ProbeBot, tr: TraceEvents, *, timeouts: TurnTimeouts, case: Case) -> float:
    deadline = time.monotonic() + timeouts.anchor_s
    while time.monotonic() < deadline:
        replies = sorted(tr.replies.values(), key=lambda r: r.reply_index)
        if anchor == "agent_speech_start" and replies and replies[0].onset_sample is not None:
            return probe.time_of_sample(replies[0].onset_sample)
        if anchor == "agent_speech_end" and replies and replies[0].t_end_recv is not None:
            return replies[0].t_end_recv
        await _wait_change(tr, max(0.01, deadline - time.monotonic()))
    raise TurnError(f"case {case.id}: anchor '{anchor}' never came within {timeouts.anchor_s:.0f} s (the agent did not speak)")


def probe_artifacts(probe: ProbeBot, tr: TraceEvents, out_dir: Path, *, full_start: int,
                    timeouts: TurnTimeouts) -> tuple[ProbeBlock, AgentBlock | None]:
    """Write the probe's WAVs (``post_rtc_full``, ``post_rtc_reply``, ``pre_rtc``) for this trace;
    returns the ``probe`` and ``agent`` blocks of the turn's contract."""
    out_dir.mkdir(parents=True, exist_ok=True)
    full = probe.pcm(full_start)
    if full.size:
        sf.write(out_dir / "post_rtc_full.wav", full, PROBE_SR, subtype="PCM_16")
    frames = [(t, s - full_start) for t, s in probe.arrivals if s >= full_start]

    replies = sorted(tr.replies.values(), key=lambda r: r.reply_index)
    reply_slice = None
    # the reply the user heard first: a reply cancelled before its first frame (the agent took a
    # pause in the user's sentence for its end, then the user went on) was never heard; measuring
    # it left the heard reply unmeasured ("post_rtc_reply.wav missing") on real bench turns
    heard = [r for r in replies if r.start_sample is not None]
    first = heard[0] if heard else (replies[0] if replies else None)
    later = [r for r in replies if first is not None and r.reply_index > first.reply_index]
    if first is not None and first.start_sample is not None and full.size:
        start = first.start_sample - full_start
        # the reply's first audible sample (sample-accurate, the metrics' own onset finder)
        onset = first_onset(full.astype(np.float32) / 32768.0, PROBE_SR, start=start, threshold=AUDIBLE_RMS)
        start = reply_start(full, PROBE_SR, start, onset)  # 10 ms pre-roll before the first sound (a click too)
        end_evt = (first.end_sample - full_start) if first.end_sample is not None else full.size
        end = min(full.size, end_evt + int(timeouts.reply_tail_ms * PROBE_SR / 1000))
        if later and later[0].start_sample is not None:
            end = min(end, later[0].start_sample - full_start)
        cut = bool(first.end_msg and first.end_msg.get("interrupted"))
        if cut and first.reply_index in tr.pre_rtc:
            # an interrupted reply ends where what the agent published ends (its pre-RTC copy is
            # cut at the playback position), not at the late reply_end: the silence after a
            # barge-in is not a gap of the reply
            pre, pre_sr = tr.pre_rtc[first.reply_index]
            end = min(end, start + int(pre.size * PROBE_SR / pre_sr) + int(timeouts.reply_tail_ms * PROBE_SR / 1000))
        if end > start:
            reply_slice = (int(start), int(end))
            sf.write(out_dir / "post_rtc_reply.wav", full[start:end], PROBE_SR, subtype="PCM_16")
    if first is not None and first.reply_index in tr.pre_rtc:
        pre, pre_sr = tr.pre_rtc[first.reply_index]
        if pre.size:
            sf.write(out_dir / "pre_rtc.wav", pre, pre_sr, subtype="PCM_16")

    probe_block = ProbeBlock(
        sr=PROBE_SR, full_wav="post_rtc_full.wav",
        t_full_start=frames[0][0] if frames else None,
        frames=frames,
        t_reply_start_evt=first.t_start_recv if first else None,
        t_reply_end_evt=first.t_end_recv if first else None,
        reply_slice=reply_slice,
        replies=[
            ProbeReply(reply_index=r.reply_index,
                       start_sample=None if r.start_sample is None else r.start_sample - full_start,
                       end_sample=None if r.end_sample is None else r.end_sample - full_start,
                       t_start_recv=r.t_start_recv, t_end_recv=r.t_end_recv,
                       interrupted=bool(r.end_msg and r.end_msg.get("interrupted")))
            for r in replies
        ],
        # from one read before the first frame (the baseline of its deltas) to the newest
        receiver=_receiver_window(probe.receiver, frames[0][0] if frames else None),
    )
    if tr.agent_input is not None and tr.agent_input[0].size:
        sf.write(out_dir / AGENT_INPUT_WAV, tr.agent_input[0], tr.agent_input[1], subtype="PCM_16")
    pre_sr = tr.pre_rtc[first.reply_index][1] if first and first.reply_index in tr.pre_rtc else None
    block = agent_block(tr.trace_msg, pre_rtc_sr=pre_sr)
    if block is not None and block.agent_input is not None:
        got = tr.agent_input
        block.agent_input.wav = AGENT_INPUT_WAV if got is not None and got[0].size else None
        if got is not None and got[0].size:
            block.agent_input.samples, block.agent_input.sr = int(got[0].size), int(got[1])
    return probe_block, block


def _receiver_window(samples: list[ReceiverSample], t_start: float | None) -> list[ReceiverSample]:
    if t_start is None:
        return []
    i = next((k for k, x in enumerate(samples) if x.t >= t_start), len(samples))
    return list(samples[max(0, i - 1):])


SAME_HOST_OFFSET_S = 1.0
"""Clock offsets below this are one host's CLOCK_MONOTONIC seen through two samples of
``t_wall - t_mono`` (µs apart, plus NTP slew between them): not re-based, so stages of agents
on the runner's host stay exact.  Monotonic clocks of two hosts differ by their boot times."""

_TRACE_KNOWN = {"v", "type", "t_mono", "t_wall", *REQUIRED["trace"], *OPTIONAL["trace"]}


def agent_block(msg: dict[str, Any] | None, *, pre_rtc_sr: int | None,
                runner_wall_offset_s: float | None = None) -> AgentBlock | None:
    """The agent's ``trace`` message as the contract's agent block, its times re-based.

    The agent stamps every message with ``t_mono`` and ``t_wall`` (docs/protocol.md, Clocks):
    its stages are moved onto the runner's monotonic clock by the difference of the two
    sides' ``t_wall − t_mono`` (the hosts' clock offset; under :data:`SAME_HOST_OFFSET_S`
    it is one host's clock and nothing moves).
    """
    if not msg:
        return None
    ours = (time.time() - time.monotonic()) if runner_wall_offset_s is None else runner_wall_offset_s
    theirs = float(msg["t_wall"]) - float(msg["t_mono"]) if "t_wall" in msg and "t_mono" in msg else ours
    off = theirs - ours
    if abs(off) < SAME_HOST_OFFSET_S:
        off = 0.0  # one host, one CLOCK_MONOTONIC: the difference is sampling and NTP slew, not an offset
    shift = (lambda t: None if t is None else float(t) + off)  # noqa: E731
    replies = []
    for r in msg.get("replies") or []:
        r = dict(r)
        for k in ("t_first_frame_published", "t_first_capture", "t_end"):
            if r.get(k) is not None:
                r[k] = shift(r[k])
        if r.get("runs"):
            r["runs"] = [(float(o), shift(t), float(d)) for o, t, d in r["runs"]]
        replies.append(AgentReply.model_validate(r))
    return AgentBlock(
        stages={k: shift(v) for k, v in (msg.get("stages") or {}).items() if isinstance(v, (int, float))},
        lk_metrics={k: float(v) for k, v in (msg.get("lk_metrics") or {}).items() if isinstance(v, (int, float))},
        transcript=str(msg.get("transcript") or ""),
        reply_text=str(msg.get("reply_text") or ""),
        replies=replies,
        pre_rtc_sr=pre_rtc_sr,
        expected_silence_ms=[(float(a), float(b)) for a, b in (msg.get("expected_silence_ms") or [])],
        agent_input=_agent_input(msg.get("agent_input"), shift),
        clock_offset_s=off,
        extra={k: v for k, v in msg.items() if k not in _TRACE_KNOWN},
    )


def _agent_input(field: Any, shift: Any) -> AgentInput | None:
    """The trace message's ``agent_input`` (its first sample's time re-based); None when absent or
    not an object with ``sr``, ``samples`` and ``t_first_sample`` (logged: the uplink is then not measured)."""
    if not field:
        return None
    try:
        return AgentInput(sr=int(field["sr"]), samples=int(field["samples"]),
                          t_first_sample=shift(float(field["t_first_sample"])))
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("agent trace field 'agent_input': expected an object with sr, samples, t_first_sample; "
                    "got %r (%s)", field, exc)
        return None


def case_block(case: Case) -> CaseBlock:
    """The case's part of the contract: ``expected_silence_ms`` are the case file's pauses of the
    first segment (ms from its WAV's start), measured on the user side; the reply's intended
    pauses are the agent's (pre_rtc.wav, ``agent.expected_silence_ms``), never the case's."""
    return CaseBlock(
        p_level=case.p_level, expect_keywords=list(case.expect_keywords),
        expected_silence_ms=[(float(a), float(b)) for a, b in case.expected_silence_ms],
        reference_reply=case.reference_reply, gates=dict(case.gates), tags=list(case.tags),
    )


def _write_artifacts(user: UserBot, probe: ProbeBot, case: Case, tr: TraceEvents, placed, trace_id: str,
                     turn_index: int, run_id: str, out_dir: Path, *, full_start: int, mic_start: int,
                     timeouts: TurnTimeouts) -> TurnArtifacts:
    probe_block, agent_blk = probe_artifacts(probe, tr, out_dir, full_start=full_start, timeouts=timeouts)
    sr = user.mic.sr
    sf.write(out_dir / "user.wav", user.mic.pcm()[mic_start:], sr, subtype="PCM_16")
    t0 = user.mic.time_of(mic_start)
    segs = []
    for p, spec in zip(placed, case.segments):
        segs.append(UserSegment(
            index=p.index, expect=spec.expect, after=spec.after, offset_ms=spec.offset_ms,
            start_sample=p.start_sample - mic_start,
            speech_start_sample=p.start_sample - mic_start + p.speech_start,
            eot_sample=p.start_sample - mic_start + p.speech_end,
            t_onset=user.mic.time_of(p.start_sample + p.speech_start),
            t_end=user.mic.time_of(p.start_sample + p.speech_end),
        ))
    first_seg = segs[0] if segs else None
    art = TurnArtifacts(
        run_id=run_id, case_id=case.id, trace_id=trace_id, turn_index=turn_index,
        wall_offset_s=time.time() - time.monotonic(),
        user=UserBlock(
            source="bot", wav="user.wav", sr=sr, t_audio_start=t0,
            speech_start_sample=first_seg.speech_start_sample if first_seg else None,
            eot_sample=first_seg.eot_sample if first_seg else None,
            t_user_eot=first_seg.t_end if first_seg else None,
            segments=segs,
        ),
        probe=probe_block, agent=agent_blk, case=case_block(case),
    )
    write_trace(out_dir, art)
    log.info("trace_id=%s artifacts written: replies=%d pre_rtc=%s", trace_id, len(probe_block.replies), agent_blk is not None)
    return art

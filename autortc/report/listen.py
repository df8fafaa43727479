"""The report's "listen" section: per turn, audio players, a timeline, gate values and fault attribution.

For each turn folder of a run (``<run>/<case>/<trace_id>/``) it builds plain data for the HTML
template (:class:`TurnListen`):

* ``players``: what the user said (``user.wav``), what the agent sent (``pre_rtc.wav``, before
  WebRTC) and what the user heard (``post_rtc_reply.wav``, else the full capture), each resampled
  to 16 kHz mono with soxr and encoded as Ogg/Opus through soundfile at ``compression_level``
  :data:`OPUS_LEVEL` (~27 kbit/s measured on a piper reply), embedded as a ``data:`` URI so the
  report stays one file.  A 16-case fast run with three players per turn embeds ~0.5 MB.
* ``timeline``: lanes and markers on one time axis, seconds from sample 0 of ``user.wav``
  (host monotonic clock, the runner's): user speech (each segment: the first asks, barge-ins and
  backchannels later), the agent's reply as heard (probe reply spans), user EoT, the agent's
  end-of-turn and first frame published, the probe's reply start/end events, first audible audio,
  barge-in / backchannel onsets, and the gaps and spikes the metrics found in the heard reply.
  Geometry (px) is computed here; the template only draws it (SVG).
* ``gates``: each turn verdict with its measured value and threshold (:func:`autortc.console.format_value`).
* ``attribution``: where the metrics can say it, whether a fault came from the agent (before its
  pre-RTC copy) or from the path (between pre-RTC and what the user heard).

Nothing here judges: verdicts come from the gates stage (``TurnResult.verdicts``).
"""

from __future__ import annotations

import base64
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autortc.results import ORIGIN_TEXT, CaseResult, TurnResult

log = logging.getLogger("autortc.report")

__all__ = ["OPUS_LEVEL", "TurnListen", "encode_ogg", "listen_views"]

OPUS_LEVEL = 0.9
"""libsndfile Opus compression level (0 = best quality / largest, 1 = smallest); 0.9 gave 27 kbit/s
on a 16 kHz piper reply (60 kbit/s at 0.8) — speech stays intelligible, a 16-case report stays light."""
PLAYER_SR = 16000
MAX_PLAYER_S = 60.0  # a longer capture is cut (a stuck turn must not make the report heavy)

# timeline geometry (px)
WIDTH, LEFT, RIGHT, LANE_H, TOP = 900, 120, 20, 18, 22


def encode_ogg(path: Path) -> tuple[str | None, float | None, str]:
    """``(data URI, duration s, note)`` of a WAV as 16 kHz mono Ogg/Opus; ``(None, None, why)`` when
    the file is missing or unreadable."""
    import soundfile as sf
    import soxr

    if not path.is_file():
        return None, None, f"{path.name} not recorded"
    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # a broken WAV must not break the report
        return None, None, f"{path.name}: unreadable ({type(exc).__name__}: {exc})"
    mono = x.mean(axis=1)
    if sr != PLAYER_SR:
        mono = soxr.resample(mono, sr, PLAYER_SR)
    dur = len(mono) / PLAYER_SR
    note = ""
    if dur > MAX_PLAYER_S:
        mono, note = mono[: int(MAX_PLAYER_S * PLAYER_SR)], f"first {MAX_PLAYER_S:.0f} s of {dur:.1f} s"
    if not len(mono):
        return None, 0.0, f"{path.name} is empty"
    buf = io.BytesIO()
    sf.write(buf, np.clip(mono, -1.0, 1.0), PLAYER_SR, format="OGG", subtype="OPUS", compression_level=OPUS_LEVEL)
    return "data:audio/ogg;base64," + base64.b64encode(buf.getvalue()).decode(), dur, note


@dataclass
class Player:
    label: str
    file: str
    src: str | None
    duration_s: float | None
    note: str = ""


@dataclass
class Bar:
    lane: int
    x: float
    w: float
    kind: str  # css class: user, barge, backchannel, heard, gap, spike
    title: str


@dataclass
class Mark:
    x: float
    kind: str  # css class: eot, agent, event, first_audio, onset
    label: str
    title: str


@dataclass
class Timeline:
    width: int
    height: int
    lanes: list[str]
    bars: list[Bar]
    marks: list[Mark]
    ticks: list[tuple[float, float, str]]  # (x px, t s, label)
    note: str = ""
    lane_y0: int = TOP
    lane_h: int = LANE_H
    left: int = LEFT


@dataclass
class TurnListen:
    case_id: str
    trace_id: str
    turn_index: int
    verdict: str
    anchor: str
    players: list[Player]
    timeline: Timeline | None
    gates: list[dict[str, str]]
    attribution: list[str]
    notes: list[str] = field(default_factory=list)


def _gates(turn: TurnResult) -> list[dict[str, str]]:
    from autortc.console import format_value

    rows = []
    for g in turn.verdicts:
        limit = format_value(g.metric, g.threshold)
        if g.warn_threshold is not None and g.warn_threshold != g.threshold:
            limit += f" (warn {format_value(g.metric, g.warn_threshold)})"
        rows.append(dict(gate=g.gate, status=g.status, measured=format_value(g.metric, g.measured),
                         threshold=f"{g.op} {limit}", message=g.message or ""))
    return rows


def _attribution(turn: TurnResult, art) -> list[str]:
    """Agent vs path, only where the metrics separate them."""
    out: list[str] = []
    L, C, lv, F = turn.latency, turn.continuity, turn.level, turn.fingerprints
    stages = art.agent.stages if art is not None and art.agent is not None else {}
    t_eot = art.user.t_user_eot if art is not None else None
    pub = stages.get("first_frame_published")
    # a talk-over turn has a first audible sample but no latency (it is kept out of the EoT figures)
    if L.first_audio_t is not None and L.eot_to_first_audio_ms is not None and pub is not None and t_eot is not None:
        agent_ms, path_ms = (pub - t_eot) * 1000.0, (L.first_audio_t - pub) * 1000.0
        out.append(f"EoT → first audio {L.eot_to_first_audio_ms:.0f} ms = agent {agent_ms:.0f} ms (user EoT → its first "
                   f"frame published) + path {path_ms:.0f} ms (published → first audible sample heard)")
    # Everything the user heard is judged; the agent's own copy only says where a fault arose
    # (issue 18 item 4: attribution, never an excuse).  Only pauses the agent meant -- silences
    # of its copy up to a sentence pause, or declared -- are excused.
    O = turn.origin
    agent_g = [g for g in C.gaps if any(a.start_ms - 20 <= g.end_ms and g.start_ms <= a.end_ms + 20 for a in C.agent_gaps)]
    path_g = [g for g in C.gaps if g not in agent_g]
    if path_g:
        out.append(f"path: {len(path_g)} gap(s) in what the user heard that are not in what the agent sent "
                   f"(max {max(g.end_ms - g.start_ms for g in path_g):.0f} ms)")
    if agent_g or C.agent_gaps:
        out.append(f"agent: {len(C.agent_gaps)} silence(s) longer than a sentence pause already in the agent's own "
                   f"audio (max {max((a.end_ms - a.start_ms for a in C.agent_gaps), default=0):.0f} ms): "
                   f"judged as gaps, attributed to the agent")
    if C.excused_gaps:
        out.append(f"excused: {len(C.excused_gaps)} pause(s) the agent meant (its own copy's sentence pauses or "
                   f"declared expected silence)")
    if C.audible_dropouts:
        where = ORIGIN_TEXT.get(O.get("audible_dropout", ""), "origin unknown")
        out.append(f"{O.get('audible_dropout', 'heard')}: {C.audible_dropouts} audible dropout(s) ({where})")
        R = turn.receiver
        if R.dropouts_concealed is not None:
            # the probe's own WebRTC receiver is the outside witness of "on the way"
            out.append(f"receiver: {R.dropouts_concealed} of them at a concealment of the probe's jitter buffer "
                       f"(packets missing or late); {C.audible_dropouts - R.dropouts_concealed} with none there")
    if C.agent_output_dry:
        out.append(f"agent: its audio output ran dry {len(C.agent_output_dry)} time(s) inside the reply (max "
                   f"{max(w.end_ms - w.start_ms for w in C.agent_output_dry):.1f} ms by its framework's playback runs): "
                   "the next audio came late (e.g. a TTS segment); the room output sends 10 ms ticks, so even a short "
                   "wait can be a hole the user hears")
    R = turn.receiver
    if R.concealment_events:
        out.append(f"receiver: the probe's jitter buffer concealed {R.concealed_ms or 0:.0f} ms of the reply in "
                   f"{R.concealment_events} event(s) ({R.packets_lost or 0} packet(s) lost, the rest late)")
    for key, n, what in (("peak_spike", F.peak_spike_count, "spike(s)/boom(s)"), ("repeats", F.repeat_count, "repeated chunk(s)")):
        if not n:
            continue
        o = O.get(key)
        where = {"agent": "in the agent's own audio too: the agent produced them",
                 "path": "with no counterpart in the agent's audio: added on the way",
                 "agent+path": "some in the agent's own audio, some added on the way"}.get(o or "", "no agent copy to tell where they arose")
        out.append(f"{o or 'heard'}: {n} {what} in what the user heard ({where}); judged either way")
    clip = next((g for g in turn.verdicts if g.gate == "clipping"), None)
    if clip is not None and clip.threshold is not None:  # the gate's own limit says what counts as clipping
        if lv.pre_clipping_ratio is not None and lv.pre_clipping_ratio >= clip.threshold:
            out.append(f"agent: its own audio clips ({100 * lv.pre_clipping_ratio:.2f} % of samples before WebRTC)")
        elif clip.status in ("FAIL", "WARN"):
            out.append(f"path: clipping appears after WebRTC ({100 * (lv.clipping_ratio or 0):.2f} % of heard "
                       f"samples, {100 * (lv.pre_clipping_ratio or 0):.2f} % in the agent's audio)")
    if F.input_spike_count:
        out.append(f"user audio: {F.input_spike_count} spike(s) already in user.wav (the case's own input)")
    miss = turn.content.missing_keywords
    if miss and art is not None and art.agent is not None and art.agent.reply_text:
        said = [k for k in miss if k.lower() in art.agent.reply_text.lower()]
        if said:
            out.append(f"path/STT: the agent's text has {', '.join(said)} but the heard transcript does not")
        else:
            out.append(f"agent: its reply text lacks {', '.join(miss)}")
    U = turn.uplink
    if U.lost_ms:
        where = ", ".join(f"{i.start_ms:.0f}-{i.end_ms:.0f}" for i in U.lost[:4])
        out.append(f"uplink: {U.lost_ms:.0f} ms of the user's speech reached the agent as silence (ms in user.wav: "
                   f"{where}): the agent was given damaged speech")
    elif U.delay_ms is not None and miss and art is not None and art.agent is not None:
        out.append(f"uplink: the agent received the user's speech with no silent hole (its end {U.delay_ms:.0f} ms after "
                   f"it was sent); it transcribed {art.agent.transcript!r}")
    return out


def _timeline(turn: TurnResult, art) -> Timeline | None:
    if art is None or art.user.t_audio_start is None:
        return None
    t0 = art.user.t_audio_start
    sr_u = art.user.sr or 16000
    lanes = ["user", "heard", "events"]
    bars: list[Bar] = []
    marks: list[Mark] = []
    times: list[float] = [0.0]

    def rel(t: float | None) -> float | None:
        if t is None:
            return None
        times.append(t - t0)
        return t - t0

    segs = art.user.segments or []
    if segs:
        for s in segs:
            if s.speech_start_sample is None or s.eot_sample is None:
                continue
            a, b = s.speech_start_sample / sr_u, s.eot_sample / sr_u
            kind = {"respond": "user", "stop": "barge", "ignore": "backchannel"}[s.expect]
            bars.append(Bar(0, a, b - a, kind, f"user speech ({kind}) {a:.2f}–{b:.2f} s"))
            times += [a, b]
            if s.expect != "respond" and s.t_onset is not None:
                x = rel(s.t_onset)
                marks.append(Mark(x, "onset", "barge-in" if s.expect == "stop" else "backchannel",
                                  f"{'barge-in' if s.expect == 'stop' else 'backchannel'} onset {x:.2f} s"))
    elif art.user.speech_start_sample is not None and art.user.eot_sample is not None:
        a, b = art.user.speech_start_sample / sr_u, art.user.eot_sample / sr_u
        bars.append(Bar(0, a, b - a, "user", f"user speech {a:.2f}–{b:.2f} s"))
        times += [a, b]
    x = rel(art.user.t_user_eot)
    if x is not None:
        marks.append(Mark(x, "eot", "user EoT", f"user end of speech {x:.2f} s"))
    p = art.probe
    reply0: float | None = None
    if p is not None and p.t_full_start is not None:
        for r in p.replies:
            if r.start_sample is None:
                continue
            a = rel(p.t_full_start + r.start_sample / p.sr)
            b = rel(p.t_full_start + (r.end_sample if r.end_sample is not None else r.start_sample) / p.sr)
            bars.append(Bar(1, a, max(b - a, 0.0), "heard",
                            f"reply {r.reply_index} heard {a:.2f}–{b:.2f} s" + (" (interrupted)" if r.interrupted else "")))
        if p.reply_slice is not None:
            reply0 = p.t_full_start + p.reply_slice[0] / p.sr - t0
            if not p.replies:  # no per-reply spans: the slice cut into post_rtc_reply.wav is what was heard
                a, b = rel(p.t_full_start + p.reply_slice[0] / p.sr), rel(p.t_full_start + p.reply_slice[1] / p.sr)
                bars.append(Bar(1, a, b - a, "heard", f"reply heard (post_rtc_reply.wav) {a:.2f}–{b:.2f} s"))
        for name, t in (("reply start evt", p.t_reply_start_evt), ("reply end evt", p.t_reply_end_evt)):
            x = rel(t)
            if x is not None:
                marks.append(Mark(x, "event", name, f"probe event {name} {x:.2f} s"))
    if art.agent is not None:
        for name, label in (("end_of_turn", "agent EoT"), ("first_frame_published", "published")):
            x = rel(art.agent.stages.get(name))
            if x is not None:
                marks.append(Mark(x, "agent", label, f"agent stage {name} {x:.2f} s"))
    x = rel(turn.latency.first_audio_t)
    if x is not None:
        eot = turn.latency.eot_to_first_audio_ms
        marks.append(Mark(x, "first_audio", "first audio",
                          f"first audible sample heard {x:.2f} s" + (f" (EoT → audio {eot:.0f} ms)" if eot else "")))
    if reply0 is not None:
        for g in turn.continuity.gaps:
            a, b = reply0 + g.start_ms / 1000, reply0 + g.end_ms / 1000
            bars.append(Bar(2, a, b - a, "gap", f"gap {g.end_ms - g.start_ms:.0f} ms at {a:.2f} s"))
        for s in turn.fingerprints.spikes:
            a, b = reply0 + s.start_ms / 1000, reply0 + s.end_ms / 1000
            bars.append(Bar(2, a, max(b - a, 0.004), "spike", f"spike at {a:.2f} s"))
    t_max = max(max(times), max((b.x + b.w for b in bars), default=0.0)) + 0.2
    t_min = min(0.0, min(times))
    scale = (WIDTH - LEFT - RIGHT) / max(t_max - t_min, 1e-3)

    def px(t: float) -> float:
        return round(LEFT + (t - t_min) * scale, 1)

    for b in bars:
        b.x, b.w = px(b.x), round(max(b.w * scale, 1.5), 1)
    for m in marks:
        m.x = px(m.x)
    step = next(s for s in (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0) if (t_max - t_min) / s <= 12)
    ticks = [(px(t), round(float(t), 3), f"{t:g} s") for t in np.arange(np.ceil(t_min / step) * step, t_max, step)]
    height = TOP + LANE_H * len(lanes) + 8 + 14 * 2
    return Timeline(WIDTH, height, lanes, bars, marks, ticks)


def listen_views(run_dir: Path, cases: list[CaseResult]) -> list[TurnListen]:
    """One :class:`TurnListen` per turn of ``cases`` whose folder is under ``run_dir``."""
    from autortc.artifacts import AGENT_INPUT_WAV, load_turn

    out = []
    for c in cases:
        for t in c.turns:
            d = Path(run_dir) / c.case_id / t.trace_id
            notes: list[str] = []
            loaded = load_turn(d)  # never raises; a bad trace is a note
            art = loaded.artifacts
            notes += loaded.errors
            players = []
            # (label, files tried in order, shown only when present: agents that send their input copy do)
            for label, names, optional in (("user said (user.wav)", ["user.wav"], False),
                                           ("agent heard (its input)", [AGENT_INPUT_WAV], True),
                                           ("agent sent (pre-RTC)", ["pre_rtc.wav"], False),
                                           ("user heard (post-RTC reply)", ["post_rtc_reply.wav", "post_rtc_full.wav"], False)):
                path = next((d / n for n in names if (d / n).is_file()), d / names[0])
                if optional and not path.is_file():
                    continue
                src, dur, note = encode_ogg(path)
                players.append(Player(label, path.name, src, dur, note))
            out.append(TurnListen(case_id=c.case_id, trace_id=t.trace_id, turn_index=t.turn_index, verdict=t.verdict,
                                  anchor=f"turn-{c.case_id}-{t.trace_id}", players=players,
                                  timeline=_timeline(t, art), gates=_gates(t), attribution=_attribution(t, art),
                                  notes=notes + list(t.errors)))
    return out

"""Timing error bars: the instrument's own error and the WebRTC path's spread.

Two different things move a measured EoT → first audio latency, and a voice engineer needs them
apart (issue 17 §3):

* **the instrument's error** — how far AutoRTC's reconstructed times (user EoT, first audible
  sample at the probe) can be from the truth. ``tests/unit/test_instrument_timing.py`` feeds the
  probe's frame timestamping + onset finder and the user side's EoT timestamp with a known
  sample while the event loop is deliberately delayed (frames late, in bursts) and asserts the
  reconstruction within ``bound_ms``. :data:`INSTRUMENT` holds what those tests measured here.
* **the path's spread** — on the bundled stack every time is on one host clock, so each turn's
  latency splits exactly into uplink (user EoT → the agent's end-of-turn decision; includes the
  VAD's silence window), agent (decision → first frame handed to its audio source) and downlink
  (→ first audible sample at the probe). The spread of uplink + downlink is a reported figure,
  not noise in a verdict.

:func:`timing_summary` is what ``summary.json`` (``extra.timing``) and the report show next to
the latency figures of every run (``autortc run`` and ``autortc faultbench``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

INSTRUMENT: dict = {
    "bound_ms": 2.0,
    # 2026-12-02, this machine: -0.39 .. -0.58 ms with the loop blocked 0/30/120 ms before or at the
    # onset (the 1 ms onset finder's own offset); before the lower-envelope fix in
    # latency.sample_arrival_time the error was the loop's lag: +11.5 ms (30 ms block), +101.6 ms (120 ms)
    "first_audio_max_error_ms": 0.6,
    "user_eot_max_error_ms": 0.01,  # -0.003 .. 0.000 ms: MicTimeline.time_of uses the real hand-over time
    "source": "tests/unit/test_instrument_timing.py",
}

PARTS = ("uplink_ms", "agent_ms", "downlink_ms")


SPLIT_EARLIER_REPLY = "the reply heard is not the agent's first of the turn"
SPLIT_DECIDED_BEFORE_EOT = "the agent decided the end of turn before the user's EoT"
SPLIT_NO_HEARD_REPLY = "no reply of the agent was published before the first audible sample"


def heard_reply(replies: Sequence[Any] | None, first_audio_t: float | None) -> Any:
    """The agent's reply the first audible sample belongs to: of ``replies`` (``AgentReply``, times on
    the runner's clock), the last whose first frame was published at or before ``first_audio_t``.
    None without replies, without a first audible sample or when none was published before it."""
    if not replies or first_audio_t is None:
        return None
    pub = [r for r in replies if r.t_first_frame_published is not None
           and float(r.t_first_frame_published) <= float(first_audio_t)]
    return max(pub, key=lambda r: float(r.t_first_frame_published)) if pub else None


def latency_parts(t_user_eot: float | None, stages: dict[str, float], first_audio_t: float | None,
                  replies: Sequence[Any] | None = None) -> dict[str, Any]:
    """One turn's latency split on one host clock, ms: ``uplink_ms`` (user EoT → the agent's
    ``end_of_turn`` decision of the reply heard), ``agent_ms`` (→ that reply's first frame published),
    ``downlink_ms`` (→ the first audible sample at the probe). Times in s of the same monotonic
    clock; a part whose two ends are not both known is ``None``, and ``why`` says why a part the
    agent did report is not used (else None). The three add up to first_audio_t − t_user_eot.

    The agent's stages keep the *first* time of each name in the turn. When the agent answered into
    a pause of the user's (its first decision, its first reply cancelled or cut as the user went on)
    the reply heard after the user's EoT is a later one: its publish time is taken from ``replies``
    (:func:`heard_reply`), and the ``end_of_turn`` stage, the first decision's, is not this reply's,
    so uplink and agent stay unknown (fb-browser-1903 b003: the stages' decision 962 ms and first
    frame 446 ms before the user's EoT, reply 1 heard: uplink −962, downlink 1393 ms). A decision
    before the user's EoT is one the user went on talking through (its reply cancelled before a
    first frame leaves no reply record: fb-bots-1802 b038), so it is not used either. Without
    ``replies`` (an agent that does not report them) the stages are used as they are."""
    dec, pub = stages.get("end_of_turn"), stages.get("first_frame_published")
    why = None
    if replies and first_audio_t is not None:
        heard = heard_reply(replies, first_audio_t)
        if heard is None:
            dec, pub, why = None, None, SPLIT_NO_HEARD_REPLY
        else:
            pub = heard.t_first_frame_published
            earlier = sorted(r.reply_index for r in replies if r.reply_index < heard.reply_index)
            if earlier and dec is not None:
                dec, why = None, (f"{SPLIT_EARLIER_REPLY} (reply {heard.reply_index} heard, "
                                  f"{', '.join(map(str, earlier))} before it): the end_of_turn stage is an earlier decision's")
    if why is None and dec is not None and t_user_eot is not None and float(dec) < float(t_user_eot):
        dec, why = None, (f"{SPLIT_DECIDED_BEFORE_EOT} ({1000.0 * (float(t_user_eot) - float(dec)):.0f} ms): "
                          "the user went on talking, the reply heard followed a later decision")

    def d(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else 1000.0 * (float(b) - float(a))

    return {"uplink_ms": d(t_user_eot, dec), "agent_ms": d(dec, pub), "downlink_ms": d(pub, first_audio_t), "why": why}


def spread(xs: Iterable[float]) -> dict[str, Any]:
    """``{"n", "median", "p05", "p95", "std"}`` of ``xs`` in their unit (rounded to 0.1); ``{"n": 0}`` if empty."""
    a = np.asarray([float(x) for x in xs], dtype=float)
    if not a.size:
        return {"n": 0}
    return {"n": int(a.size), "median": round(float(np.median(a)), 1), "p05": round(float(np.percentile(a, 5)), 1),
            "p95": round(float(np.percentile(a, 95)), 1), "std": round(float(a.std(ddof=1)), 1) if a.size > 1 else 0.0}


def timing_summary(rows: Iterable[tuple[Any, ...]]) -> dict[str, Any]:
    """Latency and its parts over ``rows`` of ``(latency_ms, uplink_ms, agent_ms, downlink_ms[, why])``
    (``why``: :func:`latency_parts`' reason a part is not split, or None).

    Only rows with a latency and all three parts count (``turns``). A row with a latency and a part
    unknown is counted in ``not_decomposed`` (reason → turns: its ``why``, else "a stage not
    reported"), never spread. A turn whose agent decided the end of turn before the user's EoT (it
    answered into a pause: the reply heard followed a later decision) has no meaningful split: it
    is counted in ``decided_before_eot`` too (also a row with a negative uplink, as older results
    hold it). Returns the :func:`spread` of the latency, each part and ``path_ms`` = uplink +
    downlink, ``sum_error_ms_max`` (how far the parts' sum is from the measured latency: ~0 on one
    clock) and :data:`INSTRUMENT` (the instrument's error bar)."""
    full: list[tuple[Any, ...]] = []
    not_dec: dict[str, int] = {}
    for r in rows:
        if r[0] is None:
            continue
        why = r[4] if len(r) > 4 else None
        if None not in r[:4] and r[1] >= 0 and why is None:
            full.append(r)
            continue
        if why is None:
            why = (f"{SPLIT_DECIDED_BEFORE_EOT} (negative uplink)" if None not in r[:4]
                   else "a stage not reported (end_of_turn or first_frame_published)")
        key = why.split(" (")[0].split(":")[0]
        not_dec[key] = not_dec.get(key, 0) + 1
    out: dict[str, Any] = {
        "turns": len(full),
        "decided_before_eot": not_dec.get(SPLIT_DECIDED_BEFORE_EOT, 0),
        "not_decomposed": not_dec,
        "latency_ms": spread(r[0] for r in full),
        "uplink_ms": spread(r[1] for r in full),
        "agent_ms": spread(r[2] for r in full),
        "downlink_ms": spread(r[3] for r in full),
        "path_ms": spread(r[1] + r[3] for r in full),
        "instrument": dict(INSTRUMENT),
    }
    if full:
        out["sum_error_ms_max"] = round(max(abs(r[1] + r[2] + r[3] - r[0]) for r in full), 3)
    return out

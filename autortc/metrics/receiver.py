"""What the probe's WebRTC receiver did over a stretch of the turn (pure functions).

Input: ``probe.receiver`` of trace.json, the cumulative inbound-rtp counters of the agent's
audio read every ~0.1 s on the runner's monotonic clock (:mod:`autortc.bots.receiver_stats`).
The counters are libwebrtc's (its jitter buffer, NetEq), not ours: a dropout the audio
detectors hear on the way either came with a concealment in the receiver (packets missing or
late at the probe) or it did not (the sender's pacing, or the detector).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from autortc.artifacts import ReceiverSample

CONCEALMENT_TOL_S = 0.1
"""A concealment read in the interval (t_prev, t_next] is placed at any time in it; a heard event
within this many seconds of the interval counts as at it (one read interval, ~0.1 s: the read's
own timing and the receiver handing frames over in 10 ms ticks)."""


@dataclass(frozen=True)
class ReceiverDelta:
    """Counter differences over ``[t0, t1]`` (between the read at/before ``t0`` and the first at/after ``t1``)."""

    t0: float
    t1: float
    packets_received: int
    packets_lost: int
    concealment_events: int
    concealed_ms: float  # concealed and not silent
    silent_concealed_ms: float
    accelerate_ms: float  # removed to play faster
    decelerate_ms: float  # inserted to play slower
    jitter_buffer_ms: float | None  # mean time an emitted sample spent in the buffer; None if none emitted


def _arrays(samples: Sequence[ReceiverSample]) -> np.ndarray:
    return np.asarray([s.t for s in samples], dtype=np.float64)


def delta(samples: Sequence[ReceiverSample], t0: float, t1: float) -> ReceiverDelta | None:
    """Counter differences covering ``[t0, t1]`` (monotonic s), or None when the reads do not
    cover it (no read at/before ``t0`` or none at/after ``t1``).

    Sample counts become ms at each read's ``sample_rate_hz``.
    """
    if not samples or t1 < t0:
        return None
    t = _arrays(samples)
    i = int(np.searchsorted(t, t0, side="right")) - 1
    j = int(np.searchsorted(t, t1, side="left"))
    if i < 0 or j >= len(samples):
        return None
    a, b = samples[i], samples[j]
    ms = 1000.0 / b.sample_rate_hz
    n = b.jitter_buffer_emitted_count - a.jitter_buffer_emitted_count
    return ReceiverDelta(
        t0=a.t, t1=b.t,
        packets_received=b.packets_received - a.packets_received,
        packets_lost=b.packets_lost - a.packets_lost,
        concealment_events=b.concealment_events - a.concealment_events,
        concealed_ms=((b.concealed_samples - b.silent_concealed_samples)
                      - (a.concealed_samples - a.silent_concealed_samples)) * ms,
        silent_concealed_ms=(b.silent_concealed_samples - a.silent_concealed_samples) * ms,
        accelerate_ms=(b.removed_samples_for_acceleration - a.removed_samples_for_acceleration) * ms,
        decelerate_ms=(b.inserted_samples_for_deceleration - a.inserted_samples_for_deceleration) * ms,
        jitter_buffer_ms=((b.jitter_buffer_delay_s - a.jitter_buffer_delay_s) / n * 1000.0) if n > 0 else None,
    )


def concealment_spans(samples: Sequence[ReceiverSample]) -> list[tuple[float, float]]:
    """``(t_prev, t_next)`` of every read interval in which a concealment event began (monotonic s)."""
    return [(a.t, b.t) for a, b in zip(samples, samples[1:]) if b.concealment_events > a.concealment_events]


def concealed_at(spans: Sequence[tuple[float, float]], t_start: float, t_end: float, *,
                 tol_s: float = CONCEALMENT_TOL_S) -> bool:
    """True when a concealment span (from :func:`concealment_spans`) meets ``[t_start, t_end]`` ± ``tol_s``."""
    return any(a - tol_s <= t_end and t_start <= b + tol_s for a, b in spans)

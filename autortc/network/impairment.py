"""Pure impairment model of one link direction: loss, rate cap, delay and jitter.

No I/O and no clock: callers pass the arrival time ``t`` (seconds, any
monotonic origin) and get back the time the packet leaves the link, or
``None`` when the packet is lost. The relay (``relay.py``) drives it with the
real clock; unit tests drive it with synthetic times.

Order inside the link: random loss (the radio) -> token bucket (the
bottleneck, tail drop past ``queue_ms``) -> propagation delay with jitter.

Jitter without reordering (the default) is a *bounded-slope* delay process:
the added delay moves at a constant speed of ``MAX_SLOPE`` ms per ms toward
waypoints drawn uniformly in ``[delay - jitter, delay + jitter]``. Because it
changes by less than the time between two packets, a later packet can never
overtake an earlier one, at any packet rate, and every packet sent at the same
time sees the same delay (probe and media see one process). Its time average
is ``delay_ms`` and its standard deviation is ``jitter_ms / sqrt(5)`` (the
1-D random-waypoint density 6x(1-x)). With ``reorder = true`` each packet
draws its own delay uniformly, as ``tc netem delay D J`` does (standard
deviation ``jitter_ms / sqrt(3)``), and packets may overtake each other.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

from autortc.network.profiles import DirectionSpec

#: ms of delay change per ms of time in the no-reorder jitter process (< 1 keeps FIFO order).
MAX_SLOPE = 0.8
#: After an idle gap longer than this (s) the jitter process restarts from a fresh draw.
_RESTART_GAP_S = 2.0


def expected_delay_std_ms(spec: DirectionSpec) -> float:
    """Standard deviation (ms) of the added one-way delay that ``spec`` produces (no rate cap)."""
    if spec.jitter_ms == 0:
        return 0.0
    return spec.jitter_ms / math.sqrt(3.0 if spec.reorder else 5.0)


#: Interquartile range of the 1-D random-waypoint density 6x(1-x) on [0, 1]:
#: quartiles solve 3x^2 - 2x^3 = 1/4 and 3/4.
_RWP_IQR = 1.0 - 2.0 * 0.32635182233306964


def expected_delay_iqr_ms(spec: DirectionSpec) -> float:
    """Interquartile range (ms) of the added one-way delay that ``spec`` produces (no rate cap).

    Robust to the rare host scheduling stalls that inflate a standard deviation.
    """
    if spec.jitter_ms == 0:
        return 0.0
    return spec.jitter_ms * (1.0 if spec.reorder else 2.0 * _RWP_IQR)


class WaypointDelay:
    """Bounded-slope random-waypoint delay process (seconds in, seconds out).

    ``at(t)`` must be called with non-decreasing ``t``.
    """

    def __init__(self, delay_s: float, jitter_s: float, rng: random.Random, *, max_slope: float = MAX_SLOPE) -> None:
        if not 0 < max_slope < 1:
            raise ValueError(f"max_slope must be in (0, 1), got {max_slope}")
        self._lo, self._hi = delay_s - jitter_s, delay_s + jitter_s
        self._rng = rng
        self._slope = max_slope
        self._t: float | None = None
        self._v = 0.0
        self._target = 0.0

    def _draw(self) -> float:
        return self._rng.uniform(self._lo, self._hi)

    def at(self, t: float) -> float:
        if self._hi == self._lo:
            return self._lo
        if self._t is None or t - self._t > _RESTART_GAP_S:
            self._t, self._v, self._target = t, self._draw(), self._draw()
            return self._v
        dt = max(0.0, t - self._t)
        self._t = t
        while dt > 0:
            dist = self._target - self._v
            need = abs(dist) / self._slope
            if need > dt:
                self._v += math.copysign(self._slope * dt, dist)
                break
            self._v = self._target
            dt -= need
            self._target = self._draw()
        return self._v


class GilbertLoss:
    """Two-state Gilbert loss chain: every packet in the bad state is lost.

    With average loss ``L`` and mean burst ``B`` packets: P(bad->good) = 1/B,
    P(good->bad) = L / (B (1 - L)); the stationary loss is exactly ``L``.
    ``B == 1`` gives independent (Bernoulli) losses.
    """

    def __init__(self, loss: float, burst_packets: float, rng: random.Random) -> None:
        self._rng = rng
        self.loss = loss
        self.r = 1.0 / burst_packets
        self.p = 0.0 if loss == 0 else loss * self.r / (1.0 - loss)
        self._bad = rng.random() < loss

    def lost(self) -> bool:
        if self.loss == 0:
            return False
        if self.r >= 1.0:  # independent losses
            return self._rng.random() < self.loss
        # state for this packet: transition from the previous packet's state
        if self._bad:
            self._bad = self._rng.random() >= self.r
        else:
            self._bad = self._rng.random() < self.p
        return self._bad


class TokenBucket:
    """Token bucket rate cap with a FIFO queue and tail drop.

    Tokens (bytes) accrue at ``rate_bps / 8`` up to ``bucket_bytes``; a packet
    leaves when the bucket holds its size, in arrival order. A packet that
    would wait more than ``queue_s`` is dropped and costs no tokens.
    """

    def __init__(self, rate_bps: float, bucket_bytes: int, queue_s: float) -> None:
        self._rate = rate_bps / 8.0
        self._cap = float(bucket_bytes)
        self._queue_s = queue_s
        self._tokens = float(bucket_bytes)
        self._t_tok: float | None = None
        self._last_depart = -math.inf

    def depart(self, t: float, size: int) -> float | None:
        """Departure time of a ``size``-byte packet arriving at ``t``, or None if dropped."""
        start = max(t, self._last_depart)
        t_tok = start if self._t_tok is None else self._t_tok
        tokens = min(self._cap, self._tokens + (start - t_tok) * self._rate)
        depart = start
        if tokens < size:
            depart += (size - tokens) / self._rate
            tokens = float(size)
        if depart - t > self._queue_s:
            return None
        self._tokens = tokens - size
        self._t_tok = depart
        self._last_depart = depart
        return depart


@dataclass
class DirectionCounters:
    """What one direction actually did (counts, bytes; delays in seconds)."""

    packets_in: int = 0
    bytes_in: int = 0
    lost: int = 0  # random (profile) loss
    dropped_queue: int = 0  # rate cap tail drops
    scheduled: int = 0
    delay_sum_s: float = 0.0
    delay_sq_sum_s: float = 0.0
    delay_max_s: float = 0.0

    def as_dict(self) -> dict[str, float]:
        d = asdict(self)
        n = max(self.scheduled, 1)
        mean = self.delay_sum_s / n
        d["loss_pct"] = 100.0 * (self.lost + self.dropped_queue) / max(self.packets_in, 1)
        d["delay_mean_ms"] = 1000.0 * mean
        d["delay_std_ms"] = 1000.0 * math.sqrt(max(0.0, self.delay_sq_sum_s / n - mean * mean))
        return d


class DirectionModel:
    """The impairment of one direction, from a validated :class:`DirectionSpec`.

    ``schedule(t, size)`` returns the time the packet leaves the link (s, same
    origin as ``t``) or ``None`` when it is lost or tail-dropped. Without
    ``reorder`` the returned times are non-decreasing in call order.
    """

    def __init__(self, spec: DirectionSpec, *, seed: int | None = None, name: str = "") -> None:
        self.spec = spec
        # one generator per mechanism, so loss decisions depend only on the packet
        # sequence and the delay waypoints only on time, whatever the interleaving
        mk = (lambda part: random.Random(f"{seed}:{name}:{part}")) if seed is not None else (lambda part: random.Random())
        self._rng = mk("reorder")
        self._loss = GilbertLoss(spec.loss_pct / 100.0, spec.burst_packets, mk("loss"))
        self._bucket = (
            TokenBucket(spec.rate_kbps * 1000.0, spec.bucket_bytes, spec.queue_ms / 1000.0) if spec.rate_kbps else None
        )
        self._delay = WaypointDelay(spec.delay_ms / 1000.0, spec.jitter_ms / 1000.0, mk("delay"))
        self._last_release = -math.inf
        self.counters = DirectionCounters()

    def schedule(self, t: float, size: int) -> float | None:
        c = self.counters
        c.packets_in += 1
        c.bytes_in += size
        if self._loss.lost():
            c.lost += 1
            return None
        depart = t
        if self._bucket is not None:
            d = self._bucket.depart(t, size)
            if d is None:
                c.dropped_queue += 1
                return None
            depart = d
        if self.spec.reorder:
            extra = self._rng.uniform(self.spec.delay_ms - self.spec.jitter_ms, self.spec.delay_ms + self.spec.jitter_ms) / 1000.0
            release = depart + extra
        else:
            release = max(depart + self._delay.at(depart), self._last_release)
            self._last_release = release
        applied = release - t
        c.scheduled += 1
        c.delay_sum_s += applied
        c.delay_sq_sum_s += applied * applied
        c.delay_max_s = max(c.delay_max_s, applied)
        return release

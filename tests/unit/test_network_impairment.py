"""Pure impairment model: loss chains, token bucket, jitter process (synthetic time, no I/O)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from autortc.network.impairment import (
    MAX_SLOPE,
    DirectionModel,
    GilbertLoss,
    TokenBucket,
    WaypointDelay,
    expected_delay_iqr_ms,
    expected_delay_std_ms,
)
from autortc.network.netns import netem_args, netem_expressible
from autortc.network.profiles import DirectionSpec

pytestmark = pytest.mark.unit


def _bursts(lost: list[bool]) -> list[int]:
    out, run = [], 0
    for x in lost:
        if x:
            run += 1
        elif run:
            out.append(run)
            run = 0
    return out


@pytest.mark.parametrize("loss, burst", [(0.02, 1.0), (0.05, 2.0), (0.10, 3.0)])
def test_gilbert_loss_rate_and_burst_length(loss, burst):
    n = 400_000
    g = GilbertLoss(loss, burst, random.Random(11))
    lost = [g.lost() for _ in range(n)]
    rate = sum(lost) / n
    # burst chains have a larger variance than Bernoulli: allow 5 sigma of the inflated one
    sigma = math.sqrt(loss * (1 - loss) / n * (2 * burst - 1))
    assert abs(rate - loss) < 5 * sigma
    mean_burst = float(np.mean(_bursts(lost)))
    # independent losses still form runs of mean 1/(1-loss)
    expect = burst if burst > 1 else 1 / (1 - loss)
    assert mean_burst == pytest.approx(expect, rel=0.05)


def test_token_bucket_caps_throughput_and_tail_drops():
    rate_bps, size = 800_000.0, 1000  # 100 packets/s at most
    tb = TokenBucket(rate_bps, bucket_bytes=3000, queue_s=0.2)
    departs, dropped = [], 0
    for i in range(2000):  # offered: 1000 packets/s for 2 s
        d = tb.depart(i * 0.001, size)
        if d is None:
            dropped += 1
        else:
            departs.append(d)
    departs = np.array(departs)
    assert np.all(np.diff(departs) >= 0)
    steady = departs[departs > 0.5]
    got_bps = (len(steady) - 1) * size * 8 / (steady[-1] - steady[0])
    assert got_bps == pytest.approx(rate_bps, rel=0.02)
    assert dropped > 1500  # ~90 % of the offered load cannot pass
    # wait never exceeds the queue limit
    tb2 = TokenBucket(rate_bps, bucket_bytes=3000, queue_s=0.2)
    waits = [d - i * 0.001 for i in range(2000) if (d := tb2.depart(i * 0.001, size)) is not None]
    assert max(waits) <= 0.2 + 1e-9


def test_token_bucket_passes_light_load_untouched():
    tb = TokenBucket(1_000_000.0, bucket_bytes=3000, queue_s=0.2)
    for i in range(500):  # 50 kbit/s of 125-byte packets
        t = i * 0.02
        assert tb.depart(t, 125) == t


def test_waypoint_delay_bounds_slope_mean_and_std():
    d, j = 0.050, 0.040
    w = WaypointDelay(d, j, random.Random(5))
    ts = np.arange(0, 120.0, 0.002)
    xs = np.array([w.at(t) for t in ts])
    assert xs.min() >= d - j - 1e-12 and xs.max() <= d + j + 1e-12
    slopes = np.abs(np.diff(xs)) / 0.002
    assert slopes.max() <= MAX_SLOPE + 1e-9  # never falls faster than time: FIFO order holds
    assert xs.mean() * 1e3 == pytest.approx(d * 1e3, abs=1.0)
    spec = DirectionSpec(delay_ms=50, jitter_ms=40)
    assert xs.std() * 1e3 == pytest.approx(expected_delay_std_ms(spec), rel=0.08)
    iqr = np.subtract(*np.percentile(xs, [75, 25])) * 1e3
    assert iqr == pytest.approx(expected_delay_iqr_ms(spec), rel=0.08)


def test_direction_model_keeps_order_without_reorder_and_reorders_when_asked():
    times = np.arange(0, 20.0, 0.005)
    fifo = DirectionModel(DirectionSpec(delay_ms=50, jitter_ms=40), seed=1, name="up")
    rel = np.array([fifo.schedule(t, 100) for t in times])
    assert np.all(np.diff(rel) >= 0)
    iid = DirectionModel(DirectionSpec(delay_ms=50, jitter_ms=40, reorder=True), seed=1, name="up")
    rel2 = np.array([iid.schedule(t, 100) for t in times])
    assert np.sum(np.diff(rel2) < 0) > 100
    assert (rel2 - times).std() * 1e3 == pytest.approx(40 / math.sqrt(3), rel=0.05)
    iqr = np.subtract(*np.percentile(rel2 - times, [75, 25])) * 1e3
    assert iqr == pytest.approx(expected_delay_iqr_ms(DirectionSpec(delay_ms=50, jitter_ms=40, reorder=True)), rel=0.05)


def test_direction_model_counts_what_it_did_and_is_reproducible():
    spec = DirectionSpec(delay_ms=30, jitter_ms=10, loss_pct=5, burst_packets=2)
    times = np.arange(0, 30.0, 0.002)
    runs = []
    for _ in range(2):
        m = DirectionModel(spec, seed=42, name="downlink")
        runs.append([m.schedule(t, 200) for t in times])
        c = m.counters.as_dict()
        assert c["packets_in"] == len(times)
        assert c["lost"] == sum(r is None for r in runs[-1])
        assert c["loss_pct"] == pytest.approx(5.0, abs=0.6)
        assert c["delay_mean_ms"] == pytest.approx(30.0, abs=1.0)
    assert runs[0] == runs[1]


def test_netem_arguments():
    assert netem_args(DirectionSpec()) == ["netem", "limit", "10000"]
    a = netem_args(DirectionSpec(delay_ms=50, jitter_ms=40, reorder=True, loss_pct=2, rate_kbps=750))
    assert a == ["netem", "limit", "10000", "delay", "50ms", "40ms", "loss", "random", "2%", "rate", "750kbit"]
    ge = netem_args(DirectionSpec(delay_ms=10, loss_pct=10, burst_packets=4))
    i = ge.index("gemodel")
    p, r = float(ge[i + 1].rstrip("%")), float(ge[i + 2].rstrip("%"))
    assert r == pytest.approx(25.0) and p / (p + r) == pytest.approx(0.10)
    assert not netem_expressible(DirectionSpec(delay_ms=50, jitter_ms=40))
    with pytest.raises(ValueError, match="without reordering"):
        netem_args(DirectionSpec(delay_ms=50, jitter_ms=40))

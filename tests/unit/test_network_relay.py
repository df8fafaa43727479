"""The UDP relay on 127.0.0.1: a known packet train crosses it; delay, jitter and loss are measured."""

from __future__ import annotations

import asyncio
import math
import os

import numpy as np
import pytest

from autortc.network.impairment import expected_delay_iqr_ms
from autortc.network.measure import LATE_MARGIN_MS, ProbeEcho, direction_stats, send_train, verify
from autortc.network.profiles import NetworkProfile
from autortc.network.relay import PROBE_MAGIC, TcpForwarder, UdpImpairmentRelay

pytestmark = pytest.mark.unit

LOOP = "127.0.0.1"


class _UdpEcho(asyncio.DatagramProtocol):
    """Stands in for the SFU's media port: echoes, and records who sent."""

    def __init__(self) -> None:
        self.sources: list[tuple[str, int]] = []

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.sources.append(addr)
        self.transport.sendto(data, addr)


async def _udp_echo():
    loop = asyncio.get_running_loop()
    t, p = await loop.create_datagram_endpoint(_UdpEcho, local_addr=(LOOP, 0))
    return t, p, t.get_extra_info("sockname")[:2]


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.q: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.q.put_nowait(data)


async def _client(bind_host: str = LOOP):
    loop = asyncio.get_running_loop()
    t, p = await loop.create_datagram_endpoint(_Client, local_addr=(bind_host, 0))
    return t, p


@pytest.fixture
def realtime_priority():
    """Raise this process's CPU priority while a timing-sensitive train runs (root only).

    A user-space relay is only as punctual as its scheduling; on a shared 2-core
    machine under load, a normal-priority process is descheduled for tens of ms.
    The production relay runs at raised priority for the same reason (docs/network.md).
    """
    old = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -15)
    except PermissionError:
        pass
    yield
    os.setpriority(os.PRIO_PROCESS, 0, old)


async def test_packet_train_statistics_match_profile(realtime_priority):
    """4000 packets (2.5 ms apart, 10 s) through delay 40 ms, jitter +/-10 ms, loss 1 % in both directions.

    Loss tolerance +/-0.5 point is > 3 standard errors at n = 4000 (sigma = 0.157 point).
    Delay mean tolerance +/-2 ms (issue 13); jitter as the interquartile range of the
    one-way delay (expected 0.69 x 10 ms), within the verification's tolerance max(2 ms, 25 %).
    """
    profile = NetworkProfile.symmetric("train", delay_ms=40, jitter_ms=10, loss_pct=1.0)
    n = 4000
    assert 3 * math.sqrt(0.01 * 0.99 / n) * 100 < 0.5
    echo, echo_addr = await ProbeEcho.start(LOOP)
    relay = UdpImpairmentRelay(listen=(LOOP, 0), upstream=(LOOP, 9), profile=profile, seed=1234, probe_upstream=echo_addr)
    try:
        await relay.start()
        raw = await send_train(relay.address, echo, count=n, interval_s=0.0025, size=120, drain_s=1.0)
        stats = relay.stats()
    finally:
        await relay.aclose()
        echo.close()
    v = verify(profile, raw, backend="relay")
    print(v.table())
    for dv, delays in ((v.uplink, raw.up_delay_ms), (v.downlink, raw.down_delay_ms)):
        m = dv.measured
        # A VM that stalls (vCPU steal on a shared 2-core host) holds single packets for
        # 50-500 ms; such packets (> delay + jitter + 5 ms, what the verification reports as
        # host stalls) are counted, bounded, and left out of the mean checked here.
        stalled = delays > 40.0 + 10.0 + LATE_MARGIN_MS
        assert stalled.mean() < 0.10, f"{stalled.sum()} of {delays.size} packets held up by the host"
        assert abs(delays[~stalled].mean() - 40.0) <= 2.0, dv
        assert abs(m.delay_p50_ms - 40.0) <= 2.0, dv
        assert abs(m.loss_pct - 1.0) <= 0.5, dv
        assert abs(m.delay_iqr_ms - expected_delay_iqr_ms(profile.uplink)) <= 2.0, dv
        assert m.delay_iqr_ms > 4.0  # the jitter is really there (no jitter: IQR ~ 0.1 ms)
        assert m.reordered == 0  # jitter without reordering
    # what the relay says it did agrees exactly with what crossed it
    assert stats.uplink.packets_in == n == stats.probe_packets
    assert stats.uplink.lost == n - raw.up_seq.size
    assert stats.downlink.packets_in == raw.down_sent == raw.up_seq.size
    assert stats.downlink.lost == raw.down_sent - raw.down_seq.size
    assert stats.forwarded_up == raw.up_seq.size and stats.forwarded_down == raw.down_seq.size
    assert all(c.verdict == "agree" for dv in (v.uplink, v.downlink) for c in dv.checks if c.name != "delay_ms"), v.table()


async def test_reorder_true_lets_jitter_reorder():
    profile = NetworkProfile.symmetric("reorder", delay_ms=20, jitter_ms=15, reorder=True)
    echo, echo_addr = await ProbeEcho.start(LOOP)
    async with UdpImpairmentRelay(listen=(LOOP, 0), upstream=(LOOP, 9), profile=profile, seed=3, probe_upstream=echo_addr) as r:
        raw = await send_train(r.address, echo, count=600, interval_s=0.002, drain_s=0.5)
    echo.close()
    up = direction_stats(raw.up_seq, raw.up_delay_ms, raw.sent)
    assert up.reordered > 20
    assert up.loss_pct == 0


async def test_distinct_clients_get_distinct_upstream_sockets_and_passthrough():
    et, ep, server = await _udp_echo()
    profile = NetworkProfile.symmetric("lossy", loss_pct=99.0)  # impaired clients lose ~everything
    # only 127.0.0.3 is "the user side"; 127.0.0.1 plays the agent and must pass untouched
    relay = UdpImpairmentRelay(listen=(LOOP, 0), upstream=server, profile=profile, impaired=["127.0.0.3/32"], seed=9)
    await relay.start()
    try:
        agents = [await _client(LOOP) for _ in range(3)]
        for i, (t, _) in enumerate(agents):
            for k in range(20):
                t.sendto(f"agent{i}-{k}".encode(), relay.address)
        for i, (_, p) in enumerate(agents):
            got = [await asyncio.wait_for(p.q.get(), 2.0) for _ in range(20)]
            assert got == [f"agent{i}-{k}".encode() for k in range(20)]  # all, in order
        user_t, user_p = await _client("127.0.0.3")
        for k in range(200):
            user_t.sendto(b"user%d" % k, relay.address)
        await asyncio.sleep(0)  # let the loop run; the counters are the barrier below
        for _ in range(200):
            if relay.stats().uplink.packets_in == 200:
                break
            await asyncio.sleep(0.01)
        s = relay.stats()
        assert s.uplink.packets_in == 200 and s.uplink.lost >= 190
        assert s.passthrough_flows == 3 and s.impaired_flows == 1 and s.passthrough_packets >= 120
        # the server saw one distinct source port per client, all from the relay's bind host
        srcs = set(ep.sources)
        assert len({p for _, p in srcs}) == 4 and {h for h, _ in srcs} == {LOOP}
        for t, _ in agents + [(user_t, user_p)]:
            t.close()
    finally:
        await relay.aclose()
        et.close()


async def test_probe_packets_go_to_probe_upstream_not_to_the_server():
    et, ep, server = await _udp_echo()
    echo, echo_addr = await ProbeEcho.start(LOOP)
    async with UdpImpairmentRelay(listen=(LOOP, 0), upstream=server, profile=NetworkProfile.symmetric("id"), probe_upstream=echo_addr) as r:
        raw = await send_train(r.address, echo, count=50, interval_s=0.001, drain_s=0.5)
    assert raw.up_seq.size == 50 and raw.down_seq.size == 50
    assert ep.sources == []
    assert PROBE_MAGIC[0] == 0xFF  # outside RFC 7983's STUN/DTLS/TURN/RTP ranges
    et.close()
    echo.close()


async def test_aclose_is_idempotent_and_set_profile_applies_to_live_flows():
    et, ep, server = await _udp_echo()
    r = UdpImpairmentRelay(listen=(LOOP, 0), upstream=server, profile=NetworkProfile.symmetric("id"))
    await r.start()
    t, p = await _client()
    t.sendto(b"a", r.address)
    assert await asyncio.wait_for(p.q.get(), 2.0) == b"a"
    r.set_profile(NetworkProfile.symmetric("drop", loss_pct=99.9))
    for k in range(100):
        t.sendto(b"x", r.address)
    for _ in range(200):
        if r.stats().uplink.packets_in >= 101:
            break
        await asyncio.sleep(0.01)
    s = r.stats()
    assert s.profile == "drop" and s.uplink.lost >= 95
    await r.aclose()
    await r.aclose()
    assert r.stats().flows_active == 0
    with pytest.raises(RuntimeError):
        await r.start()
    t.close()
    et.close()


async def test_tcp_forwarder_pipes_both_ways_and_closes():
    async def handle(reader, writer):
        data = await reader.read(100)
        writer.write(data.upper())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, LOOP, 0)
    up = server.sockets[0].getsockname()[:2]
    fwd = await TcpForwarder(listen=(LOOP, 0), upstream=up).start()
    reader, writer = await asyncio.open_connection(*fwd.address)
    writer.write(b"signal")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(100), 2.0) == b"SIGNAL"
    writer.close()
    await fwd.aclose()
    await fwd.aclose()
    server.close()
    await server.wait_closed()
    assert fwd.connections_total == 1


async def test_tcp_forwarder_closing_with_a_connection_open_logs_no_error():
    """aclose() while a connection is piping (the signalling WebSocket at the end of a run)."""
    upstream_has_it = asyncio.Event()

    async def hold(reader, writer):
        upstream_has_it.set()
        await reader.read(100)
        writer.close()

    server = await asyncio.start_server(hold, LOOP, 0)
    errors: list[dict] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
    fwd = await TcpForwarder(listen=(LOOP, 0), upstream=server.sockets[0].getsockname()[:2]).start()
    _, writer = await asyncio.open_connection(*fwd.address)
    await asyncio.wait_for(upstream_has_it.wait(), 2.0)
    await fwd.aclose()
    for _ in range(3):  # the stream's done-callback runs on the loop's next turns
        await asyncio.sleep(0)
    writer.close()
    server.close()
    await server.wait_closed()
    assert not errors, [c.get("message") for c in errors]

def test_direction_stats_rfc3550_and_reorder_count():
    seq = np.array([0, 1, 3, 2, 4])
    d = np.array([10.0, 12.0, 10.0, 14.0, 10.0])
    m = direction_stats(seq, d, sent=6)
    assert m.reordered == 1
    assert m.loss_pct == pytest.approx(100 / 6)
    j = 0.0
    for x in [2.0, 2.0, 4.0, 4.0]:
        j += (x - j) / 16
    assert m.jitter_rfc3550_ms == pytest.approx(j)
    with pytest.raises(ValueError):
        direction_stats(seq, d[:3], sent=6)

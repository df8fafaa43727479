"""Asyncio UDP impairment relay (per client) and a plain TCP forwarder.

``UdpImpairmentRelay`` listens on one address (the one the SFU advertises as
its ICE candidate) and forwards every client to one upstream address (the
SFU's real UDP media port). Each client address gets its own forwarding
socket, so the SFU sees distinct clients (distinct peer-reflexive candidates),
and its own pair of :class:`~autortc.network.impairment.DirectionModel`:
uplink (client -> upstream) and downlink (upstream -> client).

Only clients whose source address is in ``impaired`` are impaired; the others
(e.g. the agent worker, which must see a clean network) pass straight
through, and are counted apart.

Packets whose payload starts with :data:`PROBE_MAGIC` go to ``probe_upstream``
instead of the SFU: the measurement probe (``measure.py``) crosses exactly the
same path and impairment as the media. WebRTC never sends such a first byte
(RFC 7983 demultiplexing: 0-3 STUN, 20-63 DTLS, 64-79 TURN, 128-191 RTP/RTCP).
"""

from __future__ import annotations

import asyncio
import heapq
import ipaddress
import itertools
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from autortc.network.impairment import DirectionCounters, DirectionModel
from autortc.network.profiles import NetworkProfile

logger = logging.getLogger("autortc.network")

PROBE_MAGIC = b"\xffARTCPRB"
Addr = tuple[str, int]
IpNet = ipaddress.IPv4Network | ipaddress.IPv6Network

#: epoll waits in whole milliseconds rounded up, so asyncio timers fire 0-1 ms late, and
#: later still when the loop is busy. The relay arms its timers ``slack`` early and releases
#: packets due within ``slack``; ``slack`` follows the measured release error (an integrator
#: driving its mean to 0) between these bounds.
TIMER_SLACK_S = 0.0005
TIMER_SLACK_MAX_S = 0.004
_SLACK_GAIN = 0.02
#: A client silent for this long (s) loses its forwarding socket.
DEFAULT_IDLE_TIMEOUT_S = 120.0
#: At most this many clients at once (each holds one socket).
DEFAULT_MAX_FLOWS = 512


def _merge(into: DirectionCounters, c: DirectionCounters) -> None:
    into.packets_in += c.packets_in
    into.bytes_in += c.bytes_in
    into.lost += c.lost
    into.dropped_queue += c.dropped_queue
    into.scheduled += c.scheduled
    into.delay_sum_s += c.delay_sum_s
    into.delay_sq_sum_s += c.delay_sq_sum_s
    into.delay_max_s = max(into.delay_max_s, c.delay_max_s)


@dataclass
class RelayStats:
    """What the relay actually did since it started (all flows, closed ones included)."""

    profile: str
    flows_total: int = 0
    flows_active: int = 0
    impaired_flows: int = 0
    passthrough_flows: int = 0
    uplink: DirectionCounters = field(default_factory=DirectionCounters)
    downlink: DirectionCounters = field(default_factory=DirectionCounters)
    forwarded_up: int = 0
    forwarded_down: int = 0
    passthrough_packets: int = 0
    probe_packets: int = 0
    rejected_flows: int = 0
    foreign_packets: int = 0
    send_errors: int = 0
    discarded_at_close: int = 0
    release_error_mean_ms: float = 0.0  # actual - intended release time of impaired packets
    timer_slack_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("uplink", "downlink")}
        d["uplink"] = self.uplink.as_dict()
        d["downlink"] = self.downlink.as_dict()
        return d


class _Direction:
    """Pending packets of one flow direction, released in (time, seq) order."""

    def __init__(self, model: DirectionModel | None) -> None:
        self.model = model
        self.heap: list[tuple[float, int, bytes, Addr]] = []
        self.timer: asyncio.TimerHandle | None = None
        self.timer_when = 0.0


class _Flow:
    def __init__(self, client: Addr, impaired: bool, up: DirectionModel | None, down: DirectionModel | None) -> None:
        self.client = client
        self.impaired = impaired
        self.up = _Direction(up)
        self.down = _Direction(down)
        self.transport: asyncio.DatagramTransport | None = None
        self.last_seen = 0.0
        self.closed = False


class _ListenProtocol(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpImpairmentRelay) -> None:
        self._relay = relay

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self._relay._on_client_packet(data, addr[:2])

    def error_received(self, exc: Exception) -> None:
        logger.debug("relay listen socket error: %s", exc)


class _UpstreamProtocol(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpImpairmentRelay, flow: _Flow) -> None:
        self._relay = relay
        self._flow = flow

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self._relay._on_upstream_packet(self._flow, data, addr[:2])

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable while the SFU restarts, etc.: the packet is gone, the flow lives
        logger.debug("relay upstream socket error for %s: %s", self._flow.client, exc)


class UdpImpairmentRelay:
    """Per-client UDP relay applying a :class:`NetworkProfile` in both directions.

    Args:
        listen: (host, port) to bind; port 0 picks a free one (see ``address``).
        upstream: where client packets go (the SFU's UDP media port).
        profile: the impairment; ``set_profile`` swaps it for new and existing flows.
        impaired: networks whose clients are impaired; ``None`` impairs every client.
        seed: seeds every flow's random generators (flow n uses ``seed + n``) for
            reproducible loss and jitter; ``None`` draws from the OS.
        probe_upstream: where probe packets (``PROBE_MAGIC``) go; ``None`` drops them.
        upstream_bind: local host of the per-client forwarding sockets.
        idle_timeout_s, max_flows: flow housekeeping limits.

    Use ``async with`` or ``await start()`` / ``await aclose()``.
    """

    def __init__(
        self,
        *,
        listen: Addr,
        upstream: Addr,
        profile: NetworkProfile,
        impaired: Iterable[str | IpNet] | None = None,
        seed: int | None = None,
        probe_upstream: Addr | None = None,
        upstream_bind: str = "127.0.0.1",
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        max_flows: int = DEFAULT_MAX_FLOWS,
    ) -> None:
        self._listen = listen
        self._upstream = (upstream[0], int(upstream[1]))
        self._probe_upstream = probe_upstream
        self._profile = profile
        self._impaired = None if impaired is None else tuple(ipaddress.ip_network(n, strict=False) for n in impaired)
        self._seed = seed
        self._upstream_bind = upstream_bind
        self._idle_timeout_s = idle_timeout_s
        self._max_flows = max_flows
        self._flows: dict[Addr, _Flow] = {}
        self._flow_no = itertools.count()
        self._seq = itertools.count()
        self._stats = RelayStats(profile=profile.name)
        self._retired = RelayStats(profile=profile.name)  # counters of closed flows
        self._transport: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._close_lock = asyncio.Lock()
        self._closed = False
        self._slack = TIMER_SLACK_S
        self._err_sum = 0.0
        self._err_n = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> UdpImpairmentRelay:
        if self._closed:
            raise RuntimeError("relay already closed")
        if self._transport is not None:
            return self
        self._loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self._listen[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            sock.bind(self._listen)
        except OSError as e:
            sock.close()
            raise OSError(e.errno, f"relay cannot bind UDP {self._listen[0]}:{self._listen[1]}: {e.strerror}") from None
        sock.setblocking(False)
        self._transport, _ = await self._loop.create_datagram_endpoint(lambda: _ListenProtocol(self), sock=sock)
        self._housekeeping = asyncio.create_task(self._expire_idle(), name="autortc.network.relay.housekeeping")
        logger.info(
            "UDP relay %s -> %s:%d, profile %s, impaired %s",
            "%s:%d" % self.address,
            *self._upstream,
            self._profile.name,
            "all" if self._impaired is None else [str(n) for n in self._impaired],
        )
        return self

    async def __aenter__(self) -> UdpImpairmentRelay:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop forwarding and close every socket. Idempotent; pending packets are discarded."""
        async with self._close_lock:
            if self._closed:
                return
            self._closed = True
            if self._housekeeping is not None:
                self._housekeeping.cancel()
                await asyncio.gather(self._housekeeping, return_exceptions=True)
            for h in self._timers:
                h.cancel()
            self._timers.clear()
            for flow in list(self._flows.values()):
                self._close_flow(flow)
            if self._transport is not None:
                self._transport.close()
            logger.info("UDP relay closed: %s", self.stats().as_dict())

    # ------------------------------------------------------------------ API
    @property
    def address(self) -> Addr:
        """The bound (host, port) clients send to."""
        if self._transport is None:
            raise RuntimeError("relay not started")
        return self._transport.get_extra_info("sockname")[:2]

    @property
    def profile(self) -> NetworkProfile:
        return self._profile

    def set_profile(self, profile: NetworkProfile) -> None:
        """Apply ``profile`` from now on, to existing and new flows (their pending packets keep their times)."""
        self._profile = profile
        self._stats.profile = profile.name
        for flow in self._flows.values():
            if flow.impaired:
                for d, agg in ((flow.up, self._retired.uplink), (flow.down, self._retired.downlink)):
                    if d.model is not None:
                        _merge(agg, d.model.counters)
                flow.up.model, flow.down.model = self._models(next(self._flow_no))
        logger.info("UDP relay %s:%d now applies profile %s", *self.address, profile.name)

    def stats(self) -> RelayStats:
        """A snapshot of the counters (open and closed flows)."""
        s = RelayStats(profile=self._profile.name)
        for k, v in self._stats.__dict__.items():
            if k not in ("uplink", "downlink", "profile"):
                setattr(s, k, v)
        _merge(s.uplink, self._retired.uplink)
        _merge(s.downlink, self._retired.downlink)
        for flow in self._flows.values():
            if flow.up.model is not None:
                _merge(s.uplink, flow.up.model.counters)
            if flow.down.model is not None:
                _merge(s.downlink, flow.down.model.counters)
        s.flows_active = len(self._flows)
        s.release_error_mean_ms = 1000.0 * self._err_sum / self._err_n if self._err_n else 0.0
        s.timer_slack_ms = 1000.0 * self._slack
        return s

    # ------------------------------------------------------------------ internals
    def _models(self, n: int) -> tuple[DirectionModel, DirectionModel]:
        seed = None if self._seed is None else self._seed + n
        return (
            DirectionModel(self._profile.uplink, seed=seed, name="uplink"),
            DirectionModel(self._profile.downlink, seed=seed, name="downlink"),
        )

    def _is_impaired(self, host: str) -> bool:
        if self._impaired is None:
            return True
        try:
            ip = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return True
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self._impaired)

    def _new_flow(self, client: Addr) -> _Flow | None:
        if len(self._flows) >= self._max_flows:
            self._stats.rejected_flows += 1
            logger.warning("UDP relay: too many clients (%d), ignoring %s:%d", self._max_flows, *client)
            return None
        impaired = self._is_impaired(client[0])
        up, down = self._models(next(self._flow_no)) if impaired else (None, None)
        flow = _Flow(client, impaired, up, down)
        family = socket.AF_INET6 if ":" in self._upstream[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((self._upstream_bind, 0))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        assert self._loop is not None
        # the transport is created asynchronously; packets queue in flow heaps meanwhile
        flow.transport = None
        task = self._loop.create_task(
            self._loop.create_datagram_endpoint(lambda: _UpstreamProtocol(self, flow), sock=sock),
            name=f"autortc.network.relay.flow.{client[0]}:{client[1]}",
        )
        task.add_done_callback(lambda t, f=flow: self._flow_ready(f, t))
        self._flows[client] = flow
        self._stats.flows_total += 1
        if impaired:
            self._stats.impaired_flows += 1
        else:
            self._stats.passthrough_flows += 1
        logger.info("UDP relay: new %s client %s:%d", "impaired" if impaired else "passthrough", *client)
        return flow

    def _flow_ready(self, flow: _Flow, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or task.exception() is not None:
            logger.error("UDP relay: cannot open forwarding socket for %s: %s", flow.client, task.exception())
            self._close_flow(flow)
            return
        transport, _ = task.result()
        if flow.closed:
            transport.close()
            return
        flow.transport = transport
        self._release(flow, True)

    def _close_flow(self, flow: _Flow) -> None:
        if flow.closed:
            return
        flow.closed = True
        self._flows.pop(flow.client, None)
        self._stats.discarded_at_close += len(flow.up.heap) + len(flow.down.heap)
        for d, agg in ((flow.up, self._retired.uplink), (flow.down, self._retired.downlink)):
            if d.timer is not None:
                d.timer.cancel()
                self._timers.discard(d.timer)
                d.timer = None
            if d.model is not None:
                _merge(agg, d.model.counters)
                d.model = None
        if flow.transport is not None:
            flow.transport.close()

    async def _expire_idle(self) -> None:
        assert self._loop is not None
        while True:
            await asyncio.sleep(min(10.0, self._idle_timeout_s / 2))
            now = self._loop.time()
            for flow in list(self._flows.values()):
                if now - flow.last_seen > self._idle_timeout_s:
                    logger.info("UDP relay: client %s:%d idle, closing its flow", *flow.client)
                    self._close_flow(flow)

    def _on_client_packet(self, data: bytes, client: Addr) -> None:
        if self._closed:
            return
        flow = self._flows.get(client) or self._new_flow(client)
        if flow is None:
            return
        assert self._loop is not None
        now = self._loop.time()
        flow.last_seen = now
        dest = self._upstream
        if data.startswith(PROBE_MAGIC):
            self._stats.probe_packets += 1
            if self._probe_upstream is None:
                return
            dest = self._probe_upstream
        self._enqueue(flow, flow.up, data, dest, now, up=True)

    def _on_upstream_packet(self, flow: _Flow, data: bytes, src: Addr) -> None:
        if self._closed or flow.closed:
            return
        if src != self._upstream and src != self._probe_upstream:
            self._stats.foreign_packets += 1
            return
        assert self._loop is not None
        now = self._loop.time()
        flow.last_seen = now
        self._enqueue(flow, flow.down, data, flow.client, now, up=False)

    def _enqueue(self, flow: _Flow, d: _Direction, data: bytes, dest: Addr, now: float, *, up: bool) -> None:
        if d.model is None:
            if not flow.impaired:
                self._stats.passthrough_packets += 1
            if not d.heap and (flow.transport is not None or not up):
                self._send(flow, data, dest, up=up)
                return
            when = now
        else:
            when = d.model.schedule(now, len(data))
            if when is None:
                return
        heapq.heappush(d.heap, (when, next(self._seq), data, dest))
        self._arm(flow, d, up=up)

    def _arm(self, flow: _Flow, d: _Direction, *, up: bool) -> None:
        """Keep exactly one timer per direction, due at the head packet's release time."""
        assert self._loop is not None
        if not d.heap:
            return
        when = d.heap[0][0]
        if d.timer is not None:
            if d.timer_when <= when:
                return
            d.timer.cancel()
            self._timers.discard(d.timer)
        d.timer = self._loop.call_at(when - self._slack, self._release, flow, up)
        d.timer_when = when
        self._timers.add(d.timer)

    def _release(self, flow: _Flow, up: bool) -> None:
        d = flow.up if up else flow.down
        if d.timer is not None:
            self._timers.discard(d.timer)
            d.timer = None
        if flow.closed or self._loop is None:
            return
        if up and flow.transport is None:
            return  # _flow_ready releases once the socket exists
        now = self._loop.time()
        while d.heap and d.heap[0][0] <= now + self._slack:
            when, _, data, dest = heapq.heappop(d.heap)
            if d.model is not None:
                err = now - when
                self._err_sum += err
                self._err_n += 1
                self._slack = min(TIMER_SLACK_MAX_S, max(0.0, self._slack + _SLACK_GAIN * err))
            self._send(flow, data, dest, up=up)
        self._arm(flow, d, up=up)

    def _send(self, flow: _Flow, data: bytes, dest: Addr, *, up: bool) -> None:
        try:
            if up:
                assert flow.transport is not None
                flow.transport.sendto(data, dest)
                self._stats.forwarded_up += 1
            else:
                assert self._transport is not None
                self._transport.sendto(data, dest)
                self._stats.forwarded_down += 1
        except OSError as e:
            self._stats.send_errors += 1
            logger.debug("UDP relay send to %s failed: %s", dest, e)


class TcpForwarder:
    """Plain TCP port forwarder (no impairment), e.g. for LiveKit signaling.

    The user side in its namespace cannot reach the SFU's 127.0.0.1 listener;
    this gives it the same service on the path's address.
    """

    def __init__(self, *, listen: Addr, upstream: Addr, connect_timeout_s: float = 5.0) -> None:
        self._listen = listen
        self._upstream = upstream
        self._connect_timeout_s = connect_timeout_s
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self._closed = False
        self.connections_total = 0

    async def start(self) -> TcpForwarder:
        try:
            self._server = await asyncio.start_server(self._handle, self._listen[0], self._listen[1], reuse_address=True)
        except OSError as e:
            raise OSError(e.errno, f"TCP forwarder cannot listen on {self._listen[0]}:{self._listen[1]}: {e.strerror}") from None
        logger.info("TCP forwarder %s:%d -> %s:%d", *self.address, *self._upstream)
        return self

    @property
    def address(self) -> Addr:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[:2]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        self.connections_total += 1
        up_w: asyncio.StreamWriter | None = None
        try:
            up_r, up_w = await asyncio.wait_for(asyncio.open_connection(*self._upstream), self._connect_timeout_s)

            async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                try:
                    while chunk := await r.read(65536):
                        w.write(chunk)
                        await w.drain()
                finally:
                    if w.can_write_eof():
                        try:
                            w.write_eof()
                        except OSError:
                            pass

            await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        except (OSError, asyncio.TimeoutError) as e:
            logger.debug("TCP forwarder connection ended: %s", e)
        except asyncio.CancelledError:
            if not self._closed:
                raise
            # aclose() cut this connection and awaits the task itself. Ending it normally keeps
            # Python 3.11's start_server callback from calling exception() on a cancelled task,
            # which logs a CancelledError traceback at ERROR for every connection still open.
        finally:
            for w in (writer, up_w):
                if w is not None:
                    w.close()
            self._conns.discard(task)

    async def aclose(self) -> None:
        """Stop listening and cut every open connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        for t in list(self._conns):
            t.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> TcpForwarder:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

"""The impaired media path a run uses: namespace + relay (+ netem where it exists).

Topology (mode ``netns``, the default when root)::

    user namespace (bots, browser)          root namespace
    ----------------------------            ------------------------------------------
    user_ip (veth) ===== veth ===== host_ip  UDP relay host_ip:<udp>  -> 127.0.0.1:<udp>  (SFU media)
                                             TCP fwd   host_ip:<tcp>  -> 127.0.0.1:<tcp>  (signaling)
                                             probe echo 127.0.0.1:<ephemeral>
    agent worker (root namespace) --------->  UDP relay, passthrough (source is not user_ip)

The SFU advertises ``host_ip`` as its only ICE candidate (``rtc.node_ip``), so
every peer connection's media goes through the relay. The relay impairs only
packets whose source is the user namespace's address; the agent worker lives
in the root namespace, so its leg is forwarded untouched. Mode ``loopback``
(no root): the relay listens on 127.0.0.2 and impairs every client, agent
included; the verification says so.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, Literal

from autortc.network import netns as _netns
from autortc.network.measure import PathVerification, ProbeEcho, ProbeRaw, send_train, verify
from autortc.network.profiles import NetworkProfile
from autortc.network.relay import Addr, TcpForwarder, UdpImpairmentRelay

logger = logging.getLogger("autortc.network")

#: The SFU's advertised address in mode ``netns`` unless told otherwise (RFC 2544 range).
DEFAULT_NODE_IP = "198.18.0.1"
#: The relay address in mode ``loopback`` (any 127/8 address is local on Linux).
LOOPBACK_NODE_IP = "127.0.0.2"

Mode = Literal["auto", "netns", "loopback"]
Backend = Literal["auto", "relay", "netem"]


class ImpairedPath:
    """Set up, measure and tear down the user side's impaired path to the SFU.

    Args:
        profile: the network profile to apply.
        server_udp: the SFU's single UDP media port as it is bound (e.g. ("127.0.0.1", 7882)).
        server_tcp: the SFU's signaling (HTTP/WebSocket) address, forwarded into the
            user namespace; ``None`` to skip.
        mode: ``netns`` (user side in its own namespace; agent unimpaired), ``loopback``
            (no namespace; every client impaired), ``auto`` (netns when root).
        backend: ``netem`` (kernel qdisc on the veth), ``relay`` (user-space), ``auto``
            (netem when the kernel has it and the profile is expressible, else relay).
        node_ip: the address the SFU advertises; must equal the server's ``rtc.node_ip``
            (default 198.18.0.1 in mode netns, 127.0.0.2 in mode loopback; ``"auto"``
            picks a free /30 in netns mode, for tests and parallel runs).
        seed: seeds the relay's loss and jitter draws.

    Attributes (after ``start``): ``mode``, ``backend``, ``node_ip``, ``netns``
    (name or None), ``client_bind_address`` (the user side's own address or None),
    ``livekit_url`` (the URL the user side must use).
    """

    def __init__(
        self,
        profile: NetworkProfile,
        *,
        server_udp: Addr,
        server_tcp: Addr | None = None,
        mode: Mode = "auto",
        backend: Backend = "auto",
        node_ip: str | None = None,
        seed: int | None = None,
    ) -> None:
        self._profile = profile
        self._server_udp = (server_udp[0], int(server_udp[1]))
        self._server_tcp = server_tcp
        self._mode_req = mode
        self._backend_req = backend
        self._node_ip_req = node_ip
        self._seed = seed
        self.mode: str = ""
        self.backend: str = ""
        self.backend_reason = ""
        self.node_ip = ""
        self.netns: str | None = None
        self.client_bind_address: str | None = None
        self.livekit_url = ""
        self._ns: _netns.UserNamespace | None = None
        self._relay: UdpImpairmentRelay | None = None
        self._tcp: TcpForwarder | None = None
        self._echo: ProbeEcho | None = None
        self._echo_addr: Addr | None = None
        self._started = False
        self._closed = False
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> ImpairedPath:
        async with self._lock:
            if self._started:
                return self
            self._started = True
            try:
                await self._start()
            except BaseException:
                await self._teardown()
                raise
            return self

    async def _start(self) -> None:
        can_ns, why = _netns.can_manage_namespaces()
        mode = self._mode_req
        if mode == "auto":
            mode = "netns" if can_ns else "loopback"
            if not can_ns:
                logger.warning("network path: %s; falling back to loopback mode (agent leg impaired too)", why)
        if mode == "netns" and not can_ns:
            raise _netns.NetnsError(f"mode 'netns' needs root and iproute2: {why}")
        self.mode = mode
        self._echo, self._echo_addr = await ProbeEcho.start("127.0.0.1")

        relay_profile = self._profile
        if mode == "netns":
            host_ip = None if self._node_ip_req == "auto" else (self._node_ip_req or DEFAULT_NODE_IP)
            self._ns = _netns.UserNamespace(host_ip=host_ip)
            # a cancelled caller must not leave the thread creating a namespace nobody deletes
            creating = asyncio.ensure_future(asyncio.to_thread(self._ns.create))
            try:
                await asyncio.shield(creating)
            except asyncio.CancelledError:
                await asyncio.gather(creating, return_exceptions=True)
                raise
            self.netns = self._ns.name
            self.node_ip = self._ns.host_ip
            self.client_bind_address = self._ns.user_ip
            self.backend, self.backend_reason = self._choose_backend()
            if self.backend == "netem":
                await asyncio.to_thread(self._ns.apply_netem, self._profile.uplink, self._profile.downlink)
                relay_profile = NetworkProfile.symmetric(f"{self._profile.name}(netem)")
            impaired: list[str] | None = [f"{self._ns.user_ip}/32"]
        else:
            self.node_ip = LOOPBACK_NODE_IP if self._node_ip_req in (None, "auto") else self._node_ip_req
            self.backend, self.backend_reason = "relay", "loopback mode has no veth for netem"
            impaired = None

        self._relay = UdpImpairmentRelay(
            listen=(self.node_ip, self._server_udp[1]),
            upstream=self._server_udp,
            profile=relay_profile,
            impaired=impaired,
            seed=self._seed,
            probe_upstream=self._echo_addr,
            upstream_bind=self._server_udp[0],
        )
        await self._relay.start()
        if self._server_tcp is not None:
            if mode == "netns":
                self._tcp = TcpForwarder(listen=(self.node_ip, int(self._server_tcp[1])), upstream=self._server_tcp)
                await self._tcp.start()
                self.livekit_url = f"ws://{self.node_ip}:{int(self._server_tcp[1])}"
            else:
                self.livekit_url = f"ws://{self._server_tcp[0]}:{int(self._server_tcp[1])}"
        logger.info(
            "network path up: profile %s, mode %s, backend %s (%s), node_ip %s, netns %s",
            self._profile.name, self.mode, self.backend, self.backend_reason, self.node_ip, self.netns,
        )

    def _choose_backend(self) -> tuple[str, str]:
        want = self._backend_req
        expressible = all(_netns.netem_expressible(s) for s in (self._profile.uplink, self._profile.downlink))
        if want == "relay":
            return "relay", "requested"
        check = _netns.netem_available()
        if want == "netem":
            if not check.available:
                raise _netns.NetnsError(f"backend 'netem' requested but unavailable: {check.reason}")
            if not expressible:
                raise _netns.NetnsError(f"profile {self._profile.name!r}: netem cannot add jitter without reordering")
            return "netem", check.reason
        if not check.available:
            return "relay", f"netem unavailable: {check.reason}"
        if not expressible:
            return "relay", "profile asks for jitter without reordering, which netem cannot do"
        return "netem", check.reason

    async def __aenter__(self) -> ImpairedPath:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Tear everything down (relay, forwarder, namespace). Idempotent; safe after a failed start."""
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            await self._teardown()

    async def _teardown(self) -> None:
        for closer in (self._tcp, self._relay):
            if closer is not None:
                try:
                    await asyncio.wait_for(closer.aclose(), 5.0)
                except Exception as e:  # keep tearing down the rest
                    logger.error("network path: closing %s failed: %s", type(closer).__name__, e)
        if self._echo is not None:
            self._echo.close()
        if self._ns is not None:
            # sync and short; done inline so that a cancelled caller still deletes the namespace
            self._ns.close()

    # ------------------------------------------------------------------ API
    @property
    def profile(self) -> NetworkProfile:
        return self._profile

    @property
    def agent_exempt(self) -> bool:
        """True when the agent worker's leg is not impaired (mode netns)."""
        return self.mode == "netns"

    def set_profile(self, profile: NetworkProfile) -> None:
        """Switch to ``profile`` (e.g. per case) without tearing the path down."""
        assert self._relay is not None, "path not started"
        self._profile = profile
        if self.backend == "netem" and self._ns is not None:
            if not all(_netns.netem_expressible(s) for s in (profile.uplink, profile.downlink)):
                raise _netns.NetnsError(f"profile {profile.name!r} needs the relay backend; start a new path")
            self._ns.apply_netem(profile.uplink, profile.downlink)
        else:
            self._relay.set_profile(profile)

    def wrap_argv(self, argv: list[str]) -> list[str]:
        """The command line that runs ``argv`` on the user side (in the namespace when there is one)."""
        return self._ns.wrap_argv(argv) if self._ns is not None else list(argv)

    def user_socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM) -> socket.socket:
        """A socket on the user side (created inside the namespace when there is one)."""
        return self._ns.socket(family, type) if self._ns is not None else socket.socket(family, type)

    def attach_livekit_ffi(self) -> None:
        """Put this process's LiveKit FFI (its signaling and WebRTC threads) on the user side.

        For bots that run in this process (``livekit.rtc``): the FFI starts its
        tokio runtime and libwebrtc threads inside the user namespace, so their
        sockets (WebSocket to ``livekit_url``, ICE/UDP) cross the impaired path,
        while the Python thread, ``livekit-api`` calls and subprocesses stay in
        the root namespace. The FFI is a process singleton: call this once per
        process, before anything else touches ``livekit.rtc``; switch profiles
        with ``set_profile``. No-op without a namespace.

        Raises:
            RuntimeError: the FFI was already started (in the root namespace).
        """
        if self._ns is None:
            return
        from livekit.rtc._ffi_client import FfiClient

        if FfiClient._instance is not None:
            raise RuntimeError(
                "the LiveKit FFI is already running in the root namespace: call "
                "ImpairedPath.attach_livekit_ffi() before any livekit.rtc object is created"
            )
        with _netns.calling_thread_in_netns(self._ns.name):
            FfiClient.instance  # noqa: B018  (starts the runtime threads here)
        logger.info("LiveKit FFI threads started in namespace %s", self._ns.name)

    def stats(self) -> dict[str, Any]:
        """What the path actually did: relay counters plus the setup."""
        assert self._relay is not None, "path not started"
        return {
            "profile": self._profile.name,
            "mode": self.mode,
            "backend": self.backend,
            "backend_reason": self.backend_reason,
            "node_ip": self.node_ip,
            "netns": self.netns,
            "agent_exempt": self.agent_exempt,
            "netem_qdiscs": list(self._ns.qdiscs) if self._ns is not None else [],
            "relay": self._relay.stats().as_dict(),
        }

    async def train(self, *, duration_s: float, rate_pps: float = 50.0, size: int = 160) -> ProbeRaw:
        """Send one probe train from the user side through the path; the raw result."""
        assert self._relay is not None and self._echo is not None, "path not started"
        count = max(1, int(duration_s * rate_pps))
        sock = self.user_socket()
        bind = (self.client_bind_address, 0) if self.client_bind_address else ("127.0.0.1", 0)
        return await send_train((self.node_ip, self._relay.address[1]), self._echo, count=count,
                                interval_s=1.0 / rate_pps, size=size, sock=sock, bind=bind)

    async def measure(self, *, duration_s: float = 20.0, rate_pps: float = 50.0, size: int = 160) -> PathVerification:
        """Send a probe train from the user side through the path; configured vs measured.

        The probe crosses the same veth, qdisc and relay as the media, in both
        directions. It costs ``rate_pps * size * 8`` bit/s each way (64 kbit/s by default).
        """
        raw = await self.train(duration_s=duration_s, rate_pps=rate_pps, size=size)
        v = verify(self._profile, raw, backend=self.backend)
        if not self.agent_exempt:
            v.notes.append("loopback mode: the agent's leg is impaired too (user<->agent sees the profile twice)")
        logger.info("network path verification:\n%s", v.table())
        return v

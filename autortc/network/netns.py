"""Network namespaces, veth pairs and the kernel (netem) backend.

Everything here shells out to iproute2 (``ip``, ``tc``) and needs root
(CAP_NET_ADMIN). All addresses live on a veth pair between the root namespace
and a namespace this process creates; nothing is routed anywhere else (the
user namespace has no default route).

Addresses come from 198.18.0.0/15, the range RFC 2544 reserves for network
benchmarks: it never collides with a real LAN, VPN or the loopback range.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import functools
import ipaddress
import logging
import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from autortc.network.profiles import DirectionSpec

logger = logging.getLogger("autortc.network")

NS_PREFIX = "artc"
CLONE_NEWNET = 0x40000000
_CMD_TIMEOUT_S = 10.0


class NetnsError(RuntimeError):
    """An ``ip``/``tc`` command failed; the message has the command and its stderr."""


def _run(argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=_CMD_TIMEOUT_S)
    except FileNotFoundError:
        raise NetnsError(f"{argv[0]!r} not found: install iproute2") from None
    except subprocess.TimeoutExpired:
        raise NetnsError(f"`{' '.join(argv)}` did not finish within {_CMD_TIMEOUT_S:g} s") from None
    if check and p.returncode != 0:
        raise NetnsError(f"`{' '.join(argv)}` failed ({p.returncode}): {p.stderr.strip()}")
    return p


def can_manage_namespaces() -> tuple[bool, str]:
    """Whether this process can create namespaces and veth pairs (root + iproute2)."""
    if os.geteuid() != 0:
        return False, "not root (CAP_NET_ADMIN needed for ip netns / veth)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return False, f"{tool!r} not found (install iproute2)"
    return True, "root with iproute2"


@dataclass(frozen=True)
class NetemCheck:
    available: bool
    reason: str


@functools.cache
def netem_available() -> NetemCheck:
    """Check for real whether ``tc qdisc ... netem`` works on this kernel.

    Creates a throwaway namespace with a veth pair, tries to add a netem qdisc,
    and deletes the namespace. The result is cached for the process.
    """
    ok, why = can_manage_namespaces()
    if not ok:
        return NetemCheck(False, why)
    name = f"{NS_PREFIX}chk{os.getpid()}"
    try:
        _run(["ip", "netns", "add", name])
    except NetnsError as e:
        return NetemCheck(False, f"cannot create a network namespace: {e}")
    try:
        _run(["ip", "-n", name, "link", "add", "c0", "type", "veth", "peer", "name", "c1"])
        _run(["ip", "-n", name, "link", "set", "c0", "up"])
        p = _run(["tc", "-n", name, "qdisc", "add", "dev", "c0", "root", "netem", "delay", "1ms"], check=False)
        if p.returncode == 0:
            return NetemCheck(True, "tc netem qdisc added on a test veth")
        return NetemCheck(False, f"tc netem refused: {p.stderr.strip() or p.returncode} (kernel without sch_netem?)")
    except NetnsError as e:
        return NetemCheck(False, str(e))
    finally:
        _run(["ip", "netns", "del", name], check=False)


def netem_args(spec: DirectionSpec) -> list[str]:
    """``tc qdisc ... netem`` arguments for one direction (pure; raises if not expressible).

    netem jitter draws each packet's delay independently (uniform in
    ``delay +/- jitter``) and so reorders; profiles asking for jitter without
    reordering are not expressible here and stay on the relay.

    Raises:
        ValueError: ``spec`` has jitter without ``reorder``.
    """
    if spec.jitter_ms > 0 and not spec.reorder:
        raise ValueError("netem cannot add jitter without reordering; use the relay backend")
    args = ["netem", "limit", "10000"]
    if spec.delay_ms > 0 or spec.jitter_ms > 0:
        args += ["delay", f"{spec.delay_ms:g}ms"]
        if spec.jitter_ms > 0:
            args += [f"{spec.jitter_ms:g}ms"]
    if spec.loss_pct > 0:
        if spec.burst_packets > 1:
            loss = spec.loss_pct / 100.0
            r = 1.0 / spec.burst_packets
            p = loss * r / (1.0 - loss)
            # Gilbert-Elliott: p, r, loss in bad state 100 %, loss in good state 0 %
            args += ["loss", "gemodel", f"{100 * p:.6g}%", f"{100 * r:.6g}%", "100%", "0%"]
        else:
            args += ["loss", "random", f"{spec.loss_pct:g}%"]
    if spec.rate_kbps:
        args += ["rate", f"{spec.rate_kbps:g}kbit"]
    return args


def netem_expressible(spec: DirectionSpec) -> bool:
    return not (spec.jitter_ms > 0 and not spec.reorder)


_libc = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns(CLONE_NEWNET) failed: {os.strerror(err)}")


def socket_in_netns(ns: str, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM) -> socket.socket:
    """A socket that lives in namespace ``ns`` although this process does not.

    A socket belongs to the namespace of the thread that created it, for its
    whole life; so a short-lived thread enters ``ns`` (``setns`` only moves that
    thread), creates the socket and exits. The caller uses the socket from any
    thread or event loop.
    """
    out: list[socket.socket] = []
    err: list[BaseException] = []

    def body() -> None:
        try:
            with open(f"/run/netns/{ns}") as f:
                _setns(f.fileno())
            out.append(socket.socket(family, type))
        except BaseException as e:  # reported to the caller below
            err.append(e)

    t = threading.Thread(target=body, name=f"autortc.netns.{ns}", daemon=True)
    t.start()
    t.join(_CMD_TIMEOUT_S)
    if err:
        raise NetnsError(f"cannot create a socket in namespace {ns!r}: {err[0]}")
    if not out:
        raise NetnsError(f"creating a socket in namespace {ns!r} did not finish within {_CMD_TIMEOUT_S:g} s")
    return out[0]


@contextlib.contextmanager
def calling_thread_in_netns(ns: str) -> Iterator[None]:
    """Run the body with the calling thread (only) inside namespace ``ns``.

    Threads started by the body, and every thread those start later, stay in
    ``ns`` for good: that is how a native library's thread pool (e.g. the
    LiveKit FFI's tokio runtime and libwebrtc's network thread) is put on the
    user side while the Python thread returns to where it was.
    """
    with open("/proc/thread-self/ns/net") as orig, open(f"/run/netns/{ns}") as target:
        _setns(target.fileno())
        try:
            yield
        finally:
            _setns(orig.fileno())


def _used_ipv4() -> set[ipaddress.IPv4Address]:
    p = _run(["ip", "-o", "-4", "addr", "show"], check=False)
    return {ipaddress.IPv4Address(m) for m in re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", p.stdout)}


def free_subnet(preferred: str | None = None) -> ipaddress.IPv4Network:
    """A /30 in 198.18.0.0/15 whose addresses no interface of the root namespace holds."""
    used = _used_ipv4()
    if preferred is not None:
        net = ipaddress.IPv4Network(f"{preferred}/30", strict=False)
        if not set(net.hosts()) & used:
            return net
        raise NetnsError(f"address {preferred} (subnet {net}) is already in use on this host")
    start = os.getpid() % 16000
    for i in range(16384):
        k = (start + i) % 16384
        net = ipaddress.IPv4Network((int(ipaddress.IPv4Address("198.18.0.0")) + 4 * k, 30))
        if not set(net.hosts()) & used:
            return net
    raise NetnsError("no free /30 left in 198.18.0.0/15")


class UserNamespace:
    """A network namespace for the user side, joined to the root namespace by a veth pair.

    ``host_ip`` is the root side (where the relay and forwarders listen; the
    SFU advertises it), ``user_ip`` the namespace side (the only address user
    clients have). ``close()`` deletes the namespace (and with it the veth pair);
    it is idempotent and also runs at interpreter exit.
    """

    def __init__(self, *, host_ip: str | None = None) -> None:
        self.name = f"{NS_PREFIX}{os.getpid()}x{id(self) % 100000}"
        self._veth_host = f"{NS_PREFIX}{os.getpid() % 100000}h{id(self) % 1000}"[:15]
        self._veth_user = "eth0"
        self._host_ip_pref = host_ip
        self.subnet: ipaddress.IPv4Network | None = None
        self.host_ip = ""
        self.user_ip = ""
        self._created = False
        self._closed = False
        self.qdiscs: list[str] = []

    @property
    def veth_host(self) -> str:
        return self._veth_host

    @property
    def veth_user(self) -> str:
        return self._veth_user

    def create(self) -> UserNamespace:
        ok, why = can_manage_namespaces()
        if not ok:
            raise NetnsError(f"cannot create the user network namespace: {why}")
        self.subnet = free_subnet(self._host_ip_pref)
        hosts = list(self.subnet.hosts())
        host, user = (ipaddress.IPv4Address(self._host_ip_pref), None) if self._host_ip_pref else (hosts[0], None)
        user = hosts[1] if host == hosts[0] else hosts[0]
        self.host_ip, self.user_ip = str(host), str(user)
        _run(["ip", "netns", "add", self.name])
        self._created = True
        atexit.register(self.close)
        try:
            _run(["ip", "link", "add", self._veth_host, "type", "veth", "peer", "name", self._veth_user, "netns", self.name])
            _run(["ip", "addr", "add", f"{self.host_ip}/30", "dev", self._veth_host])
            _run(["ip", "link", "set", self._veth_host, "up"])
            _run(["ip", "-n", self.name, "addr", "add", f"{self.user_ip}/30", "dev", self._veth_user])
            _run(["ip", "-n", self.name, "link", "set", self._veth_user, "up"])
            _run(["ip", "-n", self.name, "link", "set", "lo", "up"])
        except Exception:
            self.close()
            raise
        logger.info(
            "user namespace %s: %s (%s) <-> %s (%s)", self.name, self.user_ip, self._veth_user, self.host_ip, self._veth_host
        )
        return self

    def apply_netem(self, uplink: DirectionSpec, downlink: DirectionSpec) -> None:
        """Impair the veth with netem: uplink on the user side's egress, downlink on the host side's."""
        for ns, dev, spec in ((self.name, self._veth_user, uplink), (None, self._veth_host, downlink)):
            base = ["tc"] + (["-n", ns] if ns else [])
            if spec.is_identity:
                _run(base + ["qdisc", "del", "dev", dev, "root"], check=False)
                continue
            _run(base + ["qdisc", "replace", "dev", dev, "root"] + netem_args(spec))
            self.qdiscs.append(f"{dev}: {' '.join(netem_args(spec))}")

    def wrap_argv(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace (``ip netns exec``)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM) -> socket.socket:
        return socket_in_netns(self.name, family, type)

    def close(self) -> None:
        if self._closed or not self._created:
            self._closed = True
            return
        self._closed = True
        _run(["ip", "netns", "del", self.name], check=False)
        _run(["ip", "link", "del", self._veth_host], check=False)  # gone with the namespace, normally
        try:
            atexit.unregister(self.close)
        except Exception:  # pragma: no cover
            pass
        logger.info("user namespace %s deleted", self.name)


def cleanup_stale() -> list[str]:
    """Delete ``artc*`` namespaces left by processes that no longer exist (e.g. after SIGKILL)."""
    p = _run(["ip", "netns", "list"], check=False)
    removed = []
    for line in p.stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        m = re.fullmatch(rf"{NS_PREFIX}(?:chk)?(\d+)(?:x\d+)?", name)
        if not m:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or os.path.exists(f"/proc/{pid}"):
            continue
        _run(["ip", "netns", "del", name], check=False)
        removed.append(name)
    if removed:
        logger.info("removed stale namespaces %s", removed)
    return removed

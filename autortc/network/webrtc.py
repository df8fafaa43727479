"""What WebRTC itself saw on the impaired path, against the profile.

``summarize_rtc_stats`` reduces the user side's ``room.get_rtc_stats()``
(LiveKit ``RtcStats`` protos: publisher and subscriber peer connections) to the
figures a profile predicts; ``compare_webrtc`` sets them against the profile.

Which figure shows which direction (the agent's own leg is not impaired):
- uplink loss: the SFU's receiver reports on the user's audio (remote-inbound-rtp
  ``packets_lost`` over outbound-rtp ``packets_sent``);
- downlink loss and jitter: the user's inbound-rtp audio (``packets_lost``, ``jitter``);
- round trip: remote-inbound-rtp mean RTT (``total_round_trip_time /
  round_trip_time_measurements``), predicted as uplink + downlink delay.

These are reported next to the probe's verdict; the probe decides ``applied``
(it controls its own sample size), WebRTC's counters confirm it on the media.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from autortc.network.measure import DELAY_TOL_MS, LOSS_TOL_PCT, Check, _check
from autortc.network.profiles import NetworkProfile


@dataclass
class WebRtcPathStats:
    """Audio figures from the user side's WebRTC stats. Times in ms, ``None`` when absent."""

    uplink_packets_sent: int = 0
    uplink_packets_lost: int = 0
    rtcp_rtt_mean_ms: float | None = None
    rtcp_rtt_measurements: int = 0
    ice_rtt_ms: float | None = None  # nominated candidate pair, current
    downlink_packets_received: int = 0
    downlink_packets_lost: int = 0
    downlink_jitter_ms: float | None = None  # RFC 3550 interarrival jitter, as the receiver computes it
    local_addresses: list[str] = field(default_factory=list)

    @property
    def uplink_loss_pct(self) -> float | None:
        return 100.0 * self.uplink_packets_lost / self.uplink_packets_sent if self.uplink_packets_sent else None

    @property
    def downlink_loss_pct(self) -> float | None:
        n = self.downlink_packets_received + self.downlink_packets_lost
        return 100.0 * self.downlink_packets_lost / n if n else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["uplink_loss_pct"] = self.uplink_loss_pct
        d["downlink_loss_pct"] = self.downlink_loss_pct
        return d


def _audio(stream: Any) -> bool:
    return getattr(stream, "kind", "audio") in ("audio", "")


def summarize_rtc_stats(publisher_stats: Iterable[Any], subscriber_stats: Iterable[Any]) -> WebRtcPathStats:
    """Reduce LiveKit ``RtcStats`` protos (``room.get_rtc_stats()``) to :class:`WebRtcPathStats`."""
    out = WebRtcPathStats()
    rtt_total, rtt_n, jitters = 0.0, 0, []
    for s in list(publisher_stats) + list(subscriber_stats):
        kind = s.WhichOneof("stats")
        if kind == "outbound_rtp" and _audio(s.outbound_rtp.stream):
            out.uplink_packets_sent += int(s.outbound_rtp.sent.packets_sent)
        elif kind == "remote_inbound_rtp" and _audio(s.remote_inbound_rtp.stream):
            r = s.remote_inbound_rtp
            out.uplink_packets_lost += max(0, int(r.received.packets_lost))
            rtt_total += float(r.remote_inbound.total_round_trip_time)
            rtt_n += int(r.remote_inbound.round_trip_time_measurements)
        elif kind == "inbound_rtp" and _audio(s.inbound_rtp.stream):
            r = s.inbound_rtp.received
            out.downlink_packets_received += int(r.packets_received)
            out.downlink_packets_lost += max(0, int(r.packets_lost))
            jitters.append(float(r.jitter) * 1000.0)
        elif kind == "candidate_pair" and s.candidate_pair.candidate_pair.nominated:
            out.ice_rtt_ms = float(s.candidate_pair.candidate_pair.current_round_trip_time) * 1000.0
        elif kind == "local_candidate":
            c = s.local_candidate.candidate
            out.local_addresses.append(f"{c.address}:{c.port}")
    if rtt_n:
        out.rtcp_rtt_mean_ms = 1000.0 * rtt_total / rtt_n
        out.rtcp_rtt_measurements = rtt_n
    if jitters:
        out.downlink_jitter_ms = max(jitters)
    return out


def compare_webrtc(profile: NetworkProfile, s: WebRtcPathStats) -> list[Check]:
    """Configured vs WebRTC-measured loss (each direction) and round trip."""
    checks: list[Check] = []
    for name, spec, loss, n in (
        ("uplink_loss_pct", profile.uplink, s.uplink_loss_pct, s.uplink_packets_sent),
        ("downlink_loss_pct", profile.downlink, s.downlink_loss_pct, s.downlink_packets_received + s.downlink_packets_lost),
    ):
        if loss is None:
            continue
        p = max(loss, spec.loss_pct) / 100.0
        checks.append(_check(name, spec.loss_pct, loss, LOSS_TOL_PCT, 100.0 * math.sqrt(p * (1 - p) / n)))
    if s.rtcp_rtt_mean_ms is not None:
        configured = profile.uplink.delay_ms + profile.downlink.delay_ms
        spread = math.hypot(profile.uplink.jitter_ms, profile.downlink.jitter_ms) / math.sqrt(3)
        se = spread / math.sqrt(max(s.rtcp_rtt_measurements, 1))
        checks.append(_check("rtcp_rtt_ms", configured, s.rtcp_rtt_mean_ms, 2 * DELAY_TOL_MS, se))
    return checks

"""Per-turn WebRTC receive statistics of the agent's audio, from the page's getStats snapshots.

A snapshot (web/src/stats.js) holds cumulative counters of the ``inbound-rtp`` audio stream,
``remote-outbound-rtp`` and the selected ``candidate-pair``. A turn's figures are the
values of its last snapshot (one page load is one turn; counters start at subscription):

- ``packets_lost`` / ``packets_received`` and ``loss_pct = lost / (lost + received) * 100``;
- ``concealed_samples`` and ``concealed_pct`` of ``totalSamplesReceived`` (PLC / expansion);
- ``jitter_buffer_delay_ms`` = ``jitterBufferDelay`` / ``jitterBufferEmittedCount`` * 1000
  (mean time a sample spent in the jitter buffer);
- ``jitter_ms`` (RFC 3550 interarrival jitter, last value) and ``rtt_ms`` (candidate-pair
  ``currentRoundTripTime``, else remote-outbound ``roundTripTime``), where the browser has them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TurnStats:
    snapshots: int
    duration_s: float | None
    packets_received: int | None
    packets_lost: int | None
    loss_pct: float | None
    concealed_samples: int | None
    concealed_pct: float | None
    concealment_events: int | None
    jitter_buffer_delay_ms: float | None
    jitter_ms: float | None
    rtt_ms: float | None
    codec: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _num(d: dict[str, Any], key: str) -> float | None:
    v = d.get(key)
    return None if v is None else float(v)


def turn_stats(snapshots: list[dict[str, Any]]) -> TurnStats:
    """Reduce the page's snapshots (in time order) to one turn's figures; fields the browser
    did not report are None."""
    with_inbound = [s for s in snapshots if s.get("inbound")]
    if not with_inbound:
        return TurnStats(len(snapshots), None, None, None, None, None, None, None, None, None, None, None)
    first, last = with_inbound[0], with_inbound[-1]
    # One page load is one turn and the counters start at subscription, so the turn's figures
    # are the last snapshot's cumulative values; the first snapshot only dates the start.
    b = last["inbound"]
    recv = _num(b, "packetsReceived")
    lost = _num(b, "packetsLost")
    loss_pct = None
    if recv is not None and lost is not None and recv + lost > 0:
        loss_pct = max(0.0, lost) / (recv + max(0.0, lost)) * 100.0
    samples = _num(b, "totalSamplesReceived")
    concealed = _num(b, "concealedSamples")
    concealed_pct = concealed / samples * 100.0 if concealed is not None and samples else None
    jb = _num(b, "jitterBufferDelay")
    jbn = _num(b, "jitterBufferEmittedCount")
    jb_ms = jb / jbn * 1000.0 if jb is not None and jbn else None
    rtt = None
    cp = last.get("candidate_pair") or {}
    ro = last.get("remote_outbound") or {}
    if cp.get("currentRoundTripTime") is not None:
        rtt = float(cp["currentRoundTripTime"]) * 1000.0
    elif ro.get("roundTripTime") is not None:
        rtt = float(ro["roundTripTime"]) * 1000.0
    codec = (last.get("codec") or {}).get("mimeType")
    return TurnStats(
        snapshots=len(snapshots),
        duration_s=(float(last["t"]) - float(first["t"])) / 1000.0,
        packets_received=None if recv is None else int(recv),
        packets_lost=None if lost is None else int(lost),
        loss_pct=loss_pct,
        concealed_samples=None if concealed is None else int(concealed),
        concealed_pct=concealed_pct,
        concealment_events=None if b.get("concealmentEvents") is None else int(b["concealmentEvents"]),
        jitter_buffer_delay_ms=jb_ms,
        jitter_ms=float(b["jitter"]) * 1000.0 if b.get("jitter") is not None else None,
        rtt_ms=rtt,
        codec=codec,
    )

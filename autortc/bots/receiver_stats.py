"""The probe's own WebRTC receiver, read while it records.

libwebrtc's jitter buffer (NetEq) counts what it did to the audio the probe records: packets
lost, samples it concealed (expand/PLC) for packets that were missing or late, samples it
inserted or removed to stretch time.  The audio detectors never see these counters, so they
are an outside truth for a dropout heard on the way: one that came with a concealment in the
receiver is the network path's; one without is not (the sender's pacing, or a detector error).

:func:`poll_receiver` reads the agent audio track's ``get_stats()`` every
:data:`STATS_INTERVAL_S` and appends one :class:`autortc.artifacts.ReceiverSample` per read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from autortc.artifacts import ReceiverSample

log = logging.getLogger("autortc.bots.probe")

STATS_INTERVAL_S = 0.1
"""Seconds between reads: a concealment is placed within one interval (~5 frames of 20 ms). The
reads made no difference to the suite's latencies measurable against their spread (runs rx5 with
them, rx6 without: EoT -> first audio P50 917 / 923 ms)."""

OPUS_CLOCK_HZ = 48000


def inbound_audio(track_stats: list[Any]) -> tuple[Any, int] | None:
    """The inbound-rtp stats in ``track_stats`` and its codec clock (Hz), or None.

    ``track_stats``: what ``rtc.RemoteAudioTrack.get_stats()`` returns for one subscribed track
    (protobuf ``RtcStats`` messages: its receiver's inbound-rtp, codec, transport...). The room's
    ``get_rtc_stats()`` lists every inbound stream under libwebrtc's own track ids, which do not
    name the LiveKit track, so the track's own stats are read.
    """
    clocks = {s.codec.rtc.id: s.codec.codec.clock_rate for s in track_stats if s.WhichOneof("stats") == "codec"}
    for s in track_stats:
        if s.WhichOneof("stats") == "inbound_rtp" and s.inbound_rtp.stream.kind == "audio":
            r = s.inbound_rtp
            return r, int(clocks.get(r.stream.codec_id) or OPUS_CLOCK_HZ)
    return None


def to_sample(inbound: Any, *, t: float, clock_hz: int) -> ReceiverSample:
    """One :class:`ReceiverSample` from a protobuf ``RtcStats.InboundRtp`` read at monotonic ``t``."""
    i = inbound.inbound
    return ReceiverSample(
        t=t,
        packets_received=int(inbound.received.packets_received),
        packets_lost=int(inbound.received.packets_lost),
        concealed_samples=int(i.concealed_samples),
        silent_concealed_samples=int(i.silent_concealed_samples),
        concealment_events=int(i.concealment_events),
        inserted_samples_for_deceleration=int(i.inserted_samples_for_deceleration),
        removed_samples_for_acceleration=int(i.removed_samples_for_acceleration),
        total_samples_received=int(i.total_samples_received),
        jitter_buffer_delay_s=float(i.jitter_buffer_delay),
        jitter_buffer_emitted_count=int(i.jitter_buffer_emitted_count),
        sample_rate_hz=clock_hz,
    )


async def poll_receiver(track: Any, out: list[ReceiverSample], *, room_name: str,
                        interval_s: float = STATS_INTERVAL_S) -> None:
    """Append a sample of ``track``'s receiver (an ``rtc.RemoteAudioTrack``) to ``out`` every
    ``interval_s`` until cancelled.

    Ends, logging why, when the stats cannot be read (the track is gone with the room); a read
    without an inbound-rtp stream (before the first packet) is skipped. The turns then show the
    receiver as not measured rather than the run failing on an observer.
    """
    while True:
        t0 = time.monotonic()
        try:
            stats = await track.get_stats()
        except Exception as exc:  # the SDK raises a bare Exception with the FFI's error text
            log.info("room=%s receiver stats stop: %s", room_name, exc)
            return
        t1 = time.monotonic()
        found = inbound_audio(list(stats))
        if found is not None:
            out.append(to_sample(found[0], t=(t0 + t1) / 2, clock_hz=found[1]))
        await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - t0)))  # a sampling period, not a barrier

"""The probe's receiver counters: read from the SDK's protobuf stats, differenced over the heard
reply, and set against the dropouts heard (planted concealments at known times)."""

import asyncio

import numpy as np
import pytest
from livekit.rtc._proto import stats_pb2

from autortc.artifacts import AgentReply, ReceiverSample, read_trace, write_trace
from autortc.bots.receiver_stats import inbound_audio, poll_receiver, to_sample
from autortc.gates import load_gates
from autortc.metrics import receiver
from autortc.metrics.turn import compute_turn_metrics
from autortc.testing.faults import dropout, make_speech, write_turn_folder

SR = 48000


def _track_stats(*, concealed: int, events: int, lost: int = 0, clock: int = 48000) -> list:
    codec = stats_pb2.RtcStats(codec=stats_pb2.RtcStats.Codec(
        rtc=stats_pb2.RtcStatsData(id="COT01"), codec=stats_pb2.CodecStats(clock_rate=clock, mime_type="audio/opus")))
    inbound = stats_pb2.RtcStats(inbound_rtp=stats_pb2.RtcStats.InboundRtp(
        rtc=stats_pb2.RtcStatsData(id="IT01A"),
        stream=stats_pb2.RtpStreamStats(kind="audio", codec_id="COT01"),
        received=stats_pb2.ReceivedRtpStreamStats(packets_received=100, packets_lost=lost),
        inbound=stats_pb2.InboundRtpStreamStats(concealed_samples=concealed, silent_concealed_samples=0,
                                                concealment_events=events, total_samples_received=96000,
                                                jitter_buffer_delay=3.0, jitter_buffer_emitted_count=96000)))
    transport = stats_pb2.RtcStats(transport=stats_pb2.RtcStats.Transport(rtc=stats_pb2.RtcStatsData(id="T01")))
    return [transport, codec, inbound]


def test_inbound_audio_reads_the_tracks_counters_and_clock():
    found = inbound_audio(_track_stats(concealed=960, events=1, lost=2, clock=48000))
    assert found is not None
    s = to_sample(found[0], t=5.0, clock_hz=found[1])
    assert (s.concealed_samples, s.concealment_events, s.packets_lost, s.sample_rate_hz) == (960, 1, 2, 48000)
    assert s.jitter_buffer_delay_s == 3.0 and s.jitter_buffer_emitted_count == 96000
    assert inbound_audio(_track_stats(concealed=0, events=0)[:2]) is None  # no inbound-rtp yet: not a sample


def _reads(t0: float, t1: float, *, concealment_at: float | None, concealed_samples: int = 3840) -> list[ReceiverSample]:
    """Reads every 0.1 s; one concealment of ``concealed_samples`` happens at ``concealment_at``."""
    out = []
    for k in range(int(round((t1 - t0) / 0.1))):
        t = round(t0 + 0.1 * k, 6)
        hit = concealment_at is not None and t >= concealment_at
        out.append(ReceiverSample(
            t=float(t), packets_received=5 * k, packets_lost=0, concealed_samples=concealed_samples if hit else 0,
            silent_concealed_samples=0, concealment_events=1 if hit else 0, inserted_samples_for_deceleration=0,
            removed_samples_for_acceleration=0, total_samples_received=4800 * k,
            jitter_buffer_delay_s=0.04 * 4800 * k, jitter_buffer_emitted_count=4800 * k))
    return out


def test_delta_and_concealment_placement():
    reads = _reads(10.0, 12.0, concealment_at=10.85)
    d = receiver.delta(reads, 10.3, 11.5)
    assert d is not None and d.concealment_events == 1 and d.concealed_ms == pytest.approx(80.0)
    assert d.packets_received == 60 and d.jitter_buffer_ms == pytest.approx(40.0)
    assert receiver.delta(reads, 10.0, 10.7).concealment_events == 0  # before it
    assert receiver.delta(reads, 9.0, 11.0) is None  # no read before 9.0: not covered
    spans = receiver.concealment_spans(reads)
    assert len(spans) == 1 and spans[0][0] < 10.85 <= spans[0][1]
    assert receiver.concealed_at(spans, 10.82, 10.84)
    assert not receiver.concealed_at(spans, 11.3, 11.35)


@pytest.fixture(scope="module")
def reply():
    return make_speech(SR, seed=40, sentences=2, words_per_sentence=(3, 4))


@pytest.mark.parametrize("where", ["at_dropout", "elsewhere", "agent_output_wait"])
def test_heard_dropout_is_set_against_the_receivers_concealment(tmp_path, reply, where):
    at = reply.fault_points_ms(80, 1, rng_seed=3)[0]
    post, f = dropout(reply.samples, SR, at, 80)
    d = tmp_path / "c" / "t"
    truth = write_turn_folder(d, pre=reply.samples, post=post, sr=SR, expected_silence_ms=reply.expected_silence_ms)
    lead = truth["onset_sample"] - int(np.flatnonzero(np.abs(post) > 1e-3)[0])
    t_drop = 100.0 + (lead + f.start_ms * SR / 1000) / SR  # write_turn_folder: frames from t=100.0, no jitter
    art = read_trace(d / "trace.json")
    t_end = art.probe.frames[-1][0] + 0.3
    away = -0.4 if f.start_ms > 600 else 0.4  # inside the reply, two read intervals and more from the dropout
    planted = t_drop + 0.02 if where == "at_dropout" else t_drop + away
    art.probe.receiver = _reads(99.95, t_end, concealment_at=planted)
    if where == "agent_output_wait":
        # the agent's output ran dry there: a run break of 80 ms, dated on the agent side. In this
        # synthetic turn pre sample 0 is heard at post sample 0, frame 0 arrives 20 ms after it is
        # published (write_turn_folder), and no frame is late: published -> heard = 20 ms
        t_pub = art.agent.stages["first_frame_published"]
        t_dry = t_drop - 0.020
        art.agent.replies = [AgentReply(reply_index=0, t_first_frame_published=t_pub,
                                        runs=[(0.0, t_pub, t_dry - t_pub), (t_dry - t_pub, t_dry + 0.08, 1.0)])]
    write_trace(d, art)
    res = compute_turn_metrics(d, gates=load_gates())
    assert res.continuity.audible_dropouts == 1
    assert res.receiver.concealment_events == 1 and res.receiver.concealed_ms == pytest.approx(80.0)
    assert res.receiver.dropouts_concealed == (1 if where == "at_dropout" else 0)
    # a hole at a wait of the agent's output is the agent's; with no concealment at the receiver
    # either it came in the packets as sent; at a concealment it is the path's
    assert res.origin["audible_dropout"] == {"at_dropout": "path", "elsewhere": "sender",
                                             "agent_output_wait": "agent"}[where]
    if where == "agent_output_wait":
        w = res.continuity.agent_output_dry
        assert len(w) == 1 and w[0].end_ms - w[0].start_ms == pytest.approx(80.0, abs=0.5)


def test_no_reads_means_not_measured(tmp_path, reply):
    write_turn_folder(tmp_path / "t", pre=reply.samples, sr=SR)
    res = compute_turn_metrics(tmp_path / "t", gates=load_gates())
    assert res.receiver.concealment_events is None and res.receiver.dropouts_concealed is None


class _Track:
    def __init__(self, fail_after: int) -> None:
        self.calls, self.fail_after = 0, fail_after

    async def get_stats(self) -> list:
        self.calls += 1
        if self.calls > self.fail_after:
            raise Exception("track not found")  # what the SDK raises once the room is gone
        if self.calls == 1:
            return _track_stats(concealed=0, events=0)[:2]  # before the first packet: no inbound-rtp
        return _track_stats(concealed=480 * self.calls, events=self.calls)


def test_poll_receiver_samples_until_the_track_is_gone():
    out: list[ReceiverSample] = []
    asyncio.run(asyncio.wait_for(poll_receiver(_Track(fail_after=4), out, room_name="r", interval_s=0.01), 5.0))
    assert [s.concealment_events for s in out] == [2, 3, 4]
    assert all(b.t > a.t for a, b in zip(out, out[1:]))


def test_dry_spans_are_waits_between_runs_of_the_same_audio():
    from autortc.metrics.playout import dry_spans

    runs = [(0.0, 10.0, 0.5), (0.5, 10.53, 0.7), (1.2, 11.2303, 0.4), (2.0, 12.0, 0.3)]
    spans = dry_spans(runs)
    # 30 ms at 0.5 s and 0.3 ms at 1.2 s (LiveKit's word that the source ran out: a 10 ms tick is
    # lost even so); the jump 1.6 -> 2.0 s dropped audio (a pause), not a wait
    assert [(s.offset_s, round(s.ms, 1)) for s in spans] == [(0.5, 30.0), (1.2, 0.3)]
    assert dry_spans(list(reversed(runs))) == spans  # order of the reports does not matter
    # b0 endpoint_short_hello: a break at 50 ms whose dates overlap by 16 ms (LiveKit back-dates a
    # run's start from its end); a 15 ms hole was heard there: a wait of unknown length, kept
    overlap = dry_spans([(0.0, 75179.19110, 0.05), (0.05, 75179.22528, 2.98175)])
    assert [(s.offset_s, s.ms) for s in overlap] == [(0.05, 0.0)]
    # rx9 turn_barge_in_stop: its last 7 ms split into runs as it stopped at 1.5793 s
    cut = [(0.0, 5.0, 1.5724), (1.5724, 6.5728, 0.0057), (1.5781, 6.5786, 0.0012)]
    assert dry_spans(cut, stopped_at_s=1.5793) == []
    assert len(dry_spans(cut)) == 2

"""The uplink metric (autortc/metrics/uplink.py) against planted truth: a case WAV sent through a
real Opus round trip, placed in an "agent copy" at a planted delay, with planted lost packets."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autortc.audio import resample
from autortc.audio.energy import measure_speech_span
from autortc.metrics.uplink import segment_uplink
from autortc.testing.opus import lost_span, opus_roundtrip

pytestmark = pytest.mark.unit

WAV = Path(__file__).resolve().parents[2] / "cases" / "wavs" / "rate_fast_speaker.wav"
SR = 16000
LEAD_S = 0.5  # silence before the speech in user.wav
T_USER0 = 1000.0  # monotonic s of user.wav's sample 0
T_IN0 = 1000.1  # monotonic s of the agent copy's sample 0 (its recording began 100 ms later)


@pytest.fixture(scope="module")
def user() -> tuple[np.ndarray, tuple[int, int]]:
    x, sr = sf.read(WAV, dtype="float32")
    assert sr == SR
    u = np.concatenate([np.zeros(int(LEAD_S * SR), np.float32), x, np.zeros(SR, np.float32)])
    ms = measure_speech_span(u, SR)  # (start_ms, end_ms)
    assert ms is not None
    return u, (int(ms[0] * SR / 1000), int(ms[1] * SR / 1000))


def _agent_copy(u: np.ndarray, delay_ms: float, lost: tuple[int, ...] = ()) -> np.ndarray:
    """``u`` through Opus (packets ``lost`` zeroed), back at 16 kHz, as received ``delay_ms`` after
    it left the user side, on a copy whose sample 0 is at T_IN0."""
    y, sr48 = opus_roundtrip(u, SR, lost=lost, conceal="zero")
    y = resample(y, sr48, SR).astype(np.float32)
    at = int(round((T_USER0 + delay_ms / 1000.0 - T_IN0) * SR))
    out = np.zeros(at + y.size + SR, np.float32)
    out[at: at + y.size] = y
    return out


@pytest.mark.parametrize("delay_ms", [312.0, 987.0])
def test_planted_delay_is_recovered_and_a_clean_copy_loses_nothing(user, delay_ms):
    u, span = user
    r = segment_uplink(u, SR, T_USER0, span, _agent_copy(u, delay_ms), SR, T_IN0)
    assert r is not None
    assert abs(r.delay_ms - delay_ms) <= 1.0, r.delay_ms
    assert r.lost == [] and r.lost_ms == 0.0
    assert r.corr > 0.9


def test_two_lost_packets_inside_speech_are_found_where_they_were(user):
    """40 ms the receiver left silent: found, its edges within 5 ms (a single 20 ms packet is below
    what the followed lag can resolve: LAG_TOLERANCE_MS)."""
    u, span = user
    x48 = resample(u, SR, 48000)
    # two consecutive 20 ms packets in the loudest part of the speech
    env = np.convolve(np.abs(x48), np.ones(960) / 960, mode="same")
    k = int(np.argmax(env[span[0] * 3 + 14400: span[1] * 3 - 14400]) + span[0] * 3 + 14400) // 960
    a, b = lost_span(k)[0], lost_span(k + 1)[1]
    truth = (a / 48.0, b / 48.0)  # ms in user.wav
    r = segment_uplink(u, SR, T_USER0, span, _agent_copy(u, 250.0, lost=(k, k + 1)), SR, T_IN0)
    assert r is not None and abs(r.delay_ms - 250.0) <= 1.0
    assert len(r.lost) == 1, r.lost
    g = r.lost[0]
    assert abs(g.start_ms - truth[0]) <= 5 and abs(g.end_ms - truth[1]) <= 5, (g, truth)


def test_a_copy_that_does_not_reach_the_speech_is_not_measured(user):
    u, span = user
    copy = _agent_copy(u, 300.0)[: int((span[0] / SR + LEAD_S) * SR)]  # ends before the speech reached it
    assert segment_uplink(u, SR, T_USER0, span, copy, SR, T_IN0) is None


def test_runner_writes_the_announced_agent_input_copy_and_rebases_its_clock(tmp_path, user):
    from autortc.bots.probe_bot import TraceEvents
    from autortc.runner.conversation import TurnTimeouts, _agent_input_due, probe_artifacts

    u, _ = user
    copy = (_agent_copy(u, 300.0) * 32767).astype(np.int16)

    class FakeProbe:
        arrivals: list = []
        receiver: list = []

        def pcm(self, start: int) -> np.ndarray:
            return np.zeros(0, np.int16)

    tr = TraceEvents(trace_id="t")
    # another host: its t_wall - t_mono differs from ours by 5000 s, which moves its times onto our clock
    tr.trace_msg = {"v": 1, "type": "trace", "trace_id": "t", "stages": {}, "t_mono": 10.0, "t_wall": 5010.0 + 1e9,
                    "agent_input": {"sr": SR, "samples": int(copy.size), "t_first_sample": 9.5}}
    assert _agent_input_due(tr)  # announced, not received: the runner waits for it
    tr.agent_input = (copy, SR)
    assert not _agent_input_due(tr)
    _, block = probe_artifacts(FakeProbe(), tr, tmp_path, full_start=0, timeouts=TurnTimeouts())
    assert block is not None and block.agent_input is not None
    assert block.agent_input.wav == "agent_input.wav" and block.agent_input.samples == copy.size
    x, sr = sf.read(str(tmp_path / "agent_input.wav"), dtype="int16")
    assert sr == SR and np.array_equal(x, copy)
    assert abs(block.agent_input.t_first_sample - (9.5 + block.clock_offset_s)) < 1e-9 and block.clock_offset_s != 0.0


def test_a_receiver_that_compresses_the_speech_is_followed_and_loses_nothing(user):
    """The receiver's time stretch (a jitter buffer catching up): 2 ms cut every 50 ms of the
    first second of speech = 40 ms compressed. The copy's end comes 40 ms earlier than its start's
    lag says; nothing is lost (one lag for the segment read the pauses' edges as lost speech)."""
    u, span = user
    y = _agent_copy(u, 400.0)
    at = int(round((T_USER0 + 0.400 - T_IN0) * SR)) + span[0]  # the speech's first sample in the copy
    keep = np.ones(y.size, bool)
    for k in range(20):  # 20 cuts of 32 samples (2 ms) inside the first second of speech
        c = at + 400 + k * 800
        keep[c: c + 32] = False
    r = segment_uplink(u, SR, T_USER0, span, y[keep], SR, T_IN0)
    assert r is not None
    assert r.lost == [], r.lost
    assert abs(r.delay_start_ms - 400.0) <= 8.0, r.delay_start_ms
    assert abs(r.delay_ms - 360.0) <= 5.0, r.delay_ms
    assert 30.0 <= r.warp_ms <= 50.0, r.warp_ms


def test_the_user_sides_own_lateness_is_reported_apart_from_the_uplink_delay(user):
    """Planted: the user bot's loop held its frames back 52 ms before the speech (the contract's hand-over
    times say so: t_onset/t_end 52 ms after the WAV's schedule), and the path took 300 ms: the copy has the
    speech 352 ms after the schedule. The uplink delay is the path's 300, the lateness the instrument's 52."""
    from types import SimpleNamespace

    from autortc.artifacts import UserBlock, UserSegment
    from autortc.audio import Audio
    from autortc.metrics.turn import _uplink
    from autortc.results import TurnResult

    u, (s, e) = user
    late_s = 0.052
    copy = _agent_copy(u, 300.0 + late_s * 1000.0)
    seg = UserSegment(index=0, expect="respond", speech_start_sample=s, eot_sample=e,
                      t_onset=T_USER0 + s / SR + late_s, t_end=T_USER0 + e / SR + late_s)
    user_t = UserBlock(source="bot", wav="user.wav", sr=SR, t_audio_start=T_USER0, speech_start_sample=s, eot_sample=e,
                       t_user_eot=seg.t_end, segments=[seg])
    agent = SimpleNamespace(agent_input=SimpleNamespace(t_first_sample=T_IN0))
    res = TurnResult(case_id="c", trace_id="t")
    _uplink(res, user_t, agent, Audio(u, SR), Audio(copy, SR))
    U = res.uplink
    assert U.segments == 1 and U.lost_ms == 0.0
    assert abs(U.handover_late_ms - 52.0) < 0.01
    assert abs(U.delay_ms - 300.0) <= 2.0 and abs(U.delay_max_ms - 300.0) <= 2.0
    assert abs(U.warp_ms) <= 2.0

"""The reply the user heard is measured even when the agent first started a reply it never
published (it took a pause in the user's sentence for the end of turn, then cancelled when the
user went on).  Found on the real bench (fb-bots-1702: b001 gap_60 and b009 clean on
endpoint_pause_in_turn / rate_slow_speaker): reply 0 had reply_end but no reply_start and no
audio; the runner sliced reply 0, so the heard reply 1 was never measured ("post_rtc_reply.wav
missing ... reply metrics not measured") and a planted gap in it could not be found."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autortc.artifacts import load_turn
from autortc.gates import judge_turn, load_gates
from autortc.metrics.turn import compute
from autortc.testing.faults import insert_gap, make_speech, write_turn_folder

pytestmark = pytest.mark.unit

SR = 48000


def _unheard_first_reply(d: Path, truth: dict) -> None:
    """Rewrite the folder as the runner wrote such a turn: no reply slice, no post_rtc_reply.wav,
    reply 0 without start (never published), reply 1 = the heard reply."""
    tr = json.loads((d / "trace.json").read_text())
    a, b = tr["probe"]["reply_slice"]
    tr["probe"]["reply_slice"] = None
    tr["probe"]["replies"] = [
        {"reply_index": 0, "start_sample": None, "end_sample": a - 4800, "t_start_recv": None, "t_end_recv": None,
         "interrupted": True},
        {"reply_index": 1, "start_sample": a, "end_sample": b, "t_start_recv": None, "t_end_recv": None,
         "interrupted": False},
    ]
    (d / "trace.json").write_text(json.dumps(tr))
    (d / "post_rtc_reply.wav").unlink()


def test_heard_reply_is_measured_when_the_first_reply_was_never_published(tmp_path):
    pre = make_speech(SR, seed=3, sentences=2).samples
    post, gap = insert_gap(pre, SR, 900.0, 120.0)
    d = tmp_path / "t"
    truth = write_turn_folder(d, pre=pre, post=post, sr=SR, delay_ms=400.0)
    _unheard_first_reply(d, truth)
    t = load_turn(d)
    res = judge_turn(compute(t.artifacts, t.audio, errors=t.errors), load_gates())
    assert res.continuity.max_gap_ms is not None, res.errors
    assert not any("reply metrics not measured" in e for e in res.errors), res.errors
    assert res.continuity.audible_dropouts is not None
    v = {x.gate: x for x in res.verdicts}
    assert v["audible_dropout"].status == "FAIL" or v["max_gap"].status != "PASS", (res.continuity, v)


def test_runner_slices_the_first_heard_reply_and_writes_its_pre_rtc_copy(tmp_path):
    from autortc.bots.probe_bot import ReplyEvents, TraceEvents
    from autortc.runner.conversation import TurnTimeouts, probe_artifacts

    speech = (make_speech(SR, seed=5, sentences=1).samples * 32767).astype(np.int16)
    lead, n = SR, speech.size
    full = np.concatenate([np.zeros(lead, np.int16), speech, np.zeros(SR // 2, np.int16)])

    class FakeProbe:
        arrivals = [(10.0 + i * 0.02, i * 960) for i in range(full.size // 960)]
        receiver: list = []  # no receiver reads: the turn shows the receiver as not measured

        def pcm(self, start: int) -> np.ndarray:
            return full[start:]

    tr = TraceEvents(trace_id="t")
    tr.replies[0] = ReplyEvents(0, end_msg={"interrupted": True}, end_sample=lead - 2400)  # never started
    tr.replies[1] = ReplyEvents(1, start_msg={}, end_msg={"interrupted": False}, start_sample=lead - 480,
                                end_sample=lead + n)
    tr.pre_rtc[1] = (speech, SR)
    pb, _ = probe_artifacts(FakeProbe(), tr, tmp_path, full_start=0, timeouts=TurnTimeouts())
    on = lead + int(np.flatnonzero(np.abs(speech) > 300)[0])  # the heard reply's first audible sample
    assert pb.reply_slice is not None and on - 960 <= pb.reply_slice[0] <= on, (pb.reply_slice, on)
    assert (tmp_path / "post_rtc_reply.wav").exists() and (tmp_path / "pre_rtc.wav").exists()
    assert sf.info(str(tmp_path / "pre_rtc.wav")).frames == n


def _click_then_speech() -> np.ndarray:
    """The bench's click_first as the agent publishes it: a full-scale first sample, then piper's
    ~40 ms of leading silence, then speech."""
    sp = make_speech(SR, seed=7, sentences=1).samples
    sp = sp[int(np.flatnonzero(np.abs(sp) > 1e-3)[0]):]
    x = np.concatenate([np.zeros(int(0.040 * SR), np.float32), sp])
    x[0] = 32767 / 32768
    return x


def test_runner_slice_begins_before_a_click_on_the_replys_first_sample(tmp_path):
    """fb-bots-1702 b008 click_first: first_onset needs 20 ms of sound, so the slice began 10 ms
    before the speech, 40 ms after the click: the spike detector never saw what the user heard."""
    from autortc.bots.probe_bot import ReplyEvents, TraceEvents
    from autortc.runner.conversation import TurnTimeouts, probe_artifacts

    x = (_click_then_speech() * 32767).astype(np.int16)
    lead = SR // 2
    full = np.concatenate([np.zeros(lead, np.int16), x, np.zeros(SR // 2, np.int16)])

    class FakeProbe:
        arrivals = [(10.0 + i * 0.02, i * 960) for i in range(full.size // 960)]
        receiver: list = []  # no receiver reads: the turn shows the receiver as not measured

        def pcm(self, start: int) -> np.ndarray:
            return full[start:]

    tr = TraceEvents(trace_id="t")
    tr.replies[0] = ReplyEvents(0, start_msg={}, end_msg={"interrupted": False}, start_sample=lead - 960,
                                end_sample=lead + x.size)
    pb, _ = probe_artifacts(FakeProbe(), tr, tmp_path, full_start=0, timeouts=TurnTimeouts())
    assert pb.reply_slice[0] <= lead, (pb.reply_slice, lead)
    seg, _ = sf.read(str(tmp_path / "post_rtc_reply.wav"), dtype="float32")
    assert np.abs(seg).max() > 0.99


def test_recorded_slice_that_began_after_the_click_is_extended_back(tmp_path):
    from autortc.metrics import defects

    x = _click_then_speech()
    d = tmp_path / "t"
    write_turn_folder(d, pre=x, post=x, sr=SR, delay_ms=400.0)
    tr = json.loads((d / "trace.json").read_text())
    a, b = tr["probe"]["reply_slice"]
    full, _ = sf.read(str(d / "post_rtc_full.wav"), dtype="float32")
    # as the runner sliced before: 10 ms before the speech's onset, 30 ms after the click
    s0 = a + int(np.flatnonzero(np.abs(full[a:]) > 0.01)[0]) + int(0.030 * SR)
    tr["probe"]["reply_slice"] = [s0, b]
    tr["probe"]["replies"] = [{"reply_index": 0, "start_sample": a, "end_sample": b, "t_start_recv": None,
                               "t_end_recv": None, "interrupted": False}]
    (d / "trace.json").write_text(json.dumps(tr))
    sf.write(str(d / "post_rtc_reply.wav"), full[s0:b], SR, subtype="PCM_16")
    assert defects.detect_spikes(full[s0:b], SR) == []  # the recorded slice alone hides the click
    t = load_turn(d)
    res = judge_turn(compute(t.artifacts, t.audio, errors=t.errors), load_gates())
    assert res.fingerprints.peak_spike_count == 1, res.fingerprints
    assert {v.gate: v.status for v in res.verdicts}["peak_spike"] == "WARN"


def test_tts_to_publish_is_not_taken_across_two_replies(tmp_path):
    """The agent's stages keep each name's first time; with reply 0 cancelled before its first
    frame, tts_first_chunk is reply 0's and first_frame_published reply 1's (b009: 740 ms WARN on
    a clean turn)."""
    pre = make_speech(SR, seed=3, sentences=1).samples
    d = tmp_path / "t"
    write_turn_folder(d, pre=pre, sr=SR, delay_ms=400.0, stages_ms={"tts_first_chunk": -300.0})
    tr = json.loads((d / "trace.json").read_text())
    pub = tr["agent"]["stages"]["first_frame_published"]
    tr["agent"]["replies"] = [{"reply_index": 0, "t_first_frame_published": None, "interrupted": True},
                              {"reply_index": 1, "t_first_frame_published": pub, "interrupted": False}]
    (d / "trace.json").write_text(json.dumps(tr))
    t = load_turn(d)
    assert compute(t.artifacts, t.audio).latency.tts_first_to_publish_ms is None
    tr["agent"]["replies"] = tr["agent"]["replies"][1:]
    (d / "trace.json").write_text(json.dumps(tr))
    t = load_turn(d)
    assert compute(t.artifacts, t.audio).latency.tts_first_to_publish_ms == pytest.approx(
        1000 * (pub - tr["agent"]["stages"]["tts_first_chunk"]))


@pytest.mark.parametrize("after_release_ms, status", [(20.0, "PASS"), (160.0, "WARN")])
def test_a_preemptive_first_chunk_held_for_the_end_of_turn_is_not_publish_time(tmp_path, after_release_ms, status):
    """A first chunk made 120 ms before the agent's end-of-turn decision, the first frame published
    ``after_release_ms`` after it: the gate (P95 <= 120 ms, the seed's) sees the time after the release
    (one turn beyond a P95 threshold is its WARN, "pushes the P95")."""
    pre = make_speech(SR, seed=3, sentences=1).samples
    d = tmp_path / "t"
    write_turn_folder(d, pre=pre, sr=SR, delay_ms=400.0, stages_ms={"tts_first_chunk": 0.0, "end_of_turn": 120.0})
    tr = json.loads((d / "trace.json").read_text())
    st = tr["agent"]["stages"]
    st["first_frame_published"] = st["end_of_turn"] + after_release_ms / 1000
    (d / "trace.json").write_text(json.dumps(tr))
    t = load_turn(d)
    res = judge_turn(compute(t.artifacts, t.audio, errors=t.errors), load_gates())
    assert res.latency.tts_first_to_publish_ms == pytest.approx(after_release_ms, abs=0.01)
    assert res.latency.tts_first_held_ms == pytest.approx(120.0, abs=0.01)
    assert {v.gate: v.status for v in res.verdicts}["tts_first_to_publish"] == status

"""The latency split of a browser turn whose agent answered into a pause (fb-browser-1903 b003).

The agent's stages keep the first time of each name: its first end-of-turn decision (in a pause
of the slow speaker's, 962 ms before the user's EoT) and its first reply's first frame (446 ms
before the EoT, cut by the user 67 ms later). The user heard reply 1. The recorded split was
uplink −962 ms, downlink 1393 ms (the whole second answer counted as "downlink"). Every expected
value below is the planted truth, written out by hand: the probe receives published audio
``PATH_MS`` after the agent publishes it, and the heard reply opens with ``DELAY_MS`` of digital
silence (the delay fault)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autortc.artifacts import TRACE_FILE, AgentReply, BrowserBlock, UserBlock, UserSegment, read_trace, write_trace
from autortc.faultbench import bench
from autortc.faultbench.score import TurnOutcome, delay_recovery
from autortc.gates import load_gates
from autortc.metrics.instrument import timing_summary
from autortc.metrics.turn import compute_turn_metrics
from autortc.testing.faults import write_turn_folder

pytestmark = pytest.mark.unit

SR = 48000
PATH_MS = 60.0  # agent publishes -> probe receives (the path), planted
DELAY_MS = 300.0  # digital silence at the head of the heard reply, planted


def _reply_audio() -> np.ndarray:
    """300 ms of zeros, then a tone that is loud from its first sample: its onset is exact."""
    t = np.arange(int(0.6 * SR)) / SR
    return np.concatenate([np.zeros(int(DELAY_MS / 1000 * SR), np.float32),
                           (0.3 * np.cos(2 * np.pi * 440 * t)).astype(np.float32)])


def _browser_turn(td: Path, *, pub_heard_ms: float, stages_ms: dict[str, float], replies_ms: list[dict]) -> float:
    """A turn as ``BrowserUser`` writes it (user side = the page: no user.wav, EoT on the host clock
    from the clock sync); the heard reply published ``pub_heard_ms`` after the user's EoT. Times in
    ``stages_ms`` / ``replies_ms`` are ms from the user's EoT. Returns the user's EoT (s)."""
    # post sample 0 (the heard reply's first published sample) reaches the probe PATH_MS after publication
    write_turn_folder(td, pre=_reply_audio(), sr=SR, delay_ms=pub_heard_ms + PATH_MS, frame_ms=20.0)
    art = read_trace(td / TRACE_FILE)
    eot = float(art.user.t_user_eot)
    at = lambda ms: None if ms is None else eot + ms / 1000.0  # noqa: E731
    art.user = UserBlock(source="browser", t_user_eot=eot,
                         segments=[UserSegment(index=0, expect="respond", after="start", offset_ms=0.0,
                                               t_onset=eot - 4.423, t_end=eot)])
    art.browser = BrowserBlock(eot_source="annotation", clock_sync_rtt_ms=1.1, reply_complete=True)
    art.agent.stages = {k: at(v) for k, v in stages_ms.items()}
    art.agent.replies = [AgentReply(reply_index=i, t_first_frame_published=at(r.get("pub")), t_end=at(r.get("end")),
                                    interrupted=r.get("interrupted", False), pre_rtc_sr=24000,
                                    pre_rtc_samples=r.get("samples", 24000))
                         for i, r in enumerate(replies_ms)]
    write_trace(td, art)
    return eot


def test_b003_the_heard_reply_not_the_first_one_gives_the_downlink(tmp_path: Path):
    # b003's agent: decided at EoT − 962 ms, reply 0 published at − 446 ms and cut at − 379 ms;
    # reply 1 (decision not in the stages) published at EoT + 888 ms, heard from its 300 ms of silence on
    td = tmp_path / "b003"
    _browser_turn(td, pub_heard_ms=888.0,
                  stages_ms={"user_speech_end": -1209.0, "end_of_turn": -962.0, "tts_first_chunk": -750.0,
                             "first_frame_published": -446.0},
                  replies_ms=[{"pub": -446.0, "end": -379.0, "interrupted": True, "samples": 1380},
                              {"pub": 888.0, "end": 4514.0}])
    lt = compute_turn_metrics(td, gates=load_gates()).latency
    # truth: first audible sample = publication + path + planted silence = EoT + 888 + 60 + 300
    assert lt.eot_to_first_audio_ms == pytest.approx(888.0 + PATH_MS + DELAY_MS, abs=1.0)
    assert lt.downlink_ms == pytest.approx(PATH_MS + DELAY_MS, abs=1.0)  # 360, recorded as 1393-like before
    # reply 1's decision is not in the stages: uplink and agent are not decomposed, and say why
    assert lt.uplink_ms is None and lt.agent_ms is None
    assert lt.split_note and "not the agent's first" in lt.split_note


def test_a_decision_in_a_pause_whose_reply_never_published_is_not_the_heard_replys(tmp_path: Path):
    # b019: decided at EoT − 3179 ms, reply 0 cancelled before its first frame, reply 1 published at + 511 ms
    # (the stages' first_frame_published is reply 1's: downlink right, uplink −3179 / agent 3690 were not)
    td = tmp_path / "b019"
    _browser_turn(td, pub_heard_ms=511.0,
                  stages_ms={"end_of_turn": -3179.0, "first_frame_published": 511.0},
                  replies_ms=[{"pub": None, "end": 359.0, "interrupted": True, "samples": 0},
                              {"pub": 511.0, "end": 5357.0}])
    lt = compute_turn_metrics(td, gates=load_gates()).latency
    assert lt.downlink_ms == pytest.approx(PATH_MS + DELAY_MS, abs=1.0)
    assert lt.uplink_ms is None and lt.agent_ms is None and lt.split_note


def test_a_browser_turn_with_one_reply_splits_as_the_bots_do(tmp_path: Path):
    # decided 350 ms after the EoT, published 240 ms later, heard after the path and the 300 ms silence
    td = tmp_path / "one"
    _browser_turn(td, pub_heard_ms=590.0, stages_ms={"end_of_turn": 350.0, "first_frame_published": 590.0},
                  replies_ms=[{"pub": 590.0, "end": 4000.0}])
    lt = compute_turn_metrics(td, gates=load_gates()).latency
    assert lt.uplink_ms == pytest.approx(350.0, abs=0.01)
    assert lt.agent_ms == pytest.approx(240.0, abs=0.01)
    assert lt.downlink_ms == pytest.approx(PATH_MS + DELAY_MS, abs=1.0)
    assert lt.split_note is None
    assert lt.uplink_ms + lt.agent_ms + lt.downlink_ms == pytest.approx(lt.eot_to_first_audio_ms, abs=0.01)


def test_not_decomposed_turns_are_counted_with_their_reason():
    rows = [(950.0, 350.0, 240.0, 360.0, None),
            (1248.0, None, None, 360.0, "the reply heard is not the agent's first of the turn (reply 1 heard, 0 before it): x"),
            (871.0, None, None, 360.0, "the agent decided the end of turn before the user's EoT (3179 ms): y")]
    t = timing_summary(rows)
    assert t["turns"] == 1 and t["downlink_ms"]["median"] == 360.0
    assert t["not_decomposed"] == {"the reply heard is not the agent's first of the turn": 1,
                                   "the agent decided the end of turn before the user's EoT": 1}
    assert t["decided_before_eot"] == 1


def test_a_delay_in_a_reply_not_heard_is_not_planted_and_its_pair_is_left_out():
    """b003/b004 (pair 4), b040, b098: the agent delayed reply 0, the user cut it in a pause, the
    reply heard (1 or 2) carried no delay: downlinks 59 / 39 / 35 / 50 ms, paired as if delayed."""
    from autortc.artifacts import AgentBlock

    delay = ({"kind": "delay", "planted": True, "reply_index": 0, "start_sample": 0, "sample_rate": 24000,
              "size_samples": 7200, "extra": {"delay_ms": 300.0}},)
    cut_in_pause = AgentBlock(replies=[AgentReply(reply_index=0, t_first_frame_published=99.554, t_end=99.621,
                                                  interrupted=True, pre_rtc_samples=1380, pre_rtc_sr=24000),
                                       AgentReply(reply_index=1, t_first_frame_published=100.888, t_end=104.5)])
    t = bench.heard_truth(delay, cut_in_pause, t_user_eot=100.0, first_audio_t=100.947)
    assert t[0]["planted"] is False and t[0]["reason"].startswith("never heard")
    heard = AgentBlock(replies=[AgentReply(reply_index=0, t_first_frame_published=100.590, t_end=104.0)])
    assert bench.heard_truth(delay, heard, t_user_eot=100.0, first_audio_t=100.950) == delay

    def turn(item, fault, pair, dl, planted=True):
        ms = 300.0 if fault == "delay_300" else 600.0
        tr = ({"kind": "delay", "planted": planted, "reply_index": 0, "size_ms": ms,
               "reason": "" if planted else "never heard: the delay was in reply 0, the reply heard after the user's EoT is reply 1"},)
        return TurnOutcome(item=item, case_id="c", fault=fault, pair=pair, truth=tr, downlink_ms=dl, latency_ms=dl + 500.0)

    turns = [turn(0, "delay_300", 0, 360.0), turn(1, "delay_600", 0, 661.0),
             turn(2, "delay_300", 1, 362.0), turn(3, "delay_600", 1, 659.0),
             turn(4, "delay_300", 2, 59.0, planted=False), turn(5, "delay_600", 2, 39.0, planted=False),
             turn(6, "delay_300", 3, 35.0, planted=False), turn(7, "delay_600", 3, 664.0)]
    d = delay_recovery(turns, part="downlink_ms")
    assert d.pairs == 2 and d.diffs_ms == pytest.approx([301.0, 297.0]) and d.median_ms == pytest.approx(299.0)
    assert d.left_out == {"never heard": 3} and d.incomplete_pairs == 2
    from autortc.faultbench import render
    from autortc.faultbench.score import score

    md = render.to_markdown(score(turns))
    assert "Delay recovery (downlink part): planted 300 ms, measured median 299.0 ms" in md
    assert "Left out: 2 pair(s) without both sides; turns: 3× never heard." in md

"""The runner's real writer -> trace.json -> the runner's analysis: what a case declares reaches
the metrics, and `autortc compare` on a turn's files equals that turn's result.json."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import typer
from typer.testing import CliRunner

from autortc.bots.mic import MicTimeline, PlacedSegment
from autortc.bots.probe_bot import PROBE_SR, ReplyEvents, TraceEvents
from autortc.cases import Case, Segment
from autortc.gates import load_gates
from autortc.results import to_dict
from autortc.runner.analysis import analyze_turn
from autortc.runner.conversation import TurnTimeouts, _write_artifacts
from autortc.testing.faults import dropout, insert_gap, make_speech

pytestmark = pytest.mark.unit

USER_SR = 16000
FRAME = USER_SR // 100


class _User:
    """The user bot's state after a turn: a real MicTimeline that published the segment."""

    def __init__(self, pcm: np.ndarray, *, lead: int, t0: float) -> None:
        self.mic = MicTimeline(sr=USER_SR, frame_samples=FRAME)
        self.mic.t0 = t0
        self.seg = PlacedSegment(index=0, start_sample=lead, pcm=pcm, speech_start=0, speech_end=pcm.size)
        self.mic.place(self.seg)
        n = (lead + pcm.size) // FRAME + 50
        for k in range(n):
            self.mic.handed.append((t0 + k * FRAME / USER_SR, self.mic.published_samples))
            self.mic.next_frame()


class _Probe:
    """The probe bot's capture: the reply arriving in 10 ms frames, ``delay_s`` after ``t_start``."""

    def __init__(self, reply: np.ndarray, *, t_start: float, lead: int) -> None:
        full = np.concatenate([np.zeros(lead, np.float32), reply, np.zeros(PROBE_SR // 2, np.float32)])
        self.full = (np.clip(full, -1, 1) * 32767).astype(np.int16)
        step = PROBE_SR // 100
        self.arrivals = [(t_start + k / 100.0, k * step) for k in range(self.full.size // step)]
        self.samples = self.full.size
        self.receiver: list = []  # ProbeBot.receiver: no receiver reads in this stand-in

    def pcm(self, start: int = 0, end=None):
        return self.full[start:end]


def _case(tmp_path: Path, pcm: np.ndarray, expected_silence_ms) -> Case:
    tmp_path.mkdir(parents=True, exist_ok=True)
    wav = tmp_path / "case_user.wav"
    sf.write(wav, pcm, USER_SR, subtype="PCM_16")
    seg = Segment(index=0, wav_path=wav, after="start", offset_ms=0, expect="respond", sample_rate=USER_SR,
                  n_samples=pcm.size, speech_start_ms=0, speech_end_ms=int(pcm.size * 1000 / USER_SR),
                  speech_span_measured=False)
    return Case(id="pause_case", p_level="P0", description="a planted pause", segments=(seg,),
                expected_silence_ms=tuple(tuple(x) for x in expected_silence_ms))


def _turn(tmp_path: Path, *, declared, reply_fault=None, agent_shift_s: float = 0.0) -> Path:
    """Write one turn with the runner's real writer; returns the turn folder."""
    speech = make_speech(USER_SR, seed=7, sentences=1, words_per_sentence=(5, 6))
    # the planted truth: 500 ms of silence inside the user's speech, at a syllable body
    at = speech.fault_points_ms(40, 1, rng_seed=2)[0]
    user_pcm, pause = insert_gap(speech.samples, USER_SR, at, 500.0)
    user_pcm = (np.clip(user_pcm, -1, 1) * 32767).astype(np.int16)
    spans = [(pause.start_ms, pause.end_ms)] if declared else []
    case = _case(tmp_path, user_pcm, spans)
    reply = make_speech(PROBE_SR, seed=8, sentences=2, words_per_sentence=(3, 4)).samples
    post = reply if reply_fault is None else reply_fault(reply)
    user = _User(user_pcm, lead=USER_SR // 5, t0=100.0)
    t_eot = user.mic.time_of(user.seg.start_sample + user.seg.speech_end)
    lead = int(0.2 * PROBE_SR)
    probe = _Probe(post, t_start=t_eot + 0.3 - 0.2, lead=lead)
    tr = TraceEvents("pause_case-t00-abc")
    tr.replies[0] = ReplyEvents(0, start_msg={}, end_msg={"interrupted": False}, t_start_recv=t_eot + 0.3,
                                t_end_recv=t_eot + 2.0, start_sample=lead - 480, end_sample=lead + post.size)
    tr.pre_rtc[0] = ((np.clip(reply, -1, 1) * 32767).astype(np.int16), PROBE_SR)
    # the agent's host: its monotonic clock is ours + agent_shift_s, its wall clock the same as ours
    import time

    ours = time.time() - time.monotonic()
    tr.trace_msg = {"v": 1, "type": "trace", "trace_id": tr.trace_id, "t_mono": t_eot + 2.0 + agent_shift_s,
                    "t_wall": t_eot + 2.0 + ours, "stages": {"first_frame_published": t_eot + 0.29 + agent_shift_s}}
    d = tmp_path / "turn"
    _write_artifacts(user, probe, case, tr, [user.seg], tr.trace_id, 0, "run", d,  # type: ignore[arg-type]
                     full_start=0, mic_start=0, timeouts=TurnTimeouts())
    return d, pause


def test_case_expected_silence_reaches_the_continuity_metric(tmp_path):
    d, pause = _turn(tmp_path / "declared", declared=True)
    trace = json.loads((d / "trace.json").read_text())
    assert trace["case"]["expected_silence_ms"] == [[pause.start_ms, pause.end_ms]]
    r = analyze_turn(d, load_gates())
    C = r.continuity
    assert C.user_expected_silence_coverage is not None and C.user_expected_silence_coverage >= 0.9
    assert C.user_max_gap_ms is not None and C.user_max_gap_ms < 300.0, C.user_gaps  # the pause is excused

    d2, pause2 = _turn(tmp_path / "undeclared", declared=False)
    r2 = analyze_turn(d2, load_gates())
    # the same planted pause, not declared: it is the user side's longest gap (±20 ms of edges)
    assert r2.continuity.user_max_gap_ms == pytest.approx(500.0, abs=25.0)
    assert r2.continuity.user_expected_silence_coverage is None


def test_agent_stages_are_rebased_with_t_wall(tmp_path):
    d, _ = _turn(tmp_path, declared=False, agent_shift_s=5000.0)
    tr = json.loads((d / "trace.json").read_text())
    assert tr["agent"]["clock_offset_s"] == pytest.approx(-5000.0, abs=0.01)
    # its stage, sent on its own clock, lands where it happened on the runner's
    t_eot = tr["user"]["t_user_eot"]
    assert tr["agent"]["stages"]["first_frame_published"] == pytest.approx(t_eot + 0.29, abs=0.01)
    # an agent on the runner's host: same clock, its stage is kept exactly
    d2, _ = _turn(tmp_path / "same_host", declared=False, agent_shift_s=0.0)
    tr2 = json.loads((d2 / "trace.json").read_text())
    assert tr2["agent"]["clock_offset_s"] == 0.0
    assert tr2["agent"]["stages"]["first_frame_published"] == tr2["user"]["t_user_eot"] + 0.29


def test_compare_equals_the_turns_result(tmp_path):
    from autortc.commands.analyze import TURN_FIELDS, register

    speech = make_speech(PROBE_SR, seed=8, sentences=2, words_per_sentence=(3, 4))
    at = speech.fault_points_ms(60, 1, rng_seed=4)[0]
    d, _ = _turn(tmp_path, declared=False, reply_fault=lambda x: dropout(x, PROBE_SR, at, 60.0)[0])
    r = analyze_turn(d, load_gates())
    result = to_dict(r)
    assert result["continuity"]["audible_dropouts"] == 1  # the planted fault is seen by both
    app = typer.Typer()
    register(app)
    out = CliRunner().invoke(app, ["compare", str(d / "pre_rtc.wav"), str(d / "post_rtc_reply.wav"), "--json"])
    assert out.exit_code == 0, out.output
    cmp = json.loads(out.stdout)["turn"]
    for sect, keys in TURN_FIELDS.items():
        for k in keys:
            assert cmp[sect][k] == result[sect][k], f"{sect}.{k}: compare {cmp[sect][k]!r} != result.json {result[sect][k]!r}"
    assert cmp["capture_status"] == result["capture_status"]
